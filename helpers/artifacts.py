"""Run directories, config hashing and atomic, cached stage outputs.

Layout: ``data/runs/<profile>/<stage>/<name>/<hash>/`` where ``hash`` covers the stage's own
parameters *and* the hashes of the upstream artifacts it read, so changing a parameter
recomputes that stage and everything downstream of it, and nothing else.

A stage writes into a temporary sibling folder and renames it into place only when it has
finished (``atomic_dir``), so an interrupted run never leaves a half-written artifact that a
later run would mistake for a result. ``manifest.json`` marks a complete artifact.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .config import data_root
from .errors import MissingArtifactError

MANIFEST = "manifest.json"


def config_hash(obj: Any) -> str:
    """Stable 12-hex-digit hash of a JSON-serialisable object (key order does not matter)."""
    payload = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def file_digest(path: Path) -> str:
    """A short digest of a file's bytes (an input file, such as a query set, in a cache key)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def stage_dir(cfg: dict, stage: str, key: dict, name: str | None = None) -> Path:
    """The folder of one stage's artifact for ``key`` (its parameters plus upstream hashes)."""
    parts = [data_root(), "runs", cfg["name"], stage] + ([name] if name else []) + [config_hash(key)]
    return Path(*map(str, parts))


def is_complete(path: Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def read_manifest(path: Path) -> dict:
    return json.loads((Path(path) / MANIFEST).read_text())


@contextmanager
def atomic_dir(final: Path, manifest: dict | None = None) -> Iterator[Path]:
    """Yield a temp folder; on success, write ``manifest.json`` and rename it to ``final``.

    On any exception the temp folder is deleted and ``final`` is left untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    started = time.time()
    try:
        yield tmp
        info = dict(manifest or {})
        info.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S"))
        info.setdefault("seconds", round(time.time() - started, 2))
        from .environment import describe  # versions, BLAS kernels and threads, CPU: what decides the numbers
        info.setdefault("environment", describe())
        (tmp / MANIFEST).write_text(json.dumps(info, indent=2, default=str))
        if final.exists():  # a concurrent run finished first, or a stale incomplete folder
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def lock(final: Path) -> Iterator[None]:
    """Hold an exclusive lock on the artifact ``final`` while building it (other processes wait).

    Two jobs asked for the same artifact (two SLURM tasks, a job and a notebook) must not both
    build it: the second waits here, then finds it complete. The lock is an ``flock`` on a hidden
    sibling file, released by the kernel if the process dies, so a crash never leaves it held.
    """
    import fcntl

    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f".lock-{final.name}", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def require(path: Path, what: str, produced_by: str, cfg: dict | None = None) -> Path:
    """Return ``path`` if it holds a complete artifact, else say which notebook/command makes it.

    With the profile ``cfg`` the message names the real command, starting from the first stage
    whose artifact is missing (``helpers.pipeline``).
    """
    if not is_complete(path):
        if cfg is None:
            hint = f"Run {produced_by} first."
        else:
            from .pipeline import missing_hint  # the pipeline knows every stage; this module none

            hint = missing_hint(cfg, produced_by)
        raise MissingArtifactError(f"{what} is missing for this profile (looked in {path}). {hint}")
    return Path(path)


def write_json(path: Path, obj: Any) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, default=str))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())
