"""Lexical search baseline at scale: the sparse scoring against the dense scoring it replaced.

Synthetic queries shaped like the study's (a few filler words that most queries share, genre,
mood and decade words that many share, topic and name words that few share; test paraphrases
swap some words for ones no train query uses), ``per_item`` train and as many test queries per
item. Both implementations score the same first ``--dense-queries`` test queries (and must give
the same hits); the sparse one then scores every test query. Optionally the real ml100k queries.

    .venv/bin/python benchmarks/bench_lexical.py --train 20000 80000 200000 --dense-queries 2048
    .venv/bin/python benchmarks/bench_lexical.py --ml100k --train   # the default profile's queries only
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from helpers.evaluation.baselines import lexical_search_hits  # noqa: E402
from test_lexical import dense_lexical_search_hits  # noqa: E402  (the reference: the dense implementation)

FILLER = ["a", "the", "movie", "film", "about", "with", "from", "something", "looking", "for", "and", "in", "of"]
K = 30


def synthetic_queries(n_train: int, per_item: int = 10, seed: int = 0):
    """``n_train`` train and as many test queries over ``n_train / per_item`` items."""
    rng = np.random.default_rng(seed)
    n_items = n_train // per_item
    genres = [f"genre{i}" for i in range(20)]
    moods = [f"mood{i}" for i in range(60)]
    decades = [f"{1920 + 10 * i}s" for i in range(10)]
    topics = [f"topic{i}" for i in range(max(200, n_items // 5))]
    topic_p = 1.0 / np.arange(1, len(topics) + 1)  # Zipf: a few topics are common
    topic_p /= topic_p.sum()
    items = []
    for _ in range(n_items):
        items.append({
            "attrs": list(rng.choice(genres, 2)) + list(rng.choice(moods, 2)) + [rng.choice(decades)],
            "topics": list(rng.choice(topics, 3, p=topic_p)),
            "names": [f"name{rng.integers(0, 4 * n_items)}" for _ in range(2)],
        })

    def query(item: dict, paraphrase: bool) -> str:
        words = list(rng.choice(FILLER, rng.integers(1, 4), replace=False))
        words += list(rng.choice(item["attrs"], rng.integers(1, 3), replace=False))
        words += list(rng.choice(item["topics"] + item["names"], rng.integers(0, 3), replace=False))
        if paraphrase:  # some words become ones no train query has
            words = [f"syn{w}" if rng.random() < 0.3 else w for w in words]
        rng.shuffle(words)
        return " ".join(words)

    train_items = np.repeat(np.arange(n_items), per_item)
    train = [query(items[i], False) for i in train_items]
    test_items = rng.permutation(np.repeat(np.arange(n_items), per_item))
    test = [query(items[i], True) for i in test_items]
    return train, train_items, test, test_items, n_items


def ml100k_queries():
    from helpers.config import load_profile
    from helpers.data.stage import build_dataset

    ds = build_dataset(load_profile("ml100k"))
    train, test = ds.query_split("train"), ds.query_split("test")
    return (train["text"].tolist(), train["item_id"].to_numpy(), test["text"].tolist(), test["item_id"].to_numpy(),
            ds.n_items)


def density(train, test, n: int = 500) -> float:
    """Share of (test, train) pairs that share a word, over the first ``n`` test queries."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(token_pattern=r"[a-z0-9'-]+").fit(train)
    product = vectorizer.transform(test[:n]) @ vectorizer.transform(train).T
    return product.nnz / (product.shape[0] * product.shape[1])


def timed(fn, *args, **kwargs):
    started = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - started[0], time.process_time() - started[1]


def run(name: str, data, dense_queries: int) -> dict:
    train, train_items, test, test_items, n_items = data
    m = min(dense_queries, len(test))
    row = {"data": name, "n_train": len(train), "n_test": len(test), "n_items": n_items,
           "density": round(density(train, test), 4), "load_before": os.getloadavg()[0]}
    dense, row["dense_s"], row["dense_cpu_s"] = timed(dense_lexical_search_hits, train, train_items, test[:m],
                                                      test_items[:m], n_items, K)
    sparse, row["sparse_s"], row["sparse_cpu_s"] = timed(lexical_search_hits, train, train_items, test[:m],
                                                         test_items[:m], n_items, K)
    row["subset"] = m
    row["equal"] = bool(np.array_equal(dense, sparse))
    everything, row["sparse_all_s"], row["sparse_all_cpu_s"] = timed(lexical_search_hits, train, train_items, test,
                                                                     test_items, n_items, K)
    row["recall_all"] = round(float(everything.mean()), 4)
    row["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    row["load_after"] = os.getloadavg()[0]
    for key in list(row):
        if key.endswith("_s"):
            row[key] = round(row[key], 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, nargs="*", default=[20000, 80000, 200000],
                        help="synthetic sizes: train queries (as many test queries; 10 per item)")
    parser.add_argument("--dense-queries", type=int, default=2048, help="test queries both implementations score")
    parser.add_argument("--ml100k", action="store_true", help="also the default profile's real queries")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    rows = []
    if args.ml100k:
        rows.append(run("ml100k", ml100k_queries(), args.dense_queries))
        print(json.dumps(rows[-1]), flush=True)
    for n in args.train:
        rows.append(run("synthetic", synthetic_queries(n), args.dense_queries))
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
