"""Train examples cached per construction: tokenized once, memory-mapped by every model trained on them.

Every seed of a construction trains on the same rows (the seed draws the initial weights and the
order of the batches, not the examples), and under ``torchrun`` every rank reads them. So the
first job to need them builds :meth:`ExampleBuilder.train_columns` and saves each array as a
``.npy`` file (:meth:`ExampleColumns.save`); every later job, and every other rank, maps the
files read-only (``np.load(mmap_mode="r")``) instead of rebuilding. Mapped pages live in the
operating system's file cache, so the data-parallel ranks of one machine share one copy of the
examples where each would otherwise build and hold its own, and the trainer's Arrow table points
into the same pages (no copy).

Folder: ``runs/<profile>/examples/<construction>/<hash>/``. The hash covers the dataset and
Semantic-ID folders, the builder's settings (:data:`~helpers.generative.examples.SETTINGS`) and a
digest of the tokenizer's whole definition (vocabulary, normalizer, special-token template), so
the same IDs under another backbone or vocabulary land in another folder. The training
settings (epochs, learning rate, seed...) are not part of it: a sweep over them reuses the rows.
"""
from __future__ import annotations

import json
from pathlib import Path

from .. import artifacts
from .example_columns import ExampleColumns
from .examples import ExampleBuilder

SCHEMA = 1


def tokenizer_digest(tokenizer) -> str:
    """A short digest of everything that decides how ``tokenizer`` turns text into ids.

    A fast tokenizer's serialized definition (``backend_tokenizer.to_str()``: vocabulary, added
    tokens, normalizer, pre-tokenizer, post-processor) without its ``truncation`` and ``padding``:
    those record the arguments of the last call (the builder passes its own), so they change as
    soon as the tokenizer is used. Otherwise its vocabulary and special tokens.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        definition = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("truncation", "padding")}
    else:
        definition = {"vocabulary": tokenizer.get_vocab(), "special": tokenizer.all_special_tokens}
    return artifacts.config_hash({"class": type(tokenizer).__name__, "definition": definition})


def examples_dir(cfg: dict, construction: str, builder: ExampleBuilder, upstream: dict) -> Path:
    """The folder of the train examples ``builder`` makes for ``construction`` (``upstream``: its
    dataset and Semantic-ID folder names, as in the model's key)."""
    key = {"examples": builder.settings, "tokenizer": tokenizer_digest(builder.tokenizer), **upstream,
           "schema": SCHEMA}
    return artifacts.stage_dir(cfg, "examples", key, name=construction)


def cached_train_columns(cfg: dict, construction: str, builder: ExampleBuilder, upstream: dict) -> ExampleColumns:
    """``builder.train_columns()``, built once per folder (:func:`examples_dir`) and then memory-mapped.

    Safe from several processes at once (jobs, DDP ranks): one builds under a lock on the folder,
    the others wait, then map what it wrote.
    """
    folder = examples_dir(cfg, construction, builder, upstream)
    if not artifacts.is_complete(folder):
        with artifacts.lock(folder):
            if not artifacts.is_complete(folder):  # nobody built it while we waited
                columns = builder.train_columns()
                manifest = {"stage": "examples", "profile": cfg["name"], "construction": construction,
                            "settings": builder.settings, "tokenizer": type(builder.tokenizer).__name__,
                            "upstream": dict(upstream), "rows": len(columns),
                            "rows_by_task": columns.task_counts(), "bytes": columns.nbytes()}
                with artifacts.atomic_dir(folder, manifest) as tmp:
                    columns.save(tmp)
    return ExampleColumns.load(folder, mmap=True)
