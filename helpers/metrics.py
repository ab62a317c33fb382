"""Ranking metrics every stage shares: hits and Recall@K, target ranks, top-K by score, most popular.

They sit below the stages (stage 02's dense-retrieval reference, stage 04's sanity tables and
decoder comparison, stage 05's evaluation all use them), so no stage imports another stage to
score a ranking. ``helpers.evaluation.metrics`` re-exports them.

With one relevant item per query (the held-out item, or the item a query describes), Recall@K is
the fraction of queries whose target is among the top K predictions.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["hits_at_k", "recall_at_k", "top_k_by_score", "target_ranks", "hits_from_ranks",
           "popularity_segments", "most_popular_hits"]


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


def target_ranks(ranked: Sequence[Sequence[int]], targets: Sequence[int] | np.ndarray) -> np.ndarray:
    """Per query, the 1-based position of ``targets[i]`` in ``ranked[i]``; 0 when it is absent.

    Keeping ranks rather than hits lets one artifact answer Recall@K for every K up to the
    length of the rankings: ``hits = (ranks >= 1) & (ranks <= k)``.
    """
    targets = np.asarray(targets, dtype=np.int64)
    if len(ranked) != len(targets):
        raise ValueError(f"{len(ranked)} rankings for {len(targets)} targets: they must align one to one.")
    if len(targets) == 0:
        return np.zeros(0, dtype=np.int64)
    # pad the ragged rankings into one array (-1 never matches an item id) and compare at once
    width = max(1, max(len(r) for r in ranked))
    padded = np.full((len(ranked), width), -1, dtype=np.int64)
    for row, items in enumerate(ranked):
        padded[row, : len(items)] = np.asarray(items, dtype=np.int64)
    matches = padded == targets[:, None]
    ranks = np.where(matches.any(axis=1), matches.argmax(axis=1) + 1, 0).astype(np.int64)
    return ranks


def hits_from_ranks(ranks: np.ndarray, k: int) -> np.ndarray:
    """1.0 where the target was ranked within the first ``k`` (rank 0 means not retrieved)."""
    if k < 1:
        raise ValueError("k must be >= 1.")
    ranks = np.asarray(ranks)
    return ((ranks >= 1) & (ranks <= k)).astype(np.float64)


def popularity_segments(item_ids: Sequence[int] | np.ndarray, head_mask: np.ndarray) -> np.ndarray:
    """``"head"`` or ``"torso"`` for each item id, given the boolean head mask over the catalogue.

    The paper's Table 2 splits recommendation targets by their train popularity: head = the top
    1% most popular items (``Dataset.head_items``), torso = every other item.
    """
    item_ids = np.asarray(item_ids, dtype=np.int64)
    head_mask = np.asarray(head_mask, dtype=bool)
    if len(item_ids) and (item_ids.min() < 0 or item_ids.max() >= len(head_mask)):
        raise ValueError(f"item ids must lie in 0..{len(head_mask) - 1} (the catalogue), "
                         f"got {item_ids.min()}..{item_ids.max()}.")
    return np.where(head_mask[item_ids], "head", "torso")


def most_popular_hits(targets: Sequence[int] | np.ndarray, popularity: np.ndarray,
                      histories: Sequence[np.ndarray] | None, k: int) -> np.ndarray:
    """Per user, whether the target is among the K most popular items not in that user's history.

    The one most-popular recommender of the study (the evaluation's baseline and the embeddings
    stage's dense-retrieval reference both call it); it never builds the ranked lists.

    Args:
        targets: the held-out item of each user.
        popularity: interaction count per item (index = item id); ties are broken by item id.
        histories: items to skip per user, aligned with ``targets``; ``None`` skips nothing.
        k: list length.
    """
    targets = np.asarray(targets, dtype=np.int64)
    order = np.argsort(-np.asarray(popularity), kind="stable")
    rank_of = np.empty(len(order), dtype=np.int64)
    rank_of[order] = np.arange(len(order))
    if histories is None:
        return (rank_of[targets] < k).astype(np.float64)
    if len(histories) != len(targets):
        raise ValueError(f"{len(histories)} histories for {len(targets)} targets: they must align one to one.")
    hits = np.zeros(len(targets), dtype=np.float64)
    for user, (target, seen) in enumerate(zip(targets, histories)):
        seen = np.unique(np.asarray(seen, dtype=np.int64))
        if target in seen:  # a re-consumed item can never be recommended once history is skipped
            continue
        # the target's position once the seen items ranked above it are removed from the list
        hits[user] = float(rank_of[target] - np.count_nonzero(rank_of[seen] < rank_of[target]) < k)
    return hits
