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
queries, so popularity carries no information for search (paper, section 4). The most-popular
ranking itself is :func:`helpers.metrics.most_popular_hits`, shared with the embeddings stage.

Search baselines are scored on the test queries the generative models decode
(``decoding.test_queries_per_item``: the paraphrases with ``pair`` below it), so every method of
a table is measured on the same queries.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from ..metrics import most_popular_hits, popularity_segments

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


def random_recall_tolerance(n_items: int, k: int, n_queries: int, z: float = 4.0) -> float:
    """How far the random baseline's Recall@K over ``n_queries`` may stray from its expectation.

    Each query is a hit with probability p = K / n_items, so the recall of n queries has standard
    deviation sqrt(p (1 - p) / n); ``z`` of them (4: a false alarm about once in 16,000 runs).
    """
    if n_queries < 1:
        raise ValueError("n_queries must be >= 1.")
    p = random_expected_recall(n_items, k)
    return z * math.sqrt(p * (1.0 - p) / n_queries)


def decoded_test_queries(dataset, per_item: int | None) -> pd.DataFrame:
    """The test queries the generative stage decodes: ``pair < per_item`` of every item (None: all).

    The same filter as ``ExampleBuilder.search_examples`` (``decoding.test_queries_per_item``), in
    the dataset's query order, so the baselines score exactly the queries the models answered.
    """
    queries = dataset.query_split("test")
    if per_item is not None:
        queries = queries[queries["pair"] < int(per_item)].reset_index(drop=True)
    return queries


def random_hits(targets: Sequence[int] | np.ndarray, n_items: int, k: int, seed: int = 0) -> np.ndarray:
    """Per query, whether ``targets[i]`` is among K distinct items drawn uniformly at random.

    Drawing K of n without replacement contains a given item with probability K / n, so one
    Bernoulli draw per query samples exactly that event without building the lists.
    """
    targets = np.asarray(targets, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return (rng.random(len(targets)) < random_expected_recall(n_items, k)).astype(np.float64)


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


def baseline_hits(dataset, k: int, head_fraction: float, seed: int = 0,
                  test_queries_per_item: int | None = None) -> pd.DataFrame:
    """The baselines' per-query hits in the evaluation stage's long format.

    Columns: method, seed, task, query_key, target, segment, rank (always 0: baselines keep no
    ranking), n_ranked (k), hit. Rec rows cover every test user; random and lexical cover the
    test search queries the models decode (:func:`decoded_test_queries` with
    ``test_queries_per_item``; every test query for None).
    """
    head = dataset.head_items(head_fraction)
    users = np.arange(dataset.n_users, dtype=np.int64)
    rec_targets = dataset.targets("test")
    histories = dataset.histories(HISTORY_SPLITS)
    visible = dataset.interactions[dataset.interactions["split"].isin(HISTORY_SPLITS)]
    popularity = np.bincount(visible["item_id"].to_numpy(), minlength=dataset.n_items)
    test_queries = decoded_test_queries(dataset, test_queries_per_item)
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
