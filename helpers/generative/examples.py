"""Training and evaluation examples of the joint model: prompts in, Semantic IDs out.

One frame of examples per split, one row per (prompt, target item):

========  ===========================================================================
column    meaning
========  ===========================================================================
task      ``search`` | ``rec``
query_key int64: ``query_id`` for search, ``user_id`` for recommendation
target    int64 item_id the prompt should produce
input_ids list[int]: the tokenized prompt (special tokens included, at most ``max_input_tokens``)
labels    list[int]: the target's ID tokens in the model's vocabulary (no end token: IDs have a
          fixed length per task, so the decoder always knows when to stop)
seen      list[int]: item ids the user already interacted with (``rec`` rows of ``valid`` and
          ``test``); decoders may leave them out of a ranking. Empty for search and for ``train``.
========  ===========================================================================

Training reads the train split as columns instead (:meth:`ExampleBuilder.train_columns`, the same
rows as flat token arrays: :mod:`helpers.generative.example_columns`), without a Python list per
example.

Prompts (paper, section 4; Penha et al.'s joint S&R model):

* search: ``"search: <query text>"`` -> the item's *search* ID.
* recommendation: ``"recommend: "`` + the *rec* IDs of the user's most recent items, oldest first,
  most recent last (at most ``history_window`` items, and as many as fit ``max_input_tokens``)
  -> the next item's *rec* ID.

Under the ``shared`` scheme both IDs are the same; under ``separate`` search prompts only ever see
and produce search tokens and recommendation prompts rec tokens; under ``prefix_share`` the two
share their leading tokens.

Splits (no test interaction or test query is ever trained on):

* ``train``: every train query; for each user, the ``rec_targets_per_user`` most recent positions
  of the *train* history, each predicted from the items before it.
* ``valid``: each user's validation item from their train history (there are no validation
  queries: the dataset has train and test queries only).
* ``test``: every test query; each user's test item from their train + validation history.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from ..data.dataset import Dataset
from ..semantic_ids.ids import SemanticIds
from .backbone import id_table
from .example_columns import ExampleColumns, flatten, offsets_of

SEARCH_PREFIX = "search:"
REC_PREFIX = "recommend:"
SPLITS = ("train", "valid", "test")
#: The ``generative`` settings an :class:`ExampleBuilder` reads (with the tokenizer, all that decides its rows).
SETTINGS = ("max_input_tokens", "history_window", "rec_targets_per_user")
COLUMNS = ["task", "query_key", "target", "input_ids", "labels", "seen"]


def _prompt_frame(tokenizer, prefix: str) -> tuple[list[int], list[int]]:
    """Token ids before and after the ID slot of a rec prompt: ``[CLS] recommend : | [SEP]``.

    Derived from the tokenizer's own special-token template, so a T5 tokenizer (no start token,
    ``</s>`` at the end) works the same as the offline word-piece one.
    """
    with_specials = tokenizer(prefix, add_special_tokens=True)["input_ids"]
    bare = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    for start in range(len(with_specials) - len(bare) + 1):
        if with_specials[start:start + len(bare)] == bare:
            cut = start + len(bare)
            return with_specials[:cut], with_specials[cut:]
    raise ValueError(f"Cannot find the prompt {prefix!r} in its own tokenization {with_specials}.")


def search_prompts(queries: pd.Series) -> list[str]:
    return [f"{SEARCH_PREFIX} {text}" for text in queries]


def training_corpus(ds: Dataset) -> list[str]:
    """The prompt texts the model trains on (chooses the word pieces of a ``vocabulary: corpus``)."""
    return [REC_PREFIX] + search_prompts(ds.query_split("train")["text"])


class ExampleBuilder:
    """Turns the dataset and the Semantic IDs into tokenized examples for one tokenizer."""

    def __init__(self, ds: Dataset, ids: SemanticIds, tokenizer, gen_cfg: dict):
        if ids.n_items != ds.n_items:
            raise ValueError(f"{ids.n_items} Semantic IDs for {ds.n_items} items: they come from different datasets.")
        self.ds, self.ids, self.tokenizer = ds, ids, tokenizer
        self.settings = {name: gen_cfg.get(name) for name in SETTINGS}
        self.max_input_tokens = int(gen_cfg["max_input_tokens"])
        self.history_window = int(gen_cfg["history_window"])
        per_user = gen_cfg.get("rec_targets_per_user")
        self.rec_targets_per_user = None if per_user is None else int(per_user)
        self.search_ids = id_table(tokenizer, ids, "search")
        self.rec_ids = id_table(tokenizer, ids, "rec")
        self.rec_head, self.rec_tail = _prompt_frame(tokenizer, REC_PREFIX)
        room = self.max_input_tokens - len(self.rec_head) - len(self.rec_tail)
        # how many history items fit the token budget: the window, or fewer if IDs are long
        self.items_per_prompt = max(1, min(self.history_window, room // self.rec_ids.shape[1]))

    # ---- prompts ---------------------------------------------------------------------------
    def rec_input(self, history: np.ndarray) -> list[int]:
        """The prompt for a user whose items so far are ``history`` (chronological)."""
        recent = history[-self.items_per_prompt:]
        return self.rec_head + self.rec_ids[recent].reshape(-1).tolist() + self.rec_tail

    def search_inputs(self, texts: Iterable[str]) -> list[list[int]]:
        encoded = self.tokenizer(search_prompts(texts), truncation=True, max_length=self.max_input_tokens)
        return [list(x) for x in encoded["input_ids"]]

    # ---- splits ----------------------------------------------------------------------------
    def search_examples(self, split: str, queries_per_item: int | None = None) -> pd.DataFrame:
        queries = self.ds.query_split(split)
        if queries_per_item is not None:  # the first n paraphrases of every item (a speed knob for test)
            queries = queries[queries["pair"] < queries_per_item].reset_index(drop=True)
        return self.search_rows(queries)

    def search_rows(self, queries: pd.DataFrame) -> pd.DataFrame:
        """Search examples of any query frame with columns query_id, item_id, text (e.g. human queries)."""
        targets = queries["item_id"].to_numpy(np.int64)
        return pd.DataFrame({
            "task": "search",
            "query_key": queries["query_id"].to_numpy(np.int64),
            "target": targets,
            "input_ids": self.search_inputs(queries["text"]),
            "labels": [row.tolist() for row in self.search_ids[targets]],
            "seen": [[] for _ in range(len(queries))],
        }, columns=COLUMNS)

    def rec_examples(self, split: str) -> pd.DataFrame:
        if split == "train":
            histories = self.ds.histories(("train",))
            rows = []
            for user, history in enumerate(histories):
                positions = range(1, len(history))  # predict history[t] from history[:t]
                if self.rec_targets_per_user is not None:
                    positions = positions[-self.rec_targets_per_user:] if self.rec_targets_per_user else []
                for t in positions:
                    rows.append((user, history[t], history[:t]))
        else:
            visible = ("train",) if split == "valid" else ("train", "valid")
            histories = self.ds.histories(visible)
            targets = self.ds.targets(split)
            rows = [(user, targets[user], histories[user]) for user in range(len(targets))]
        return pd.DataFrame({
            "task": "rec",
            "query_key": np.array([r[0] for r in rows], dtype=np.int64),
            "target": np.array([r[1] for r in rows], dtype=np.int64),
            "input_ids": [self.rec_input(r[2]) for r in rows],
            "labels": [self.rec_ids[r[1]].tolist() for r in rows],
            # train rows are never decoded: keeping each history prefix would cost the sum of squared
            # history lengths (~559 GiB on MovieLens-25M, benchmarks/README_scale.md)
            "seen": [[] for _ in rows] if split == "train" else [np.asarray(r[2], dtype=np.int64).tolist() for r in rows],
        }, columns=COLUMNS)

    # ---- train examples as columns -----------------------------------------------------------
    def train_columns(self, tasks: tuple[str, ...] = ("search", "rec"), chunk_rows: int = 1 << 20) -> ExampleColumns:
        """The rows of ``build("train", tasks)``, as columns (what training reads).

        Built without a Python list per example: search prompts are flattened from the tokenizer's
        output, rec prompts are gathered from the ID table for ``chunk_rows`` rows at a time.
        """
        parts = []
        if "search" in tasks:
            queries = self.ds.query_split("train")
            targets = queries["item_id"].to_numpy(np.int64)
            parts.append(ExampleColumns.of_rows("search", queries["query_id"].to_numpy(np.int64), targets,
                                                flatten(self.search_inputs(queries["text"])), self.search_ids[targets]))
        if "rec" in tasks:
            parts.append(self._rec_train_columns(chunk_rows))
        return ExampleColumns.concat(parts)

    def _rec_train_positions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(items, user, position, t): every train item in user order, and per row its user, the global
        position of its target in ``items`` and that position within the user's history.

        Rows come in the order of ``rec_examples("train")``: a row predicts ``history[t]`` from
        ``history[:t]``, for t >= 1, or for the ``rec_targets_per_user`` most recent t only.
        """
        histories = self.ds.histories(("train",))
        lengths = np.fromiter(map(len, histories), dtype=np.int64, count=len(histories))
        items = np.concatenate(histories) if len(histories) else np.zeros(0, dtype=np.int64)
        first = np.ones_like(lengths)
        if self.rec_targets_per_user is not None:
            first = np.maximum(first, lengths - self.rec_targets_per_user)
        per_user = np.maximum(lengths - first, 0)
        user = np.repeat(np.arange(len(lengths), dtype=np.int64), per_user)
        t = np.arange(int(per_user.sum()), dtype=np.int64) - np.repeat(offsets_of(per_user)[:-1] - first, per_user)
        return items, user, offsets_of(lengths)[:-1][user] + t, t

    def _rec_train_columns(self, chunk_rows: int) -> ExampleColumns:
        """Rec train rows, ``rec_input`` vectorised: [head | window items' ID tokens | tail] with
        the window's empty slots (a history shorter than the window) masked out."""
        items, user, position, t = self._rec_train_positions()
        k, width = self.items_per_prompt, self.rec_ids.shape[1]
        head, tail = np.asarray(self.rec_head, dtype=np.int32), np.asarray(self.rec_tail, dtype=np.int32)
        slots = np.arange(k)
        parts = []
        for start in range(0, len(position), chunk_rows):
            at, back = position[start:start + chunk_rows], np.minimum(t[start:start + chunk_rows], k)
            rows = len(at)
            filled = slots[None, :] >= (k - back)[:, None]  # [rows, k]: slot j holds history[t - k + j]
            window = np.where(filled, at[:, None] - k + slots[None, :], 0)
            tokens = np.concatenate([np.broadcast_to(head, (rows, len(head))),
                                     self.rec_ids[items[window]].reshape(rows, k * width).astype(np.int32),
                                     np.broadcast_to(tail, (rows, len(tail)))], axis=1)
            keep = np.concatenate([np.ones((rows, len(head)), dtype=bool), np.repeat(filled, width, axis=1),
                                   np.ones((rows, len(tail)), dtype=bool)], axis=1)
            lengths = len(head) + len(tail) + back * width
            parts.append(ExampleColumns.of_rows("rec", user[start:start + chunk_rows], items[at],
                                                (tokens[keep], offsets_of(lengths)), self.rec_ids[items[at]]))
        return ExampleColumns.concat(parts)  # no rows: the empty columns

    def build(self, split: str, tasks: tuple[str, ...] = ("search", "rec"),
              test_queries_per_item: int | None = None) -> pd.DataFrame:
        """Examples of ``split`` (``train`` | ``valid`` | ``test``) for ``tasks``, search rows first.

        ``test_queries_per_item``: keep only test queries with ``pair`` below it (all if None).
        """
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
        frames = []
        if "search" in tasks and split != "valid":
            frames.append(self.search_examples(split, test_queries_per_item if split == "test" else None))
        if "rec" in tasks:
            frames.append(self.rec_examples(split))
        if not frames:
            return pd.DataFrame(columns=COLUMNS)
        return pd.concat(frames, ignore_index=True)
