"""Recall@K with per-query hits kept, so that methods can be compared with paired tests.

With one relevant item per query (the held-out item, or the item a query describes),
Recall@K is the fraction of queries whose target is among the top K predictions.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def hits_at_k(ranked: Sequence[Sequence[int]] | np.ndarray, targets: Sequence[int] | np.ndarray, k: int) -> np.ndarray:
    """Per query, 1.0 if ``targets[i]`` is in the first ``k`` entries of ``ranked[i]`` else 0.0.

    ``ranked`` is a list of ranked item-id lists (may be shorter than k, or ragged) or a 2-D array.
    """
    targets = np.asarray(targets)
    if len(ranked) != len(targets):
        raise ValueError(f"{len(ranked)} rankings for {len(targets)} targets: they must align one to one.")
    if k < 1:
        raise ValueError("k must be >= 1.")
    if isinstance(ranked, np.ndarray) and ranked.ndim == 2:
        return (ranked[:, :k] == targets[:, None]).any(axis=1).astype(np.float64)
    return np.array([float(t in list(r[:k])) for r, t in zip(ranked, targets)], dtype=np.float64)


def recall_at_k(ranked, targets, k: int = 30) -> float:
    """Mean of :func:`hits_at_k`; 0.0 for no queries."""
    hits = hits_at_k(ranked, targets, k)
    return float(hits.mean()) if len(hits) else 0.0


def top_k_by_score(scores: np.ndarray, k: int, exclude: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """Indices of the ``k`` highest scores per row, best first; ``exclude[i]`` items are skipped."""
    scores = np.array(scores, dtype=np.float32, copy=True)
    if exclude is not None:
        for row, items in enumerate(exclude):
            if len(items):
                scores[row, np.asarray(items)] = -np.inf
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, part, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(part, order, axis=1)
