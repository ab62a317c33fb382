"""Stage 02: item embedding spaces for Semantic IDs, and their dense-retrieval reference.

``content`` (pretrained text encoder), ``search`` (fine-tuned on queries), ``rec`` (ENMF via
RecBole), ``multitask`` (fine-tuned on queries and co-occurring items), ``fused_concat`` and
``fused_svd`` (search + rec). Entry points live in :mod:`helpers.embeddings.stage`:

    >>> from helpers.embeddings import build_embedding, load_embedding, reference_recalls
    >>> vectors = build_embedding(cfg, "multitask")      # float32 (n_items, d), row i = item_id i
"""
from .stage import (
    DISPLAY_NAMES,
    SPACES,
    build_all_embeddings,
    build_embedding,
    embedding_dir,
    load_card,
    load_embedding,
    load_query_encoder,
    reference_hits,
    reference_recalls,
)

__all__ = ["SPACES", "DISPLAY_NAMES", "embedding_dir", "build_embedding", "build_all_embeddings",
           "load_embedding", "load_card", "load_query_encoder", "reference_recalls", "reference_hits"]
