"""The Semantic-ID artifact: what stage 03 writes and the generative model reads.

Each item has one token sequence per task. Under the ``shared`` scheme both are the same
sequence; under ``separate`` they come from different spaces and use disjoint, task-tagged
tokens; under ``prefix_share`` they share leading tokens and differ in the task-specific rest.
Within a task every item's sequence has the same length (a disambiguation token is part of the
sequence where codes collide), and no two items share a sequence, so an ID maps to exactly one
item: ``item_of(task, tokens)``.

Files in the stage folder:
``ids.parquet``: item_id (int64, row order), search_id (str), rec_id (str): the tokens joined
    without separator, e.g. ``<a_12><b_3><c_0>``.
``vocabulary.json``: sorted list of every new token.
``codes_<part>.npy``: raw integer codes per part (before disambiguation), e.g. ``codes_shared.npy``.
``diagnostics.json``: collision rate, utilisation, perplexity, reconstruction error, timings.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError

TASKS = ("search", "rec")
_TOKEN = re.compile(r"<[^<>]+>")


def split_tokens(joined: str) -> list[str]:
    """``"<a_1><b_2>"`` -> ``["<a_1>", "<b_2>"]``."""
    return _TOKEN.findall(joined)


@dataclass
class SemanticIds:
    construction: str
    scheme: str
    search_tokens: list[list[str]]
    rec_tokens: list[list[str]]
    vocabulary: list[str]
    codes: dict[str, np.ndarray] = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._index = {task: {tuple(t): i for i, t in enumerate(self.tokens(task))} for task in TASKS}
        for task in TASKS:
            seqs = self.tokens(task)
            if len(self._index[task]) != len(seqs):
                raise DataError(f"{self.construction}: two items share a {task} ID; disambiguate before saving.")
            if len({len(s) for s in seqs}) > 1:
                raise DataError(f"{self.construction}: {task} IDs must all have the same length.")
            unknown = {tok for s in seqs for tok in s} - set(self.vocabulary)
            if unknown:
                raise DataError(f"{self.construction}: tokens missing from the vocabulary: {sorted(unknown)[:5]}")

    @property
    def n_items(self) -> int:
        return len(self.search_tokens)

    def tokens(self, task: str) -> list[list[str]]:
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        return self.search_tokens if task == "search" else self.rec_tokens

    def id_length(self, task: str) -> int:
        return len(self.tokens(task)[0])

    def item_of(self, task: str, tokens) -> int | None:
        """The item an ID denotes, or None if the sequence is not a valid ID of that task."""
        if isinstance(tokens, str):
            tokens = split_tokens(tokens)
        return self._index[task].get(tuple(tokens))

    # ---- persistence ----------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        folder = Path(folder)
        pd.DataFrame({
            "item_id": np.arange(self.n_items, dtype=np.int64),
            "search_id": ["".join(t) for t in self.search_tokens],
            "rec_id": ["".join(t) for t in self.rec_tokens],
        }).to_parquet(folder / "ids.parquet", index=False)
        (folder / "vocabulary.json").write_text(json.dumps(sorted(self.vocabulary)))
        for part, codes in self.codes.items():
            np.save(folder / f"codes_{part}.npy", codes)
        (folder / "diagnostics.json").write_text(json.dumps(
            {"construction": self.construction, "scheme": self.scheme, **self.diagnostics}, indent=2, default=str))

    @classmethod
    def load(cls, folder: Path) -> "SemanticIds":
        folder = Path(folder)
        table = pd.read_parquet(folder / "ids.parquet")
        diagnostics = json.loads((folder / "diagnostics.json").read_text())
        codes = {p.stem.removeprefix("codes_"): np.load(p) for p in folder.glob("codes_*.npy")}
        return cls(
            construction=diagnostics.pop("construction"),
            scheme=diagnostics.pop("scheme"),
            search_tokens=[split_tokens(s) for s in table["search_id"]],
            rec_tokens=[split_tokens(s) for s in table["rec_id"]],
            vocabulary=json.loads((folder / "vocabulary.json").read_text()),
            codes=codes,
            diagnostics=diagnostics,
        )
