"""The environment record (versions, BLAS, CPU) and the OpenBLAS core-type pin."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np  # noqa: F401  (loads numpy's OpenBLAS, so describe() has a BLAS to list)

from helpers import artifacts, environment


def test_describe_is_json_and_names_what_decides_the_numbers():
    env = environment.describe()
    json.dumps(env)  # recorded in manifest.json
    assert env["versions"]["python"].count(".") == 2
    assert {"numpy", "scipy", "scikit-learn"} <= set(env["versions"])
    assert env["cpu"]["logical_cores"] >= 1
    blas = [lib for lib in env["blas"] if lib["user_api"] == "blas"]
    assert blas, "numpy is imported, so at least its BLAS is loaded"
    for lib in blas:
        assert lib["version"] and lib["threads"] >= 1
    if any(lib["library"] == "openblas" for lib in blas):
        assert any(lib["architecture"] for lib in blas if lib["library"] == "openblas")
    assert env["torch"] is None or "threads" in env["torch"]
    assert set(environment.fingerprint(env)) == {"versions", "openblas", "cpu_flags"}


def test_pin_sets_haswell_only_where_the_cpu_runs_it(monkeypatch):
    environ: dict = {}
    flags = set(environment.cpu_info()["flags"])
    pinned = environment.pin_blas_coretype(environ)
    if environment.platform.machine().lower() in ("x86_64", "amd64") and {"avx2", "fma"} <= flags:
        assert pinned == environ["OPENBLAS_CORETYPE"] == environment.PINNED_CORETYPE
    else:
        assert pinned is None and environ == {}
    # a value the user chose is kept
    assert environment.pin_blas_coretype({"OPENBLAS_CORETYPE": "Zen"}) == "Zen"
    # no AVX2: nothing is forced (Haswell kernels would crash there)
    monkeypatch.setattr(environment, "cpu_info", lambda: {"flags": ["sse4_2", "avx"]})
    empty: dict = {}
    assert environment.pin_blas_coretype(empty) is None and empty == {}


def test_pin_reaches_openblas_in_a_fresh_process():
    """Set before numpy loads, the pin decides the kernels numpy's OpenBLAS reports."""
    code = ("from helpers import environment; environment.pin_blas_coretype(); import numpy; "
            "import json; print(json.dumps(environment.describe()))")
    env = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                    text=True).stdout.strip().splitlines()[-1])
    if env["pinned_coretype"] is None:
        return  # not an x86-64 CPU with AVX2: nothing to pin
    arch = [lib["architecture"] for lib in env["blas"] if lib["library"] == "openblas"]
    assert arch and all(a.lower() == env["pinned_coretype"].lower() for a in arch)
    assert env["pinned_too_late"] is False


def test_every_manifest_records_the_environment(tmp_path):
    with artifacts.atomic_dir(tmp_path / "stage" / "abc", {"k": 1}) as tmp:
        (tmp / "x.txt").write_text("x")
    manifest = artifacts.read_manifest(tmp_path / "stage" / "abc")
    assert manifest["k"] == 1
    assert manifest["environment"]["versions"]["numpy"] == np.__version__
    assert "blas" in manifest["environment"] and "cpu" in manifest["environment"]


def test_command_line_prints_json(capsys):
    assert environment.main([]) == 0
    assert "versions" in json.loads(capsys.readouterr().out)
