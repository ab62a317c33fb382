"""A small synthetic dataset with the real schema, for unit tests of every stage.

Items fall into ``n_topics`` topics; a topic gives the item a genre word and users mostly
interact within one topic, so both content and collaborative signals exist to be learned.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .dataset import Dataset

_TOPICS = ["space adventure", "romantic comedy", "crime thriller", "animated family", "war drama",
           "horror mystery", "musical", "western", "documentary", "film noir"]
_WORDS = ["robots", "pirates", "detectives", "dragons", "lawyers", "chefs", "spies", "soldiers",
          "teachers", "ghosts", "aliens", "boxers", "painters", "sailors", "kings", "twins"]


def make_synthetic_dataset(n_items: int = 60, n_users: int = 40, n_topics: int = 4,
                           history_length: int = 8, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    topic = np.arange(n_items) % n_topics
    items = pd.DataFrame({
        "item_id": np.arange(n_items, dtype=np.int64),
        "source_id": [f"s{i}" for i in range(n_items)],
        "title": [f"Title {i}" for i in range(n_items)],
        "year": pd.array(1950 + (np.arange(n_items) * 7) % 50, dtype="Int64"),
        "genres": [_TOPICS[t % len(_TOPICS)] for t in topic],
    })
    items["text"] = [
        f"A {_TOPICS[t % len(_TOPICS)]} about {_WORDS[i % len(_WORDS)]} and {_WORDS[(i * 3 + 1) % len(_WORDS)]}."
        for i, t in enumerate(topic)
    ]
    rows = []
    for user in range(n_users):
        favourite = user % n_topics
        pool = np.flatnonzero(topic == favourite)
        chosen = rng.choice(pool, size=min(history_length, len(pool)), replace=False)
        for pos, item in enumerate(chosen):
            rows.append((user, int(item), 4.0, 1_000_000 + user * 1000 + pos))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    inter["split"] = "train"
    last = inter.groupby("user_id").cumcount(ascending=False)
    inter.loc[last == 0, "split"] = "test"
    inter.loc[last == 1, "split"] = "valid"
    inter["rating"] = inter["rating"].astype(np.float32)
    queries = []
    qid = 0
    for split in ("train", "test"):
        for i, t in enumerate(topic):
            for pair in range(2):
                word = _WORDS[(i + pair) % len(_WORDS)]
                text = (f"{_TOPICS[t % len(_TOPICS)]} with {word}" if split == "train"
                        else f"movie about {word}, a {_TOPICS[t % len(_TOPICS)]}")
                queries.append((qid, i, split, pair, text))
                qid += 1
    q = pd.DataFrame(queries, columns=["query_id", "item_id", "split", "pair", "text"])
    ds = Dataset(items=items, interactions=inter, queries=q)
    ds.check()
    return ds
