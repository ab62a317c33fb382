"""A dataset card for notebook 01: counts, example queries, popularity with the head cut."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .dataset import Dataset
from .queries import paraphrase_overlap


def dataset_card(ds: Dataset, head_fraction: float = 0.01) -> pd.DataFrame:
    split_counts = ds.interactions["split"].value_counts()
    per_item = ds.queries.groupby(["item_id", "split"]).size().unstack(fill_value=0)
    head = ds.head_items(head_fraction)
    pop = ds.popularity()
    rows = {
        "items": ds.n_items,
        "users": ds.n_users,
        "interactions": len(ds.interactions),
        "train interactions": int(split_counts.get("train", 0)),
        "valid interactions (one per user)": int(split_counts.get("valid", 0)),
        "test interactions (one per user)": int(split_counts.get("test", 0)),
        "train queries per item": f"{per_item.get('train', pd.Series([0])).min()}-{per_item.get('train', pd.Series([0])).max()}",
        "test queries per item": f"{per_item.get('test', pd.Series([0])).min()}-{per_item.get('test', pd.Series([0])).max()}",
        "queries": len(ds.queries),
        "distinct query strings": f"{ds.queries['text'].nunique() / max(1, len(ds.queries)):.0%}",
        "word overlap of a paraphrase with its train query (Jaccard)": f"{paraphrase_overlap(ds.queries):.2f}",
        "head items (top {:.0%} in train)".format(head_fraction): int(head.sum()),
        "share of train interactions on head items": f"{pop[head].sum() / max(1, pop.sum()):.1%}",
        "share of test targets on head items": f"{head[ds.targets('test')].mean():.1%}",
        "items never interacted with in train": int((pop == 0).sum()),
    }
    return pd.DataFrame({"value": rows}).rename_axis("dataset card")


def example_queries(ds: Dataset, item_ids: list[int] | None = None, n: int = 3) -> pd.DataFrame:
    """Train queries beside their test paraphrases for a few items."""
    if item_ids is None:
        item_ids = list(np.argsort(-ds.popularity(), kind="stable")[:3])
    q = ds.queries[ds.queries["item_id"].isin(item_ids) & (ds.queries["pair"] < n)]
    table = q.pivot_table(index=["item_id", "pair"], columns="split", values="text", aggfunc="first").reset_index()
    table.insert(1, "title", ds.items["title"].to_numpy()[table["item_id"]])
    return table[["item_id", "title", "pair", "train", "test"]]


def plot_popularity(ds: Dataset, head_fraction: float = 0.01, ax=None):
    """Train interactions per item, items sorted by popularity, log scale, head cut marked."""
    import matplotlib.pyplot as plt

    pop = np.sort(ds.popularity())[::-1]
    n_head = int(ds.head_items(head_fraction).sum())
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(np.arange(1, len(pop) + 1), np.maximum(pop, 0.8), lw=1.5)
    ax.axvline(n_head + 0.5, color="crimson", ls="--", label=f"head / torso cut (top {head_fraction:.0%}: {n_head} items)")
    ax.set(xscale="log", yscale="log", xlabel="item rank by train popularity",
           ylabel="train interactions", title="Popularity distribution (recommendation side)")
    ax.legend(frameon=False)
    return ax
