"""Non-generative retrieval with each embedding space: the bars the generative model must clear.

Search: every test query is encoded by the space's own query encoder and matched to its nearest
items by cosine similarity in an exact FAISS inner-product index (``IndexFlatIP`` over
l2-normalised vectors). Spaces without a query encoder (rec) have no search number.

Recommendation: each user's ``train + valid`` history predicts their ``test`` item.

* item-vector spaces: the user is the mean of the l2-normalised vectors of their ``recent`` most
  recent history items; items are ranked by cosine to it;
* ENMF's own scores (rec space only): ``sum_k h_k u_k i_k`` with ENMF's user vectors, which were
  trained on the train split only (so the valid item is not in them);
* most popular: items ranked by train interaction count, for every user alike (ties broken by
  item id): the study's one most-popular recommender, :func:`helpers.metrics.most_popular_hits`,
  which the evaluation's baseline uses too.

Each rec number is given twice: ranking every item, and skipping the items already in the
history (the usual protocol; generative decoders can do either).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..metrics import hits_at_k, most_popular_hits, top_k_by_score
from .fusion import l2_normalize


def search_hits(item_vectors: np.ndarray, query_vectors: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """Per query, 1.0 if its target item is among the ``k`` nearest items by cosine (exact FAISS)."""
    import faiss

    items = l2_normalize(item_vectors)
    queries = l2_normalize(query_vectors)
    if queries.shape[1] != items.shape[1]:
        raise ValueError(f"query vectors have {queries.shape[1]} dims but item vectors {items.shape[1]}: "
                         "they must come from the same space.")
    index = faiss.IndexFlatIP(items.shape[1])
    index.add(items)
    _, ranked = index.search(queries, min(k, len(items)))
    return hits_at_k(ranked, np.asarray(targets), k)


def user_profiles(item_vectors: np.ndarray, histories: Sequence[np.ndarray], recent: int) -> np.ndarray:
    """Per user, the mean of the l2-normalised vectors of the ``recent`` last history items."""
    items = l2_normalize(item_vectors)
    profiles = np.zeros((len(histories), items.shape[1]), dtype=np.float32)
    for user, history in enumerate(histories):
        if len(history):
            profiles[user] = items[np.asarray(history)[-recent:]].mean(axis=0)
    return profiles


def ranked_hits(score_rows, targets: np.ndarray, k: int, exclude: Sequence[np.ndarray] | None,
                chunk: int = 2048) -> np.ndarray:
    """Hits@k of per-user score rows, computed in chunks of users (memory stays O(chunk x n_items)).

    ``score_rows(lo, hi)`` returns the (hi - lo, n_items) scores of users lo..hi-1.
    """
    out = []
    for lo in range(0, len(targets), chunk):
        hi = min(lo + chunk, len(targets))
        top = top_k_by_score(score_rows(lo, hi), k, None if exclude is None else exclude[lo:hi])
        out.append(hits_at_k(top, targets[lo:hi], k))
    return np.concatenate(out) if out else np.zeros(0)


def vector_rec_hits(item_vectors: np.ndarray, histories: Sequence[np.ndarray], targets: np.ndarray,
                    k: int, recent: int, exclude_history: bool) -> np.ndarray:
    """Hits@k of "mean of recent history vectors -> nearest items by cosine"."""
    profiles = l2_normalize(user_profiles(item_vectors, histories, recent))
    items = l2_normalize(item_vectors)
    return ranked_hits(lambda lo, hi: profiles[lo:hi] @ items.T, targets, k,
                       histories if exclude_history else None)


def score_rec_hits(user_scores, targets: np.ndarray, k: int, histories: Sequence[np.ndarray],
                   exclude_history: bool) -> np.ndarray:
    """Hits@k of a scoring function ``user_scores(lo, hi) -> (hi - lo, n_items)``."""
    return ranked_hits(user_scores, targets, k, histories if exclude_history else None)


def popularity_rec_hits(popularity: np.ndarray, histories: Sequence[np.ndarray], targets: np.ndarray,
                        k: int, exclude_history: bool) -> np.ndarray:
    """Hits@k of "most popular in train" for every user (:func:`helpers.metrics.most_popular_hits`)."""
    return most_popular_hits(targets, popularity, histories if exclude_history else None, k)
