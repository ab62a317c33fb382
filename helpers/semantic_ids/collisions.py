"""Collisions: items whose code tuples are equal, and the TIGER-style token that separates them.

A quantizer maps similar items to the same code tuple (FAISS RQ 2x8 bits leaves 21,755 of 62k random
vectors sharing a code, docs/facts.md), but a generative retriever needs every ID to denote one
item. TIGER (Rajput et al., 2023) appends one more token that counts the items within a collision
group: 0 for the first, 1 for the second, ... . It is appended to *every* ID (0 for items that
collide with nobody) so that all IDs of a task keep the same length.
"""
from __future__ import annotations

import numpy as np


def group_ids(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(group, sizes)``: the index of each row's distinct code tuple and how many rows share it."""
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes must be 2-D (n_items, n_levels), got shape {codes.shape}")
    _, group, sizes = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return group.reshape(-1), sizes


def collision_stats(codes: np.ndarray) -> dict:
    """How much the code tuples collide, before any disambiguation.

    Returns:
        ``n_items``; ``n_unique_codes`` (distinct tuples); ``collision_rate`` (fraction of items whose
        tuple is shared with at least one other item); ``items_over_unique`` (``1 - n_unique/n``: the
        fraction of items that need a non-zero disambiguation token); ``max_items_per_code``.
    """
    group, sizes = group_ids(codes)
    n = len(group)
    colliding = int((sizes[group] > 1).sum())
    return {
        "n_items": n,
        "n_unique_codes": int(len(sizes)),
        "collision_rate": colliding / n if n else 0.0,
        "items_over_unique": 1.0 - len(sizes) / n if n else 0.0,
        "max_items_per_code": int(sizes.max()) if n else 0,
    }


def disambiguation_codes(codes: np.ndarray) -> np.ndarray:
    """Rank of each item within its collision group, in item-id order (0 for the first or only item)."""
    group, _ = group_ids(codes)
    order = np.argsort(group, kind="stable")  # rows of one group become contiguous, in item order
    sorted_groups = group[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_groups)) + 1]
    first_of_group = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    rank = np.empty(len(group), dtype=np.int64)
    rank[order] = np.arange(len(order)) - first_of_group
    return rank


def disambiguate(codes: np.ndarray, always: bool = False) -> np.ndarray:
    """Codes made unique: ``codes`` plus a last column counting items within each collision group.

    With no collisions the codes are returned unchanged (no dead token), unless ``always``.
    """
    codes = np.asarray(codes, dtype=np.int64)
    rank = disambiguation_codes(codes)
    if not always and (len(rank) == 0 or rank.max() == 0):
        return codes
    return np.concatenate([codes, rank[:, None]], axis=1)
