"""The study's one check of an item-embedding matrix (stage 02 writes them, stage 03 quantises them)."""
from __future__ import annotations

import numpy as np

from .errors import DataError


def validate_vectors(vectors, item_ids=None, n_items: int | None = None, where: str = "embedding",
                     error: type[DataError] = DataError) -> np.ndarray:
    """The study's one check of an item-embedding matrix; returns it as C-contiguous float32.

    Checks, in order: 2-D ``(n_items, d)`` with at least one row and one column; numeric; with
    ``item_ids`` (the ``item_ids.npy`` saved beside the vectors) one id per row, and ids
    ``0..n_items-1`` in order (``n_items`` defaults to the row count); without them, ``n_items``
    rows when given; every value finite. Raises ``error`` (``DataError`` or a subclass of it)
    naming ``where`` (a file, or the matrix) and the fix. The quantizers of stage 03 check their
    input with it too: ``validate_vectors(X, n_items=n, where=f"The {name} matrix",
    error=EmbeddingMatrixError)``.
    """
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[0] == 0 or vectors.shape[1] == 0:
        raise error(f"{where}: the vectors must be 2-D (n_items, d) with at least one row and column, got shape "
                    f"{vectors.shape}. Rebuild them with build_embedding(cfg, space, force=True).")
    if not np.issubdtype(vectors.dtype, np.number):
        raise error(f"{where}: the vectors must be numeric, got dtype {vectors.dtype}.")
    if item_ids is not None:
        item_ids = np.asarray(item_ids)
        if len(item_ids) != len(vectors):
            raise error(f"{where}: {len(vectors)} vectors but {len(item_ids)} item ids; the files are "
                        f"inconsistent. Rebuild with build_embedding(cfg, space, force=True).")
        expected = len(vectors) if n_items is None else int(n_items)
        if len(item_ids) != expected or not np.array_equal(item_ids, np.arange(expected)):
            raise error(f"{where}: the item order (item_ids.npy, {len(item_ids)} ids) does not match the "
                        f"catalogue (item_id 0..{expected - 1}). The vectors were built for another "
                        "catalogue or reordered; rebuild with build_embedding(cfg, space, force=True).")
    elif n_items is not None and len(vectors) != int(n_items):
        raise error(f"{where}: {len(vectors)} rows but the catalogue has {int(n_items)} items (row i must be "
                    "item_id i). Rebuild the embedding for this profile (notebook 02).")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        raise error(f"{where}: {int(bad.sum())} item vectors hold NaN or inf (first item_ids "
                    f"{np.flatnonzero(bad)[:5].tolist()}). Training diverged or the file is damaged; "
                    "rebuild with build_embedding(cfg, space, force=True), perhaps with a lower lr.")
    return vectors
