"""Content-based item vectors: a pretrained sentence-transformer over each item's metadata text.

This is the DSI / TIGER-style space of the paper (Table 1, row 1): no fine-tuning, item
``text`` (title, year, genres and the other facts the data stage concatenates) -> one vector.
``encode_texts`` encodes them (``helpers.embeddings.stage`` loads the model of
``embeddings.model``); it also encodes items and queries for the fine-tuned encoders.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


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
