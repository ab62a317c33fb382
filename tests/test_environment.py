"""The environment record (versions, BLAS, CPU) and the OpenBLAS core-type pin."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np  # noqa: F401  (loads numpy's OpenBLAS, so describe() has a BLAS to list)
import pytest

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


def test_pin_sets_the_kernels_only_where_the_cpu_runs_them(monkeypatch):
    environ: dict = {}
    pinned = environment.pin_kernels(environ)
    if environment.can_pin():
        assert pinned == environ == environment.PINNED
    else:
        assert pinned == {} and environ == {}
    # a value the user chose is kept
    monkeypatch.setattr(environment, "cpu_info", lambda: {"machine": "x86_64", "flags": ["avx", "avx2", "fma"]})
    assert environment.pin_kernels({"OPENBLAS_CORETYPE": "Zen"})["OPENBLAS_CORETYPE"] == "Zen"
    # no AVX2, or not x86: nothing is forced (Haswell kernels would crash there)
    for info in ({"machine": "x86_64", "flags": ["sse4_2", "avx"]}, {"machine": "aarch64", "flags": []}):
        monkeypatch.setattr(environment, "cpu_info", lambda info=info: info)
        empty: dict = {}
        assert environment.pin_kernels(empty) == {} and empty == {}


def test_the_variable_decides_the_kernels_in_a_fresh_process():
    """Set before numpy loads, OPENBLAS_CORETYPE decides the kernels numpy's OpenBLAS reports."""
    if not environment.can_pin():
        pytest.skip("not an x86-64 CPU with AVX2")
    code = ("import helpers.environment as e; e.pin_kernels(); import numpy, json; "
            "print(json.dumps(e.describe()))")
    clean = {k: v for k, v in os.environ.items() if k not in environment.PINNED}
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=clean)
    env = json.loads(done.stdout.strip().splitlines()[-1])
    assert env["pinned"] == environment.PINNED
    arch = [lib["architecture"] for lib in env["blas"] if lib["library"] == "openblas"]
    assert arch and all(a.lower() == "haswell" for a in arch)
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
