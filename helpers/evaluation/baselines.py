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


#: Ties in the lexical baseline are broken by adding ``uniform[0, 1) * LEXICAL_TIE_NOISE`` to every
#: item's score; far below any real gap between two TF-IDF cosines.
LEXICAL_TIE_NOISE = 1e-9
#: Scores further apart than this are ordered whatever the tie-break noise (10x the noise's range).
_LEXICAL_MARGIN = 1e-8
#: Error bound of a cosine summed in another order than the sparse product's (unit vectors: ~1e-16).
_SUM_ORDER_SLACK = 1e-12


def lexical_search_hits(train_texts: Sequence[str], train_items: Sequence[int], test_texts: Sequence[str],
                        test_items: Sequence[int], n_items: int, k: int, seed: int = 0,
                        chunk: int = 1024, max_entries: int = 1 << 24) -> np.ndarray:
    """Per test query, whether its item is among the K items whose train queries match it best.

    An item's score is the highest TF-IDF cosine (scikit-learn, word unigrams) between the test
    query and any of the item's train queries; items whose train queries share no word with the
    test query score 0, items without train queries -1. Ties (the same best train query text for
    many items is common) are broken at random with ``seed``: item j of test query i gets
    ``uniform[0, 1) * 1e-9`` from draw ``i * n_items + j`` of ``np.random.default_rng(seed)``, so a
    tie is not resolved in favour of low item ids. A query is a hit when fewer than K items score
    strictly higher than its item.

    Sparse throughout: the test x train cosines are a sparse product (only pairs that share a
    word), at most ``chunk`` test queries and about ``max_entries`` nonzero cosines at a time, and
    no row is ever widened to ``n_train`` columns. Most queries are decided from the cosines at
    least as high as their item's (less 1e-8): an item more than 1e-8 above the target outranks it
    whatever the noise, one more than 1e-8 below never does. Only a query whose hit depends on the
    noise (its item ties with others around rank K, or shares no word with its own train queries,
    so ties with every item scoring 0) draws noise, jumping the generator to that query's draws
    (``PCG64.advance``). The hits therefore equal those of scoring every item densely with
    ``scores += rng.random((n_test, n_items)) * 1e-9`` (``tests/test_lexical.py`` checks this
    against the dense implementation this one replaced; ``benchmarks/README_embeddings.md`` has
    the timings).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    train_items = np.asarray(train_items, dtype=np.int64)
    test_items = np.asarray(test_items, dtype=np.int64)
    if len(train_texts) == 0:
        raise ValueError("The lexical baseline needs train queries; the dataset has none.")
    if len(test_items) == 0:
        return np.zeros(0, dtype=np.float64)
    vectorizer = TfidfVectorizer(token_pattern=r"[a-z0-9'-]+").fit(train_texts)
    train_rows = vectorizer.transform(train_texts).tocsr()  # n_train x vocabulary
    train_matrix = train_rows.T.tocsr()  # vocabulary x n_train
    test_matrix = vectorizer.transform(list(test_texts)).tocsr()
    catalogue = _TrainQueries(train_rows, train_items, n_items)
    noise = _TieNoise(seed, n_items)
    hits = np.zeros(len(test_items), dtype=np.float64)
    # a row of the product has at most min(sum of its words' train frequencies, n_train) entries
    words = test_matrix.copy()
    words.data[:] = 1.0
    row_bound = np.minimum(words @ np.diff(train_matrix.indptr).astype(np.float64), len(train_items))
    for lo, hi in _row_blocks(row_bound, chunk, max_entries):
        queries = test_matrix[lo:hi]
        hits[lo:hi] = _lexical_block(queries, queries @ train_matrix, lo, test_items[lo:hi], catalogue, k, noise)
    return hits


def _row_blocks(row_bound: np.ndarray, chunk: int, max_entries: int):
    """Consecutive (lo, hi) row ranges of at most ``chunk`` rows and about ``max_entries`` entries."""
    lo, n = 0, len(row_bound)
    ends = np.cumsum(row_bound)
    while lo < n:
        before = ends[lo - 1] if lo else 0.0
        hi = int(np.searchsorted(ends, before + max_entries, side="right"))
        hi = min(max(hi, lo + 1), lo + max(int(chunk), 1), n)
        yield lo, hi
        lo = hi


class _TrainQueries:
    """The train queries grouped by item: which rows of ``rows`` belong to each item."""

    def __init__(self, rows, items: np.ndarray, n_items: int):
        self.rows, self.items, self.n_items = rows, items, n_items
        self.order = np.argsort(items, kind="stable")
        self.count = np.bincount(items, minlength=n_items)
        self.start = np.cumsum(self.count) - self.count
        #: an item's score before its nonzero cosines: 0 with train queries, -1 without
        self.floor = np.where(self.count > 0, 0.0, -1.0)

    def own_scores(self, queries, targets: np.ndarray) -> np.ndarray:
        """Each query's cosine to its target item, summed in another order than the sparse
        product's (within ``_SUM_ORDER_SLACK`` of it); the floor for items without a match."""
        counts = self.count[targets]
        pair_rows = np.repeat(np.arange(len(targets)), counts)
        first = self.start[targets] - (np.cumsum(counts) - counts)
        pair_queries = self.order[np.repeat(first, counts) + np.arange(counts.sum())]
        dots = np.asarray(queries[pair_rows].multiply(self.rows[pair_queries]).sum(axis=1)).ravel()
        scores = self.floor[targets].copy()
        np.maximum.at(scores, pair_rows, dots)
        return scores


class _TieNoise:
    """Draws ``i * n_items + j`` .. of ``default_rng(seed).random``, in increasing order, by jumping ahead."""

    def __init__(self, seed: int, n_items: int):
        self.rng = np.random.default_rng(seed)
        self.n_items = n_items
        self.position = 0

    def draw(self, row: int, first: int, stop: int) -> np.ndarray:
        """The noise of items ``first .. stop - 1`` of test query ``row`` (rows asked in increasing order)."""
        start = int(row) * self.n_items + int(first)  # advance() refuses numpy integers
        if start < self.position:
            raise ValueError("tie-break noise must be drawn in increasing order")
        self.rng.bit_generator.advance(start - self.position)
        self.position = start + int(stop - first)
        return self.rng.random(int(stop - first)) * LEXICAL_TIE_NOISE


def _lexical_block(queries, cosines, offset: int, targets: np.ndarray, catalogue: _TrainQueries, k: int,
                   noise: _TieNoise) -> np.ndarray:
    """Hits of test queries ``offset ..`` from their sparse cosines to the train queries."""
    cosines = cosines.tocsr()
    rows, n_items, floor = cosines.shape[0], catalogue.n_items, catalogue.floor
    indptr, indices, data = cosines.indptr, cosines.indices, cosines.data
    estimate = catalogue.own_scores(queries, targets)
    # a query whose item scores (about) 0 or -1 ties with whole groups of items: scored over every item below
    every_item = estimate <= 2 * _LEXICAL_MARGIN
    lowest = np.where(every_item, np.inf, estimate - _SUM_ORDER_SLACK - _LEXICAL_MARGIN)
    kept = np.flatnonzero(data >= np.repeat(lowest, np.diff(indptr)))
    kept_rows = np.searchsorted(indptr, kept, side="right") - 1
    kept_items, kept_scores = catalogue.items[indices[kept]], data[kept]
    own = kept_items == targets[kept_rows]
    target_score = floor[targets].copy()  # exact: the target's best cosine is among the kept ones
    np.maximum.at(target_score, kept_rows[own], kept_scores[own])
    near = ~own & (kept_scores >= (target_score - _LEXICAL_MARGIN)[kept_rows])
    kept_rows, kept_items, kept_scores = kept_rows[near], kept_items[near], kept_scores[near]
    # each (query, item)'s best cosine among the kept ones: for a kept item, its score
    keys, inverse = np.unique(kept_rows * n_items + kept_items, return_inverse=True)
    best = np.full(len(keys), -np.inf)
    np.maximum.at(best, inverse, kept_scores)
    key_rows, key_items = keys // n_items, keys % n_items
    above = best > (target_score + _LEXICAL_MARGIN)[key_rows]
    surely_better = np.bincount(key_rows[above], minlength=rows)
    close = np.bincount(key_rows[~above], minlength=rows)  # within 1e-8 of the target: the noise decides
    hits = (surely_better + close < k).astype(np.float64)
    undecided = (surely_better < k) & (surely_better + close >= k) & ~every_item
    key_starts = np.searchsorted(key_rows, np.arange(rows + 1))  # keys are sorted by row
    for r in np.flatnonzero(undecided | every_item):
        target = targets[r]
        if every_item[r]:  # as the dense scoring did: every item's score plus its noise
            scores = floor.copy()
            np.maximum.at(scores, catalogue.items[indices[indptr[r]:indptr[r + 1]]], data[indptr[r]:indptr[r + 1]])
            scores += noise.draw(offset + r, 0, n_items)
            hits[r] = float((scores > scores[target]).sum() < k)
            continue
        mine = np.arange(key_starts[r], key_starts[r + 1])
        tied = mine[~above[mine]]
        items = key_items[tied]
        first, stop = min(items.min(), target), max(items.max(), target) + 1
        drawn = noise.draw(offset + r, first, stop)
        mine_score = target_score[r] + drawn[target - first]  # the same sums as the dense scoring's
        better = surely_better[r] + int(((best[tied] + drawn[items - first]) > mine_score).sum())
        hits[r] = float(better < k)
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
