"""The lexical search baseline's sparse scoring equals the dense scoring it replaced, hit for hit.

``dense_lexical_search_hits`` below is the baseline as it was first written (a dense
``chunk x n_train`` cosine block per step, per-item maxima by ``np.maximum.reduceat`` over every
column, ``rng.random`` noise over every item): the reference. The sparse implementation must give
the same hits for the same seed, including every random tie-break, on data built to tie a lot.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pytest

from helpers.evaluation import baselines


def dense_lexical_search_hits(train_texts: Sequence[str], train_items: Sequence[int], test_texts: Sequence[str],
                              test_items: Sequence[int], n_items: int, k: int, seed: int = 0,
                              chunk: int = 1024) -> np.ndarray:
    """The reference: the dense implementation, unchanged but for its name."""
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


WORDS = ["comedy", "drama", "movie", "film", "the", "1990s", "funny", "dark", "space", "war", "love", "a"]


def tie_heavy_queries(seed: int, n_items: int, n_train: int, n_test: int):
    """Short queries over 12 words (many identical texts, so many exact ties); some items have no
    train query, some test queries share no word with any train query or are empty."""
    rng = np.random.default_rng(seed)

    def text(words: list[str]) -> str:
        return " ".join(rng.choice(words, size=rng.integers(1, 4)))

    with_train = rng.choice(n_items, size=max(2, int(0.8 * n_items)), replace=False)
    train_items = rng.choice(with_train, size=n_train)
    train_texts = [text(WORDS) for _ in range(n_train)]
    test_items = rng.integers(0, n_items, size=n_test)  # some without any train query
    test_texts = [text(WORDS + ["unseen", "words"]) for _ in range(n_test)]
    test_texts[:3] = ["", "unseen words", "nothing known here"]
    return train_texts, train_items, test_texts, test_items


@pytest.mark.parametrize("data_seed", range(6))
@pytest.mark.parametrize("k", [1, 3, 10])
def test_sparse_equals_dense_on_tie_heavy_data(data_seed, k):
    train, train_items, test, test_items = tie_heavy_queries(data_seed, n_items=40, n_train=150, n_test=120)
    for seed in (0, 7):
        expected = dense_lexical_search_hits(train, train_items, test, test_items, 40, k, seed=seed, chunk=32)
        got = baselines.lexical_search_hits(train, train_items, test, test_items, 40, k, seed=seed)
        np.testing.assert_array_equal(got, expected)
        assert 0 < expected.mean() < 1, "the data must hold both hits and misses"


@pytest.mark.parametrize("chunk, max_entries", [(1, 1 << 24), (7, 1 << 24), (1024, 50), (1024, 1)])
def test_blocking_does_not_change_the_hits(chunk, max_entries):
    train, train_items, test, test_items = tie_heavy_queries(11, n_items=30, n_train=120, n_test=90)
    expected = dense_lexical_search_hits(train, train_items, test, test_items, 30, 3, seed=3)
    got = baselines.lexical_search_hits(train, train_items, test, test_items, 30, 3, seed=3, chunk=chunk,
                                        max_entries=max_entries)
    np.testing.assert_array_equal(got, expected)


def test_k_beyond_the_catalogue_is_always_a_hit():
    train, train_items, test, test_items = tie_heavy_queries(5, n_items=20, n_train=60, n_test=40)
    got = baselines.lexical_search_hits(train, train_items, test, test_items, 20, 25)
    np.testing.assert_array_equal(got, dense_lexical_search_hits(train, train_items, test, test_items, 20, 25))
    assert got.all()


def test_sparse_equals_dense_on_template_queries(synthetic_dataset):
    ds = synthetic_dataset
    train, test = ds.query_split("train"), ds.query_split("test")
    args = (train["text"].tolist(), train["item_id"], test["text"].tolist(), test["item_id"], ds.n_items)
    for k in (1, 5, 30):
        np.testing.assert_array_equal(baselines.lexical_search_hits(*args, k, seed=1),
                                      dense_lexical_search_hits(*args, k, seed=1))


def test_tie_noise_jumps_to_the_draws_of_a_dense_matrix():
    noise = baselines._TieNoise(seed=4, n_items=9)
    dense = np.random.default_rng(4).random((5, 9)) * 1e-9
    np.testing.assert_array_equal(noise.draw(1, 2, 6), dense[1, 2:6])
    np.testing.assert_array_equal(noise.draw(1, 7, 9), dense[1, 7:9])
    np.testing.assert_array_equal(noise.draw(4, 0, 9), dense[4])
    with pytest.raises(ValueError, match="increasing order"):
        noise.draw(2, 0, 1)


def test_the_data_exercises_both_noise_paths_and_most_queries_need_none(monkeypatch):
    """Tie-heavy data reaches both places where noise is drawn (a query tied with the items that
    score 0, and one tied with a few items around rank K), and template-like data decides most
    queries from the cosines alone."""
    drawn = {"whole row": 0, "tied items": 0}
    draw = baselines._TieNoise.draw

    def counting(self, row, first, stop):
        drawn["whole row" if (first, stop) == (0, self.n_items) else "tied items"] += 1
        return draw(self, row, first, stop)

    monkeypatch.setattr(baselines._TieNoise, "draw", counting)
    train, train_items, test, test_items = tie_heavy_queries(2, n_items=40, n_train=150, n_test=120)
    baselines.lexical_search_hits(train, train_items, test, test_items, 40, 3)
    assert drawn["whole row"] > 0 and drawn["tied items"] > 0, drawn


def test_no_test_queries_give_no_hits():
    assert baselines.lexical_search_hits(["a film"], [0], [], [], 3, 1).shape == (0,)
