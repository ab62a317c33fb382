"""Peak memory and seconds per epoch of RecBole's ENMF vs our SparseENMF, on synthetic data.

Each (implementation, n_items, dim) runs in its own process: build a synthetic dataset, load it
through RecBole (``prepare_recbole``), reset the process's peak RSS (``/proc/self/clear_refs``),
build the model and train ``--epochs`` epochs with RecBole's trainer, then read the peak RSS
(``VmHWM``). "train peak" is that peak minus the RSS right before the model was built: what the
model, its optimiser and its loss cost on top of the loaded data. Next to it, the sizes of
RecBole's big tensors for that run (computed, not measured), and at the end the same sizes for
MovieLens-25M.

Synthetic data: ``--users`` users; history lengths log-normal (median ``--median-history``),
at least 3, the longest ``--max-history-fraction`` x n_items (MovieLens-25M: 32,202 of 59,047
rated movies, 0.55; the default 0.25 keeps RecBole's (batch, L, d) gather within the memory of
a shared 24 GiB machine); items uniform without repetition. The last two interactions of each
user are valid and test, as in the study's split.

    .venv/bin/python benchmarks/bench_enmf.py                      # the table in README_enmf.md
    .venv/bin/python benchmarks/bench_enmf.py --items 2000 --dims 64 --extra "" --epochs 1  # quick look

``--compare-ml100k EPOCHS`` instead trains the ml100k profile's ENMF (its ``embeddings.rec``
settings and seed, on CPU) with each implementation and prints their losses, the Recall@K of
ENMF's own scores (test item, train + valid history skipped, as notebook 02's reference) and how
far their vectors are apart. The dataset is built (or reused) under ``$SID_DATA_ROOT``.
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
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GIB = 2**30
#: MovieLens-25M (GroupLens README; the per-user maximum from seljuk.me's statistics of ratings.csv).
ML25M = {"users": 162_541, "items_catalogue": 62_423, "items_rated": 59_047, "ratings": 25_000_095,
         "max_user_ratings": 32_202}


# ---- data ---------------------------------------------------------------------------------------
def synthetic_dataset(n_users: int, n_items: int, median_history: int, max_fraction: float, seed: int = 0):
    """A study ``Dataset`` with random histories of log-normal length; the first user is the longest."""
    from helpers.data.dataset import Dataset
    from helpers.data.synthetic import make_synthetic_dataset

    base = make_synthetic_dataset(n_items=n_items, n_users=1)
    rng = np.random.default_rng(seed)
    longest = max(5, int(max_fraction * n_items))
    lengths = np.clip(rng.lognormal(np.log(median_history), 1.0, n_users).astype(np.int64), 5, longest)
    lengths[0] = longest
    users = np.repeat(np.arange(n_users), lengths)
    items = np.concatenate([rng.choice(n_items, size=n, replace=False) for n in lengths])
    position = np.arange(len(users)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    inter = pd.DataFrame({"user_id": users, "item_id": items, "rating": np.float32(4.0),
                          "timestamp": 1_000_000 + users * 100_000 + position})
    last = np.repeat(lengths, lengths) - 1 - position
    inter["split"] = np.where(last == 0, "test", np.where(last == 1, "valid", "train"))
    ds = Dataset(items=base.items, interactions=inter, queries=base.queries)
    ds.check()
    return ds


# ---- sizes --------------------------------------------------------------------------------------
def big_tensors(n_users: int, n_items: int, longest: int, dim: int, batch: int, train_inter: int,
                mean_history: float) -> dict:
    """Bytes of the tensors that grow with the data (RecBole's rows include the padding row 0)."""
    return {
        "recbole_bmm_items_dxd": (n_items + 1) * dim * dim * 4,           # torch.bmm(E, E^T) before .sum(0)
        "recbole_history_matrix": (n_users + 1) * longest * 8,            # int64, kept on the device
        "recbole_batch_gather": batch * longest * dim * 4,                # [batch, L, d] item vectors
        "sparse_gram_dxd": dim * dim * 4,                                 # E^T E
        "sparse_csr": train_inter * 8 + (n_users + 2) * 8,                # items + indptr, int64
        "sparse_batch_gather_mean": int(batch * mean_history * dim * 4),  # [pairs, d], mean batch
    }


# ---- one measurement ----------------------------------------------------------------------------
def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def torch_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def measure_one(implementation: str, n_items: int, dim: int, args) -> dict:
    torch_threads(args.threads)
    from helpers.embeddings.enmf import build_enmf, prepare_recbole, quiet_recbole
    from recbole.utils import get_trainer

    ds = synthetic_dataset(args.users, n_items, args.median_history, args.max_history_fraction)
    params = {"epochs": args.epochs, "batch_size": args.batch_size, "dim": dim, "lr": 0.001}
    with tempfile.TemporaryDirectory(prefix="sid-bench-enmf-") as tmp, quiet_recbole(tmp):
        config, _rb, train_data = prepare_recbole(ds, params, Path(tmp), 0, "cpu")
        train = train_data._dataset
        lengths = np.bincount(train.inter_feat[train.uid_field].numpy(), minlength=train.user_num)
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        before = _status("VmRSS")
        model = build_enmf(config, train, implementation)
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
        wall, cpu, losses = [], [], []
        for epoch in range(args.epochs):
            started, used = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
            losses.append(float(trainer._train_epoch(train_data, epoch)))
            after = resource.getrusage(resource.RUSAGE_SELF)
            wall.append(time.perf_counter() - started)
            cpu.append(after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime)
        peak = _status("VmHWM")
        trainer.tensorboard.close()
    sizes = big_tensors(train.user_num - 1, train.item_num - 1, int(lengths.max()), dim, args.batch_size,
                        int(lengths.sum()), float(lengths[1:].mean()))
    return {"implementation": implementation, "n_items": n_items, "dim": dim, "users": train.user_num - 1,
            "train_interactions": int(lengths.sum()), "longest_history": int(lengths.max()),
            "rss_before_model_gib": before / GIB, "peak_rss_gib": peak / GIB,
            "train_peak_gib": (peak - before) / GIB, "wall_s_per_epoch": float(np.mean(wall)),
            "cpu_s_per_epoch": float(np.mean(cpu)), "epoch_wall_s": wall, "losses": losses,
            "computed_gib": {k: v / GIB for k, v in sizes.items()}}


# ---- ml100k: the implementations side by side ----------------------------------------------------
def compare_ml100k(epochs: int, implementations: list[str]) -> None:
    from helpers.config import load_profile
    from helpers.data.stage import build_dataset
    from helpers.embeddings import reference as ref
    from helpers.embeddings.enmf import train_enmf

    cfg = load_profile("ml100k")
    ds = build_dataset(cfg)
    rec, k = dict(cfg["embeddings"]["rec"]), cfg["evaluation"]["k"]
    histories, targets = ds.histories(("train", "valid")), ds.targets("test")
    runs = {}
    for impl in implementations:
        started = time.time()
        r = train_enmf(ds, {**rec, "epochs": epochs, "implementation": impl}, seed=cfg["embeddings"]["seed"],
                       device="cpu")
        hits = ref.score_rec_hits(lambda lo, hi, r=r: r.scores(np.arange(lo, hi)), targets, k, histories,
                                  exclude_history=True)
        runs[impl] = r
        print(f"{impl}: {epochs} epochs in {time.time() - started:.1f} s; ENMF-score Recall@{k} {hits.mean():.4f}; "
              f"losses {[round(x, 1) for x in r.train_loss]}", flush=True)
    names = list(runs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            diffs = []
            for field in ("item_vectors", "user_vectors", "h_weights"):
                x, y = getattr(runs[a], field), getattr(runs[b], field)
                diffs.append(f"{field} {np.linalg.norm(x - y) / np.linalg.norm(y):.2e}")
            print(f"{a} vs {b}: relative difference |a - b| / |b|: " + ", ".join(diffs))


# ---- driver -------------------------------------------------------------------------------------
def _row(r: dict) -> str:
    c = r["computed_gib"]
    keys = (("recbole_bmm_items_dxd", "recbole_history_matrix", "recbole_batch_gather")
            if r["implementation"] == "recbole" else ("sparse_gram_dxd", "sparse_csr", "sparse_batch_gather_mean"))
    big = sum(c[key] for key in keys)
    return (f"| {r['implementation']} | {r['n_items']:,} | {r['dim']} | {r['longest_history']:,} | "
            f"{r['train_peak_gib']:.2f} | {r['peak_rss_gib']:.2f} | {r['wall_s_per_epoch']:.2f} | "
            f"{r['cpu_s_per_epoch']:.2f} | {big:.3f} |")


def ml25m_table(dim: int = 256, batch: int = 512) -> str:
    m = ML25M
    # Our split keeps two interactions per user out of train (valid, test).
    train_inter = m["ratings"] - 2 * m["users"]
    mean_history = train_inter / m["users"]
    longest = m["max_user_ratings"] - 2
    lines = [f"MovieLens-25M at d = {dim}, batch {batch} users: {m['users']:,} users, longest train history "
             f"{longest:,}, {train_inter:,} train interactions (mean {mean_history:.1f} per user)",
             "| tensor | 62,423 items (catalogue) GiB | MiB | 59,047 items (rated) GiB |",
             "| --- | ---: | ---: | ---: |"]
    a = big_tensors(m["users"], m["items_catalogue"], longest, dim, batch, train_inter, mean_history)
    b = big_tensors(m["users"], m["items_rated"], longest, dim, batch, train_inter, mean_history)
    for key in a:
        lines.append(f"| {key} | {a[key] / GIB:.3f} | {a[key] / 2**20:,.2f} | {b[key] / GIB:.3f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--implementations", default="recbole,sparse")
    p.add_argument("--items", default="2000,8000,16000")
    p.add_argument("--dims", default="64", help="comma-separated embedding sizes")
    p.add_argument("--extra", default="2000:256,8000:256,16000:256,62423:256",
                   help="more n_items:dim points (comma-separated); RecBole is skipped where its "
                        "computed tensors exceed --recbole-max-gib")
    p.add_argument("--recbole-max-gib", type=float, default=2.5)
    p.add_argument("--users", type=int, default=2048)
    p.add_argument("--median-history", type=int, default=40)
    p.add_argument("--max-history-fraction", type=float, default=0.25)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # impl:n_items:dim, in a child process
    p.add_argument("--json", default=None, help="also write every measurement to this file")
    p.add_argument("--compare-ml100k", type=int, default=None, metavar="EPOCHS",
                   help="instead: train the ml100k profile's ENMF with each implementation for EPOCHS epochs")
    args = p.parse_args()

    if args.compare_ml100k:
        torch_threads(args.threads)
        compare_ml100k(args.compare_ml100k, ["recbole", "sparse-recbole-padding", "sparse"])
        return

    if args.one:
        impl, n_items, dim = args.one.split(":")
        print(json.dumps(measure_one(impl, int(n_items), int(dim), args)))
        return

    points = [(int(n), int(d)) for d in args.dims.split(",") for n in args.items.split(",")]
    points += [tuple(int(x) for x in e.split(":")) for e in args.extra.split(",") if e]
    child = [f"--users={args.users}", f"--median-history={args.median_history}",
             f"--max-history-fraction={args.max_history_fraction}", f"--batch-size={args.batch_size}",
             f"--epochs={args.epochs}", f"--threads={args.threads}"]
    results, started = [], time.time()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONWARNINGS": "ignore"}
    for n_items, dim in points:
        for impl in args.implementations.split(","):
            if impl == "recbole":
                ds_longest = max(5, int(args.max_history_fraction * n_items)) - 2
                c = big_tensors(args.users, n_items, ds_longest, dim, args.batch_size, 0, 0)
                need = (c["recbole_bmm_items_dxd"] + c["recbole_batch_gather"]) / GIB
                if need > args.recbole_max_gib:
                    print(f"skip recbole at {n_items} items, d {dim}: computed {need:.2f} GiB "
                          f"(bmm + gather) > --recbole-max-gib", flush=True)
                    continue
            out = subprocess.run([sys.executable, __file__, *child, "--one", f"{impl}:{n_items}:{dim}"],
                                 capture_output=True, text=True, env=env, cwd=ROOT)
            if out.returncode:
                print(out.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"{impl} at {n_items} items, d {dim} failed")
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(_row(results[-1]), flush=True)
    print(f"\nload average {os.getloadavg()}, {time.time() - started:.0f} s in all, torch threads {args.threads}")
    print("| implementation | items | d | longest history | train peak RSS GiB | peak RSS GiB | s / epoch | "
          "CPU s / epoch | computed big tensors GiB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(_row(r))
    print()
    print(ml25m_table())
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
