"""Non-generative baselines, with per-query hits so they sit in the same tables and tests.

* ``random``: K items drawn uniformly per query; its expected Recall@K is K / n_items
  (30 / 1682 = 0.018 on ml-100k).
* ``most_popular``: the K items with the most interactions in the user's visible past, skipping
  items already in the user's history (ml-100k: 0.154, shared/FACTS.md).
* ``most_popular_with_history``: the same list without skipping the history (ml-100k: 0.111);
  generative models may re-recommend seen items, so this is the like-for-like floor.

Most-popular is a recommendation baseline only: every item has the same number of search
queries, so popularity carries no information for search (paper, section 4).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .metrics import popularity_segments

BASELINES = ("random", "most_popular", "most_popular_with_history")
BASELINE_LABELS = {"random": "Random", "most_popular": "Most popular (history excluded)",
                   "most_popular_with_history": "Most popular (history not excluded)"}
#: The splits a test-time recommender may see: everything before the held-out last interaction.
HISTORY_SPLITS = ("train", "valid")


def random_expected_recall(n_items: int, k: int) -> float:
    """Expected Recall@K of a uniformly random ranking of ``n_items`` items: min(K, n) / n."""
    if n_items < 1 or k < 1:
        raise ValueError("n_items and k must be >= 1.")
    return min(k, n_items) / n_items


def random_hits(targets: Sequence[int] | np.ndarray, n_items: int, k: int, seed: int = 0) -> np.ndarray:
    """Per query, whether ``targets[i]`` is among K distinct items drawn uniformly at random.

    Drawing K of n without replacement contains a given item with probability K / n, so one
    Bernoulli draw per query samples exactly that event without building the lists.
    """
    targets = np.asarray(targets, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return (rng.random(len(targets)) < random_expected_recall(n_items, k)).astype(np.float64)


def most_popular_hits(targets: Sequence[int] | np.ndarray, popularity: np.ndarray,
                      histories: Sequence[np.ndarray] | None, k: int) -> np.ndarray:
    """Per user, whether the target is among the K most popular items not in that user's history.

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


def baseline_hits(dataset, k: int, head_fraction: float, seed: int = 0) -> pd.DataFrame:
    """The baselines' per-query hits in the evaluation stage's long format.

    Columns: method, seed, task, query_key, target, segment, rank (always 0: baselines keep no
    ranking), n_ranked (k), hit. Rec rows cover every test user; random also covers every test
    search query.
    """
    head = dataset.head_items(head_fraction)
    users = np.arange(dataset.n_users, dtype=np.int64)
    rec_targets = dataset.targets("test")
    histories = dataset.histories(HISTORY_SPLITS)
    visible = dataset.interactions[dataset.interactions["split"].isin(HISTORY_SPLITS)]
    popularity = np.bincount(visible["item_id"].to_numpy(), minlength=dataset.n_items)
    test_queries = dataset.query_split("test")
    frames = []

    def add(method, task, keys, targets, hits):
        frames.append(pd.DataFrame({
            "method": method, "seed": seed, "task": task, "query_key": np.asarray(keys, dtype=np.int64),
            "target": np.asarray(targets, dtype=np.int64),
            "segment": popularity_segments(targets, head), "rank": 0, "n_ranked": k, "hit": hits,
        }))

    add("random", "rec", users, rec_targets, random_hits(rec_targets, dataset.n_items, k, seed))
    add("random", "search", test_queries["query_id"], test_queries["item_id"],
        random_hits(test_queries["item_id"], dataset.n_items, k, seed + 1))
    add("most_popular", "rec", users, rec_targets, most_popular_hits(rec_targets, popularity, histories, k))
    add("most_popular_with_history", "rec", users, rec_targets,
        most_popular_hits(rec_targets, popularity, None, k))
    return pd.concat(frames, ignore_index=True)
