"""Fused item vectors: search and rec vectors combined at the embedding level (paper, Fig. 4).

* **Fused concat**: ``[l2(v_search), l2(v_rec)]``; dimension d_search + d_rec. Both halves have
  unit norm, so they weigh the same per item, but the larger half spreads over more dimensions
  (the paper's explanation for its weaker recommendation numbers).
* **Fused SVD**: both l2-normalised; the higher-dimensional one is reduced with sklearn's
  ``TruncatedSVD`` to the other's dimension; then the two are added element-wise.
  ``TruncatedSVD`` does not centre the data, so a new vector ``x`` (e.g. a query) maps into the
  same space as ``x @ components.T``; the components are saved for that reason.

The SVD is computed in float64 (the inputs are float32). In float32, sklearn's randomized SVD
(5 power iterations over singular values from 26 down to 0.27 on ml100k) leaves its smallest kept
components to rounding: on ml100k a one-ulp change in 10 of the 645,888 input numbers moved the
fused vectors by up to 6e-4 and changed the RQ-KMeans codes of up to 99% of the items, and other
BLAS kernels (another CPU) moved them by up to 1.4e-5. In float64 the same algorithm with the same
seed moves them by at most 5e-8 and no code changes. Numbers and commands: docs/reproducibility.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def single_threaded_blas():
    """Context: numpy/scipy BLAS on one thread.

    OpenBLAS threads busy-wait; on a 2-core machine shared with other processes, TruncatedSVD of
    1,682 x 384 vectors took 8-26 s with two BLAS threads and 0.25 s with one. At these sizes a
    second thread gains little even on an idle machine.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def fuse_concat(search: np.ndarray, rec: np.ndarray) -> np.ndarray:
    """``[l2(search), l2(rec)]`` per item; float32 (n_items, d_search + d_rec)."""
    _check_rows(search, rec)
    return np.hstack([l2_normalize(search), l2_normalize(rec)]).astype(np.float32)


@dataclass
class SvdFusion:
    """Result of :func:`fuse_svd`.

    Attributes:
        vectors: float32 (n_items, d) with d = min(d_search, d_rec).
        reduced: which input was reduced (``"search"``, ``"rec"``, or ``None`` when equal dims).
        components: float32 (d, d_reduced_input): maps an l2-normalised vector of the reduced
            input into the fused space (``x @ components.T``); None when nothing was reduced.
        explained_variance_ratio: of the kept SVD components (sum <= 1).
    """

    vectors: np.ndarray
    reduced: str | None
    components: np.ndarray | None
    explained_variance_ratio: float | None


def fuse_svd(search: np.ndarray, rec: np.ndarray, seed: int = 0) -> SvdFusion:
    """l2-normalise both, reduce the larger with TruncatedSVD (in float64) to the smaller's dim, add them."""
    from sklearn.decomposition import TruncatedSVD

    _check_rows(search, rec)
    parts = {"search": l2_normalize(search), "rec": l2_normalize(rec)}
    d_search, d_rec = parts["search"].shape[1], parts["rec"].shape[1]
    if d_search == d_rec:
        return SvdFusion(parts["search"] + parts["rec"], None, None, None)
    larger, smaller = ("search", "rec") if d_search > d_rec else ("rec", "search")
    target_dim = parts[smaller].shape[1]
    if target_dim >= min(parts[larger].shape):
        raise ValueError(
            f"TruncatedSVD cannot reduce {larger} ({parts[larger].shape}) to {target_dim} dimensions: "
            "it needs more items than the target dimension. Use a larger catalogue or a smaller rec.dim."
        )
    svd = TruncatedSVD(n_components=target_dim, random_state=seed)
    with single_threaded_blas():  # float64: see the module docstring (float32 is not reproducible)
        reduced = svd.fit_transform(parts[larger].astype(np.float64)).astype(np.float32)
    fused = (reduced + parts[smaller]).astype(np.float32)
    return SvdFusion(fused, larger, svd.components_.astype(np.float32),
                     float(svd.explained_variance_ratio_.sum()))


def _check_rows(search: np.ndarray, rec: np.ndarray) -> None:
    if len(search) != len(rec):
        raise ValueError(f"search has {len(search)} rows and rec {len(rec)}: both must hold one row per item_id.")
