"""What decides the numbers besides the code and the parameters: library versions, BLAS, CPU.

Two entry points:

``describe()``
    A JSON-friendly dict recorded in every artifact's ``manifest.json`` (``helpers.artifacts.
    atomic_dir`` adds it as ``"environment"``): Python and library versions, each BLAS/OpenMP
    library loaded in the process with its version, the CPU kernel set it chose
    (``architecture``) and its thread count (``threadpoolctl``), the CPU model and the
    environment variables that change floating-point results. Two artifacts whose numbers differ
    can then be told apart by machine without re-running anything.

``pin_kernels()``
    Sets ``OPENBLAS_CORETYPE=Haswell`` and ``ATEN_CPU_CAPABILITY=avx2`` (unless already set) on
    every x86-64 CPU with AVX2 and FMA, so that every OpenBLAS in the process (numpy's, scipy's and
    faiss's each bundle their own) and torch's own vectorised kernels run the same code whatever
    the CPU. Both libraries otherwise pick kernels per CPU model: OpenBLAS's DYNAMIC_ARCH chooses
    ``Haswell`` on an AMD EPYC Zen 3 but ``SkylakeX``/``Cooperlake``/``SapphireRapids`` on AVX-512
    CPUs, and torch uses AVX-512 kernels where it can; kernels of another vector width add the terms
    of a sum in another order, which changes the last bits of every result. On an AVX2 CPU both
    values are what the libraries choose anyway, so the pin changes nothing there. The variables are
    read when the libraries load, so the call only helps before numpy and torch are first imported
    (``pinned_too_late`` in ``describe()`` says when that went wrong); child processes (the study
    runner's notebook kernels) inherit them. See ``docs/reproducibility.md``.

``python -m helpers.environment`` prints ``describe()`` as JSON.
"""
from __future__ import annotations

import functools
import importlib.metadata as metadata
import json
import os
import platform
import sys

#: What :func:`pin_kernels` sets on x86-64 CPUs with AVX2 and FMA (Intel since 2013, AMD since 2017):
#: OpenBLAS's Haswell kernels and torch's AVX2 kernels, which every AVX-512 CPU also runs.
PINNED = {"OPENBLAS_CORETYPE": "Haswell", "ATEN_CPU_CAPABILITY": "avx2"}
PINNED_CORETYPE = PINNED["OPENBLAS_CORETYPE"]

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
    first: dict = {}
    for line in text.splitlines():  # the first processor's block describes them all
        key, _, value = line.partition(":")
        first.setdefault(key.strip(), value.strip())
    info["model"] = first.get("model name") or info["model"]
    info["vendor"] = first.get("vendor_id")
    info["family"], info["model_number"] = first.get("cpu family"), first.get("model")
    present = set((first.get("flags") or first.get("Features") or "").split())
    info["flags"] = [flag for flag in CPU_FLAGS if flag in present]
    return info


def can_pin(info: dict | None = None) -> bool:
    """Whether this CPU runs the pinned kernels (x86-64 with AVX2 and FMA)."""
    info = info or cpu_info()
    if str(info.get("machine", platform.machine())).lower() not in ("x86_64", "amd64"):
        return False
    return {"avx2", "fma"} <= set(info.get("flags") or [])


def pin_kernels(environ=None) -> dict:
    """Set the variables of :data:`PINNED` where the CPU runs them; return those now in force.

    Leaves a value already set alone (``setdefault``), and sets nothing on CPUs without AVX2/FMA
    or off x86-64 (forcing Haswell kernels there crashes with an illegal instruction). Only
    libraries loaded after the call are affected.
    """
    environ = os.environ if environ is None else environ
    if can_pin():
        for name, value in PINNED.items():
            environ.setdefault(name, value)
    return {name: environ[name] for name in PINNED if name in environ}


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
    ``env`` (the variables of :data:`ENV_VARS` that are set), ``pinned`` (the variables of
    :data:`PINNED` in force) and ``pinned_too_late`` (an OpenBLAS, or torch, running other kernels
    than those variables ask for: they were set after the library loaded).
    Never raises: a fact that cannot be read is left out.
    """
    try:
        blas = blas_libraries()
    except Exception:  # noqa: BLE001 - recording must never break a stage
        blas = []
    wanted = os.environ.get("OPENBLAS_CORETYPE")
    chosen = sorted({lib["architecture"] for lib in blas if lib.get("library") == "openblas" and lib.get("architecture")})
    torch = torch_info()
    late = bool(wanted) and any(a.lower() != wanted.lower() for a in chosen)
    aten = os.environ.get("ATEN_CPU_CAPABILITY")
    if aten and torch and torch.get("cpu_capability"):
        late = late or str(torch["cpu_capability"]).lower() != aten.lower()
    return {
        "versions": package_versions(),
        "platform": platform.platform(),
        "cpu": cpu_info(),
        "blas": blas,
        "torch": torch,
        "env": {name: os.environ[name] for name in ENV_VARS if name in os.environ},
        "pinned": {name: os.environ[name] for name in PINNED if name in os.environ},
        "pinned_too_late": late,
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
