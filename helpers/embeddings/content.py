"""Content-based item vectors: a pretrained sentence-transformer over each item's metadata text.

This is the DSI / TIGER-style space of the paper (Table 1, row 1): no fine-tuning, item
``text`` (title, year, genres and the other facts the data stage concatenates) -> one vector.
The same ``encode_texts`` also encodes items and queries for the fine-tuned encoders.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..data.dataset import Dataset
from .models import load_sentence_model


def encode_texts(model, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """L2-normalised float32 vectors of ``texts``, encoded in batches without autograd.

    sentence-transformers sorts inputs by length within ``encode`` so that padding stays small;
    ``inference_mode`` drops autograd bookkeeping (less memory, a little faster on CPU).
    """
    import torch

    model.eval()
    with torch.inference_mode():
        vectors = model.encode(list(texts), batch_size=int(batch_size), convert_to_numpy=True,
                               normalize_embeddings=True, show_progress_bar=False)
    return np.ascontiguousarray(vectors, dtype=np.float32)


def content_vectors(dataset: Dataset, params: dict, model=None) -> tuple[np.ndarray, object]:
    """Encode every item's ``text`` with the pretrained model of ``embeddings.model``.

    Args:
        dataset: the S&R dataset; rows of the result follow ``dataset.items`` (= item_id order).
        params: the profile's ``embeddings`` section (``model``, ``max_seq_length``,
            ``encode_batch_size``).
        model: an already loaded SentenceTransformer to reuse (else loaded from ``params``).

    Returns:
        (vectors float32 (n_items, d), the model) so callers can encode queries with it too.
    """
    if model is None:
        model = load_sentence_model(params["model"], params.get("max_seq_length"))
    vectors = encode_texts(model, dataset.items["text"].tolist(), params["encode_batch_size"])
    return vectors, model
