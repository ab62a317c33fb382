"""Lexical search baseline at scale: the sparse scoring against the dense scoring it replaced.

Synthetic queries shaped like the study's (a few filler words that most queries share, genre,
mood and decade words that many share, topic and name words that few share; test paraphrases
swap some words for ones no train query uses), 10 train and as many test queries per item, K=30.
Each measurement runs in a process of its own (its peak RSS is its own), and takes the least CPU
time of 3 runs except the sparse run over every test query at more than 20k. The dense
implementation scores the first ``--dense-queries`` and twice as many test queries; the
difference gives its cost per query without the TF-IDF fit, from which its time on every test
query is extrapolated. The sparse one scores the same queries (the hits must be equal) and then
every test query. ``--ml100k`` adds the default profile's real queries (built under
``SID_DATA_ROOT`` when missing).

    .venv/bin/python benchmarks/bench_lexical.py --train 20000 80000 200000 --dense-queries 2048
    .venv/bin/python benchmarks/bench_lexical.py --ml100k --train   # the default profile's queries only
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
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


def load(name: str, n_train: int):
    return ml100k_queries() if name == "ml100k" else synthetic_queries(n_train)


def worker(name: str, n_train: int, impl: str, queries: int | None, hits_out: Path, repeat: int) -> None:
    """One measurement in a process of its own, so that its peak RSS is its own."""
    train, train_items, test, test_items, n_items = load(name, n_train)
    m = len(test) if queries is None else min(queries, len(test))
    fn = dense_lexical_search_hits if impl == "dense" else lexical_search_hits
    fn(train[:50], train_items[:50], test[:5], test_items[:5], n_items, K)  # imports outside the timing
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    runs = [timed(fn, train, train_items, test[:m], test_items[:m], n_items, K) for _ in range(repeat)]
    hits, wall, cpu = min(runs, key=lambda run: run[2])  # the least disturbed run
    np.save(hits_out, hits)
    print(json.dumps({"impl": impl, "queries": m, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                      "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
                      "rss_before_gib": round(rss_before, 2), "recall": round(float(hits.mean()), 4)}))


def measure(name: str, n_train: int, impl: str, queries: int | None, tmp: Path) -> tuple[dict, np.ndarray]:
    out = tmp / f"{name}-{n_train}-{impl}-{queries}.npy"
    repeat = 3 if (n_train <= 20000 or queries is not None) else 1  # the best of 3 where it is cheap
    command = [sys.executable, __file__, "--worker", name, str(n_train), impl, str(queries or 0), str(out),
               str(repeat)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1]), np.load(out)


def run(name: str, n_train: int, dense_queries: int, tmp: Path) -> dict:
    train, _, test, _, n_items = load(name, n_train)
    row = {"data": name, "n_train": len(train), "n_test": len(test), "n_items": n_items,
           "density": round(density(train, test), 4), "load_before": round(os.getloadavg()[0], 2)}
    m = min(dense_queries, len(test) // 2)
    dense_half, hits_half = measure(name, n_train, "dense", m, tmp)
    dense, hits_dense = measure(name, n_train, "dense", 2 * m, tmp)
    sparse_sub, hits_sparse = measure(name, n_train, "sparse", 2 * m, tmp)
    sparse_all, hits_all = measure(name, n_train, "sparse", None, tmp)
    per_query = (dense["cpu_s"] - dense_half["cpu_s"]) / m  # the fit of TF-IDF cancels
    row.update({
        "subset": 2 * m, "equal_on_subset": bool(np.array_equal(hits_dense, hits_sparse)
                                                  and np.array_equal(hits_half, hits_all[:m])
                                                  and np.array_equal(hits_dense, hits_all[:2 * m])),
        "dense_subset_cpu_s": dense["cpu_s"], "dense_subset_wall_s": dense["wall_s"],
        "dense_peak_rss_gib": dense["peak_rss_gib"],
        "sparse_subset_cpu_s": sparse_sub["cpu_s"], "sparse_subset_wall_s": sparse_sub["wall_s"],
        "dense_ms_per_query": round(1000 * per_query, 3),
        "dense_all_cpu_s_extrapolated": round(dense["cpu_s"] + per_query * (len(test) - 2 * m), 1),
        "sparse_all_cpu_s": sparse_all["cpu_s"], "sparse_all_wall_s": sparse_all["wall_s"],
        "sparse_peak_rss_gib": sparse_all["peak_rss_gib"], "recall_all": sparse_all["recall"],
        "load_after": round(os.getloadavg()[0], 2),
    })
    return row


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        name, n_train, impl, queries, out, repeat = sys.argv[2:8]
        worker(name, int(n_train), impl, int(queries) or None, Path(out), int(repeat))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, nargs="*", default=[20000, 80000, 200000],
                        help="synthetic sizes: train queries (as many test queries; 10 per item)")
    parser.add_argument("--dense-queries", type=int, default=2048,
                        help="the dense implementation scores this many and twice as many test queries")
    parser.add_argument("--ml100k", action="store_true", help="also the default profile's real queries")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-lexical-") as tmp:
        jobs = ([("ml100k", 0)] if args.ml100k else []) + [("synthetic", n) for n in args.train]
        for name, n in jobs:
            rows.append(run(name, n, args.dense_queries, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
