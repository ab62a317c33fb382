"""The search-and-recommendation dataset: the artifact of stage 01 and its schema.

Files in the stage folder (``data/runs/<profile>/data/<hash>/``):

``items.parquet`` (one row per item, row order == ``item_id``)
    item_id (int64, 0..n_items-1, dense: every later artifact indexes rows by it),
    source_id (str, the id in the source data), title (str), year (Int64, nullable),
    genres (str, ``|``-separated), text (str, the item's metadata as one passage: what the
    content/search/multitask bi-encoders embed).
``interactions.parquet`` (sorted by user_id, then chronologically)
    user_id (int64, dense), item_id (int64), rating (float32), timestamp (int64, seconds),
    split (str: ``train`` | ``valid`` | ``test``). Each user has exactly one ``test`` row (their
    last interaction) and one ``valid`` row (the one before it); ties on timestamp are broken by
    source row order, so the split is deterministic.
``queries.parquet``
    query_id (int64), item_id (int64), split (``train`` | ``test``), pair (int: the test query
    with pair p paraphrases the train query with pair p of the same item), text (str).
    Exactly ``per_item`` train and ``per_item`` test queries per item; no query contains the title.
``manifest.json``
    counts, source, parameters and timings.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError

ITEM_COLUMNS = ["item_id", "source_id", "title", "year", "genres", "text"]
INTERACTION_COLUMNS = ["user_id", "item_id", "rating", "timestamp", "split"]
QUERY_COLUMNS = ["query_id", "item_id", "split", "pair", "text"]


@dataclass
class Dataset:
    items: pd.DataFrame
    interactions: pd.DataFrame
    queries: pd.DataFrame
    path: Path | None = None

    # ---- sizes -------------------------------------------------------------------------
    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_users(self) -> int:
        return int(self.interactions["user_id"].max()) + 1 if len(self.interactions) else 0

    # ---- views every stage needs ---------------------------------------------------------
    def histories(self, splits: tuple[str, ...] = ("train",)) -> list[np.ndarray]:
        """Per user (index = user_id), item ids of the given splits in chronological order."""
        rows = self.interactions[self.interactions["split"].isin(splits)]
        grouped = rows.groupby("user_id", sort=True)["item_id"].apply(np.asarray)
        out = [np.zeros(0, dtype=np.int64)] * self.n_users
        for user, items in grouped.items():
            out[int(user)] = items.astype(np.int64)
        return out

    def targets(self, split: str) -> np.ndarray:
        """item_id of each user's ``valid`` or ``test`` interaction (index = user_id)."""
        rows = self.interactions[self.interactions["split"] == split].sort_values("user_id")
        return rows["item_id"].to_numpy(np.int64)

    def popularity(self) -> np.ndarray:
        """Train-interaction count per item (index = item_id)."""
        train = self.interactions[self.interactions["split"] == "train"]
        return np.bincount(train["item_id"].to_numpy(), minlength=self.n_items)

    def head_items(self, fraction: float = 0.01) -> np.ndarray:
        """Boolean mask: the top ``fraction`` most popular items in train (at least one item)."""
        pop = self.popularity()
        n_head = max(1, int(round(fraction * self.n_items)))
        order = np.argsort(-pop, kind="stable")
        mask = np.zeros(self.n_items, dtype=bool)
        mask[order[:n_head]] = True
        return mask

    def query_split(self, split: str) -> pd.DataFrame:
        return self.queries[self.queries["split"] == split].reset_index(drop=True)

    # ---- persistence ----------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        folder = Path(folder)
        self.items[ITEM_COLUMNS].to_parquet(folder / "items.parquet", index=False)
        self.interactions[INTERACTION_COLUMNS].to_parquet(folder / "interactions.parquet", index=False)
        self.queries[QUERY_COLUMNS].to_parquet(folder / "queries.parquet", index=False)

    @classmethod
    def load(cls, folder: Path) -> "Dataset":
        folder = Path(folder)
        try:
            ds = cls(
                items=pd.read_parquet(folder / "items.parquet"),
                interactions=pd.read_parquet(folder / "interactions.parquet"),
                queries=pd.read_parquet(folder / "queries.parquet"),
                path=folder,
            )
        except FileNotFoundError as err:
            raise DataError(f"Incomplete dataset folder {folder}: {err}. Re-run notebook 01.") from err
        ds.check()
        return ds

    def check(self) -> None:
        """Assert the schema's invariants; raise DataError naming the broken one."""
        if self.n_items == 0:
            raise DataError("The catalogue is empty: no item survived loading and filtering.")
        if not np.array_equal(self.items["item_id"].to_numpy(), np.arange(self.n_items)):
            raise DataError("items.item_id must be 0..n_items-1 in row order.")
        per_user = self.interactions.groupby("split")["user_id"].nunique()
        counts = self.interactions[self.interactions["split"] != "train"].groupby(["user_id", "split"]).size()
        if len(counts) and counts.max() != 1:
            raise DataError("Each user must have exactly one valid and one test interaction.")
        if per_user.get("test", 0) != self.n_users or per_user.get("valid", 0) != self.n_users:
            raise DataError("Every user needs a valid and a test interaction (min_user_interactions >= 3).")
