"""Filtering, dense re-indexing and the chronological leave-last-out split.

Per user, interactions are ordered by (timestamp, source row order): ml-100k timestamps tie a
lot (for 415 of 943 users the last two share a second), so the source row order is the
documented, deterministic tie-break. The last interaction is ``test``, the one before it
``valid``, the rest ``train``. Later stages train on ``train`` only (and validate on ``valid``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError


def filter_interactions(catalogue: pd.DataFrame, interactions: pd.DataFrame, params: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply min_rating, max_items (most popular), min_user_interactions and max_users."""
    if len(catalogue) == 0:
        raise DataError("The catalogue is empty: the source has no items. Check data.path / the source files.")
    inter = interactions[interactions["source_id"].isin(set(catalogue["source_id"]))]
    if params.get("min_rating") is not None:
        inter = inter[inter["rating"] >= params["min_rating"]]
    if params.get("max_items"):
        counts = inter["source_id"].value_counts()
        # ties broken by source id so the kept set is deterministic
        ranked = sorted(counts.index, key=lambda s: (-counts[s], str(s)))
        keep = set(ranked[: params["max_items"]])
        catalogue = catalogue[catalogue["source_id"].isin(keep)]
        inter = inter[inter["source_id"].isin(keep)]
    min_n = max(3, int(params.get("min_user_interactions") or 3))  # train + valid + test
    sizes = inter.groupby("source_user")["source_id"].transform("size")
    inter = inter[sizes >= min_n]
    if params.get("max_users"):
        users = np.sort(inter["source_user"].unique())
        if len(users) > params["max_users"]:
            rng = np.random.default_rng(params.get("seed", 0))
            keep_users = set(rng.choice(users, size=params["max_users"], replace=False))
            inter = inter[inter["source_user"].isin(keep_users)]
    if inter.empty:
        raise DataError("No interactions left after filtering (min_rating, max_items, min_user_interactions, "
                        "max_users). Loosen those data parameters.")
    return catalogue.reset_index(drop=True), inter


def chronological_split(catalogue: pd.DataFrame, interactions: pd.DataFrame, params: dict) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Return ``(items, interactions, users)`` with dense ids and a ``split`` column (see module doc).

    ``users`` holds the source user id of each dense ``user_id`` (index = user_id).

    ``items`` keeps every catalogue item (items without interactions still take part in search);
    its rows are ordered by source id (numerically when ids are numbers) and ``item_id`` is the
    row number.
    """
    catalogue, inter = filter_interactions(catalogue, interactions, params)
    numeric = pd.to_numeric(catalogue["source_id"], errors="coerce")
    order = np.lexsort((catalogue["source_id"].astype(str).to_numpy(), numeric.fillna(np.inf).to_numpy()))
    items = catalogue.iloc[order].reset_index(drop=True)
    items.insert(0, "item_id", np.arange(len(items), dtype=np.int64))
    item_id = dict(zip(items["source_id"], items["item_id"]))

    users = np.sort(inter["source_user"].unique())
    user_num = pd.to_numeric(pd.Series(users), errors="coerce")
    users = users[np.lexsort((users.astype(str), user_num.fillna(np.inf).to_numpy()))]
    user_id = {u: i for i, u in enumerate(users)}

    out = pd.DataFrame({
        "user_id": inter["source_user"].map(user_id).astype(np.int64),
        "item_id": inter["source_id"].map(item_id).astype(np.int64),
        "rating": inter["rating"].astype(np.float32),
        "timestamp": inter["timestamp"].astype(np.int64),
        "row": inter["row"].astype(np.int64),
    })
    out = out.sort_values(["user_id", "timestamp", "row"], kind="stable").reset_index(drop=True)
    from_end = out.groupby("user_id").cumcount(ascending=False).to_numpy()
    out["split"] = np.where(from_end == 0, "test", np.where(from_end == 1, "valid", "train"))
    return items, out.drop(columns="row"), users
