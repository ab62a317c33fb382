"""Non-generative baselines, with per-query hits so they sit in the same tables and tests.

* ``random``: K items drawn uniformly per query; its expected Recall@K is K / n_items
  (30 / 1682 = 0.018 on ml-100k).
* ``most_popular``: the K items with the most interactions in the user's visible past, skipping
  items already in the user's history (ml-100k: 0.154, docs/facts.md).
* ``most_popular_with_history``: the same list without skipping the history (ml-100k: 0.111);
  generative models may re-recommend seen items, so this is the like-for-like floor.
* ``lexical`` (search): TF-IDF cosine between a test query and every *train* query, an item
  scored by its best-matching train query. It sees exactly what the generative model learns
  from (train queries and their items), knows no synonyms, and so marks how far matching the
  paraphrase's words alone gets; a model from scratch has no more to go on.

Most-popular is a recommendation baseline only: every item has the same number of search
queries, so popularity carries no information for search (paper, section 4).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .metrics import popularity_segments

BASELINES = ("random", "most_popular", "most_popular_with_history", "lexical")
BASELINE_LABELS = {"random": "Random", "most_popular": "Most popular (history excluded)",
                   "most_popular_with_history": "Most popular (history not excluded)",
                   "lexical": "Lexical (TF-IDF to train queries)"}
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


def lexical_search_hits(train_texts: Sequence[str], train_items: Sequence[int], test_texts: Sequence[str],
                        test_items: Sequence[int], n_items: int, k: int, seed: int = 0,
                        chunk: int = 1024) -> np.ndarray:
    """Per test query, whether its item is among the K items whose train queries match it best.

    An item's score is the highest TF-IDF cosine (scikit-learn, word unigrams) between the test
    query and any of the item's train queries; items without train queries score -1. Ties (the
    same best train query text for many items is common) are broken at random with ``seed``, so
    a tie is not resolved in favour of low item ids. Scored ``chunk`` test queries at a time, so
    memory stays at chunk x n_train floats.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    train_items = np.asarray(train_items, dtype=np.int64)
    test_items = np.asarray(test_items, dtype=np.int64)
    if len(train_texts) == 0:
        raise ValueError("The lexical baseline needs train queries; the dataset has none.")
    vectorizer = TfidfVectorizer(token_pattern=r"[a-z0-9'-]+").fit(train_texts)
    train_matrix = vectorizer.transform(train_texts).T.tocsr()
    order = np.argsort(train_items, kind="stable")  # group each item's train queries together
    grouped_items, starts = np.unique(train_items[order], return_index=True)
    rng = np.random.default_rng(seed)
    hits = np.zeros(len(test_items), dtype=np.float64)
    for lo in range(0, len(test_items), chunk):
        sims = (vectorizer.transform(test_texts[lo:lo + chunk]) @ train_matrix).toarray()[:, order]
        scores = np.full((sims.shape[0], n_items), -1.0)
        scores[:, grouped_items] = np.maximum.reduceat(sims, starts, axis=1)
        scores += rng.random(scores.shape) * 1e-9  # random tie-break, far below any real score gap
        targets = test_items[lo:lo + chunk]
        better = (scores > scores[np.arange(len(targets)), targets][:, None]).sum(axis=1)
        hits[lo:lo + chunk] = (better < k).astype(np.float64)
    return hits


def baseline_hits(dataset, k: int, head_fraction: float, seed: int = 0) -> pd.DataFrame:
    """The baselines' per-query hits in the evaluation stage's long format.

    Columns: method, seed, task, query_key, target, segment, rank (always 0: baselines keep no
    ranking), n_ranked (k), hit. Rec rows cover every test user; random and lexical cover every
    test search query.
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
    train_queries = dataset.query_split("train")
    add("lexical", "search", test_queries["query_id"], test_queries["item_id"],
        lexical_search_hits(train_queries["text"].tolist(), train_queries["item_id"], test_queries["text"].tolist(),
                            test_queries["item_id"], dataset.n_items, k, seed))
    return pd.concat(frames, ignore_index=True)
