"""What decides the numbers besides the code and the parameters: library versions, BLAS, CPU.

Two entry points:

``describe()``
    A JSON-friendly dict recorded in every artifact's ``manifest.json`` (``helpers.artifacts.
    atomic_dir`` adds it as ``"environment"``): Python and library versions, each BLAS/OpenMP
    library loaded in the process with its version, the CPU kernel set it chose
    (``architecture``) and its thread count (``threadpoolctl``), the CPU model and the
    environment variables that change floating-point results. Two artifacts whose numbers differ
    can then be told apart by machine without re-running anything.

``pin_blas_coretype()``
    Sets ``OPENBLAS_CORETYPE`` so that every OpenBLAS in the process (numpy's, scipy's and
    faiss's each bundle their own) uses the same kernels on every x86-64 machine with AVX2,
    whatever the CPU: OpenBLAS's DYNAMIC_ARCH otherwise picks kernels per CPU model (``Haswell``
    on an AMD EPYC Zen 3, ``SkylakeX`` or ``SapphireRapids`` on AVX-512 Xeons), and kernels with
    different vector widths add the terms of a dot product in a different order, which changes
    the last bits of every matrix product. OpenBLAS reads the variable once, when the library is
    loaded, so the call only helps before numpy is first imported (``pinned_too_late`` in
    ``describe()`` says when that went wrong); the study runner's process sets it before it starts
    the notebook kernels, which inherit it. See ``docs/reproducibility.md``.

``python -m helpers.environment`` prints ``describe()`` as JSON.
"""
from __future__ import annotations

import functools
import importlib.metadata as metadata
import json
import os
import platform
import sys

#: The OpenBLAS kernel set pinned on x86-64 CPUs with AVX2 and FMA (Intel since 2013, AMD since
#: 2017). Every AVX-512 CPU also runs it, so one value gives the same kernels everywhere.
PINNED_CORETYPE = "Haswell"

#: Packages whose versions can change the numbers (distribution names for importlib.metadata).
PACKAGES = ("numpy", "scipy", "scikit-learn", "torch", "faiss-cpu", "transformers",
            "sentence-transformers", "tokenizers", "recbole", "vector-quantize-pytorch", "pandas",
            "threadpoolctl")

#: Environment variables that change floating-point results or thread counts.
ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OPENBLAS_VERBOSE", "OMP_NUM_THREADS",
            "OMP_WAIT_POLICY", "MKL_NUM_THREADS", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS",
            "MKL_DEBUG_CPU_TYPE", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY",
            "PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG", "SID_DATA_ROOT")

#: CPU flags that decide which BLAS kernels can run.
CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile")

_BLAS_MODULES = ("numpy", "scipy", "sklearn", "faiss", "torch")


def cpu_info() -> dict:
    """CPU model, vendor, logical cores and the SIMD flags that decide BLAS kernels."""
    info = {"machine": platform.machine(), "logical_cores": os.cpu_count(),
            "model": platform.processor() or None, "vendor": None, "flags": []}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return info
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and not info["vendor"]:
            info["model"] = value
        elif key == "vendor_id" and not info["vendor"]:
            info["vendor"] = value
        elif key in ("flags", "Features") and not info["flags"]:
            present = set(value.split())
            info["flags"] = [flag for flag in CPU_FLAGS if flag in present]
        elif key == "cpu family":
            info.setdefault("family", value)
        elif key == "model" and "model_number" not in info:
            info["model_number"] = value
    return info


def pin_blas_coretype(environ=None) -> str | None:
    """Set ``OPENBLAS_CORETYPE`` to :data:`PINNED_CORETYPE` where the CPU can run it; return it.

    Leaves a value the user set alone (``setdefault``), and does nothing on CPUs without AVX2/FMA
    (forcing Haswell kernels there would crash) or off x86-64. Returns the value now in force, or
    None. Only takes effect for OpenBLAS copies loaded after the call.
    """
    environ = os.environ if environ is None else environ
    if "OPENBLAS_CORETYPE" in environ:
        return environ["OPENBLAS_CORETYPE"]
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    flags = set(cpu_info()["flags"])
    if not {"avx2", "fma"} <= flags:
        return None
    environ["OPENBLAS_CORETYPE"] = PINNED_CORETYPE
    return PINNED_CORETYPE


@functools.lru_cache(maxsize=1)
def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def blas_libraries() -> list[dict]:
    """One entry per BLAS/OpenMP library loaded in this process (threadpoolctl), paths shortened."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        return []
    out = []
    for lib in threadpool_info():
        path = str(lib.get("filepath") or "")
        owner = next((part for part in path.split(os.sep) if part.endswith(".libs") or part in _BLAS_MODULES), "")
        out.append({"user_api": lib.get("user_api"), "library": lib.get("internal_api"),
                    "version": lib.get("version"), "architecture": lib.get("architecture"),
                    "threads": lib.get("num_threads"), "threading_layer": lib.get("threading_layer"),
                    "file": os.path.basename(path), "bundled_by": owner.removesuffix(".libs") or None})
    return out


def torch_info() -> dict | None:
    """torch's threads, BLAS and CPU kernel level, if torch is already imported (never imports it)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    info: dict = {}
    for key, call in (("threads", lambda: torch.get_num_threads()),
                      ("interop_threads", lambda: torch.get_num_interop_threads()),
                      ("cpu_capability", lambda: torch.backends.cpu.get_cpu_capability()),
                      ("mkl", lambda: bool(torch.backends.mkl.is_available())),
                      ("deterministic_algorithms", lambda: bool(torch.are_deterministic_algorithms_enabled()))):
        try:
            info[key] = call()
        except Exception:  # noqa: BLE001 - an attribute missing in some torch version
            pass
    return info


def describe() -> dict:
    """The facts that decide the numbers of an artifact made in this process (JSON-friendly).

    Keys: ``versions`` (Python and libraries), ``blas`` (loaded BLAS/OpenMP libraries: version,
    ``architecture`` = kernel set, ``threads``), ``torch`` (or None if not imported), ``cpu``,
    ``env`` (the variables of :data:`ENV_VARS` that are set), ``pinned_coretype`` (what the pin
    asks for) and ``pinned_too_late`` (an OpenBLAS loaded with another kernel set than the pin).
    Never raises: a fact that cannot be read is left out.
    """
    try:
        blas = blas_libraries()
    except Exception:  # noqa: BLE001 - recording must never break a stage
        blas = []
    wanted = os.environ.get("OPENBLAS_CORETYPE")
    chosen = sorted({lib["architecture"] for lib in blas if lib.get("library") == "openblas" and lib.get("architecture")})
    return {
        "versions": package_versions(),
        "platform": platform.platform(),
        "cpu": cpu_info(),
        "blas": blas,
        "torch": torch_info(),
        "env": {name: os.environ[name] for name in ENV_VARS if name in os.environ},
        "pinned_coretype": wanted,
        "pinned_too_late": bool(wanted) and any(a.lower() != wanted.lower() for a in chosen),
    }


def fingerprint(env: dict | None = None) -> dict:
    """The few facts of :func:`describe` that must match for two runs to give the same bits."""
    env = env or describe()
    return {"versions": env.get("versions"),
            "openblas": sorted({(lib.get("bundled_by"), lib.get("version"), lib.get("architecture"))
                                for lib in env.get("blas", []) if lib.get("library") == "openblas"}),
            "cpu_flags": (env.get("cpu") or {}).get("flags")}


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m helpers.environment",
                                     description="Print the facts that decide the numbers (versions, BLAS, CPU).")
    parser.add_argument("--load", action="store_true",
                        help="import numpy, scipy, sklearn and faiss first, so that their BLAS libraries are listed")
    args = parser.parse_args(argv)
    if args.load:
        for name in ("numpy", "scipy.linalg", "sklearn", "faiss"):
            try:
                __import__(name)
            except ImportError:
                pass
    print(json.dumps(describe(), indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
