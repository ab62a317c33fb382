"""Train examples as columns: every prompt's tokens in one flat array with row offsets.

Why not a frame of Python lists (what :meth:`ExampleBuilder.build` returns for display, decoding
and tests): a Python list of ints costs about 1.6 KB per example, and the paper profile trains on
25.1M examples per epoch (every history position of 162k users), 37 GiB held and 76 GiB at the
peak of converting them for the trainer (``benchmarks/README_scale.md``, "Train examples in
memory"). As columns an example costs its tokens at 4 bytes each plus two 8-byte offsets and
its keys, 177 bytes (4.0 GiB held, 9.0 GiB at the peak of building, measured at full size), and
the trainer reads an Arrow table over the same buffers (no copy).

=============  ===========================================================================
array          meaning
=============  ===========================================================================
task           int8 code into :data:`TASKS` (0 search, 1 rec)
query_key      int64: ``query_id`` for search, ``user_id`` for recommendation
target         int64 item_id the prompt should produce
input_values   int32: the tokenized prompts one after another
input_offsets  int64, one more than rows: row ``i``'s prompt is ``input_values[o[i]:o[i + 1]]``
label_values   int32: the targets' ID tokens one after another (no end token)
label_offsets  int64, as ``input_offsets``
=============  ===========================================================================
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from itertools import chain
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

TASKS = ("search", "rec")


def offsets_of(lengths: np.ndarray) -> np.ndarray:
    """Row offsets (int64, one more than rows) of rows with these lengths."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def flatten(rows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(values, offsets) of ragged rows of ints (e.g. a tokenizer's ``input_ids``)."""
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    offsets = offsets_of(lengths)
    values = np.fromiter(chain.from_iterable(rows), dtype=np.int32, count=int(offsets[-1]))
    return values, offsets


@dataclass
class ExampleColumns:
    """Tokenized examples of one split, column by column (see the module docstring)."""

    task: np.ndarray
    query_key: np.ndarray
    target: np.ndarray
    input_values: np.ndarray
    input_offsets: np.ndarray
    label_values: np.ndarray
    label_offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.target)

    # ---- building --------------------------------------------------------------------------
    @classmethod
    def of_rows(cls, task: str, query_key: np.ndarray, target: np.ndarray,
                inputs: tuple[np.ndarray, np.ndarray], labels: np.ndarray) -> "ExampleColumns":
        """Rows of one task: ``inputs`` as (values, offsets), ``labels`` a [rows, id_length] table."""
        labels = np.asarray(labels)
        n, width = labels.shape
        return cls(task=np.full(n, TASKS.index(task), dtype=np.int8),
                   query_key=np.asarray(query_key, dtype=np.int64), target=np.asarray(target, dtype=np.int64),
                   input_values=inputs[0].astype(np.int32, copy=False), input_offsets=inputs[1],
                   label_values=labels.astype(np.int32).reshape(-1),
                   label_offsets=np.arange(n + 1, dtype=np.int64) * width)

    @classmethod
    def concat(cls, parts: Sequence["ExampleColumns"]) -> "ExampleColumns":
        """The rows of ``parts`` one after another."""
        if not parts:
            return cls.empty()

        def joined(name: str) -> np.ndarray:
            values = [getattr(p, name) for p in parts]
            if not name.endswith("_offsets"):
                return np.concatenate(values)
            starts = np.cumsum([0] + [int(v[-1]) for v in values[:-1]])
            return np.concatenate([values[0]] + [v[1:] + s for v, s in zip(values[1:], starts[1:])])

        return cls(**{f.name: joined(f.name) for f in fields(cls)})

    @classmethod
    def empty(cls) -> "ExampleColumns":
        none = np.zeros(0, dtype=np.int64)
        return cls(np.zeros(0, dtype=np.int8), none, none, np.zeros(0, dtype=np.int32), np.zeros(1, dtype=np.int64),
                   np.zeros(0, dtype=np.int32), np.zeros(1, dtype=np.int64))

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> "ExampleColumns":
        """Columns of an examples frame (:data:`helpers.generative.examples.COLUMNS`)."""
        unknown = set(frame["task"]) - set(TASKS)
        if unknown:
            raise ValueError(f"Unknown task(s) {sorted(unknown)} in the examples; tasks are {TASKS}.")
        inputs, labels = flatten(list(frame["input_ids"])), flatten(list(frame["labels"]))
        return cls(task=frame["task"].map(TASKS.index).to_numpy(np.int8),
                   query_key=frame["query_key"].to_numpy(np.int64), target=frame["target"].to_numpy(np.int64),
                   input_values=inputs[0], input_offsets=inputs[1], label_values=labels[0], label_offsets=labels[1])

    # ---- reading ---------------------------------------------------------------------------
    def input_lengths(self) -> np.ndarray:
        """Tokens of each prompt (int64)."""
        return np.diff(self.input_offsets)

    def task_counts(self) -> dict[str, int]:
        """Examples per task, most first (as ``frame["task"].value_counts()``)."""
        counts = np.bincount(self.task, minlength=len(TASKS))
        order = sorted(range(len(TASKS)), key=lambda code: -counts[code])
        return {TASKS[code]: int(counts[code]) for code in order if counts[code]}

    def frame(self) -> pd.DataFrame:
        """The rows as an examples frame of Python lists, without ``seen`` (for display and tests)."""
        return pd.DataFrame({
            "task": np.asarray(TASKS, dtype=object)[self.task],
            "query_key": self.query_key, "target": self.target,
            "input_ids": [self.input_values[a:b].tolist() for a, b in zip(self.input_offsets[:-1], self.input_offsets[1:])],
            "labels": [self.label_values[a:b].tolist() for a, b in zip(self.label_offsets[:-1], self.label_offsets[1:])],
        })

    def to_arrow(self):
        """A ``pyarrow.Table`` of ``input_ids`` and ``labels`` (what the trainer reads) over these arrays."""
        import pyarrow as pa

        def ragged(values: np.ndarray, offsets: np.ndarray):
            return pa.LargeListArray.from_arrays(pa.array(offsets, type=pa.int64()), pa.array(values, type=pa.int32()))

        return pa.table({"input_ids": ragged(self.input_values, self.input_offsets),
                         "labels": ragged(self.label_values, self.label_offsets)})

    # ---- files -----------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """One ``<array>.npy`` per array in ``folder`` (:meth:`load` maps them back)."""
        for f in fields(self):
            np.save(Path(folder) / f"{f.name}.npy", getattr(self, f.name))

    @classmethod
    def load(cls, folder: Path, mmap: bool = True) -> "ExampleColumns":
        """The columns :meth:`save` wrote; with ``mmap`` read-only memory maps of the files (no copy:
        pages are read on first use and shared by every process that maps the same files)."""
        missing = [f.name for f in fields(cls) if not (Path(folder) / f"{f.name}.npy").is_file()]
        if missing:
            raise FileNotFoundError(f"{folder} holds no saved examples ({', '.join(f'{m}.npy' for m in missing)} "
                                    "missing): delete the folder, and the next training job builds them again.")
        return cls(**{f.name: np.load(Path(folder) / f"{f.name}.npy", mmap_mode="r" if mmap else None)
                      for f in fields(cls)})

    def nbytes(self) -> int:
        """Bytes held by the arrays."""
        return sum(getattr(self, f.name).nbytes for f in fields(self))
