"""Recall@K with per-query hits kept, so that methods can be compared with paired tests.

The functions live in :mod:`helpers.metrics`, below every stage (the embeddings and generative
stages score rankings too); this module re-exports them for the evaluation package.
"""
from __future__ import annotations

from ..metrics import (hits_at_k, hits_from_ranks, most_popular_hits, popularity_segments, recall_at_k,
                       target_ranks, top_k_by_score)

__all__ = ["hits_at_k", "recall_at_k", "top_k_by_score", "target_ranks", "hits_from_ranks",
           "popularity_segments", "most_popular_hits"]
