"""Host memory of notebook 04's train examples per example, at MovieLens-25M scale.

The paper profile trains on every history position of every user (``rec_targets_per_user: null``):
25.1M examples on the 62,423-item synthetic catalogue, more than this machine's memory holds as
Python lists. This builds ``ExampleBuilder.rec_examples("train")`` for a random subset of users
with ``--examples`` train positions, then ``train.to_hf_dataset`` (what the trainer reads), and
reports resident memory per example: held by the examples, and the peak over the inputs while
building and converting them (``VmHWM`` after a reset). Memory is linear in the number of examples
(no history copy per row), so bytes per example x examples per epoch predicts the full size.

``--form columns`` (the default) measures the columnar examples training reads (``train_columns``,
flat token arrays, read by the trainer without a copy); ``--form frame`` the frame of Python lists
(``rec_examples``) converted as ``to_hf_dataset`` converts a frame today (through columns). The
frame's numbers in ``README_scale.md`` were measured with the conversion of commit f30ba7f
(``Dataset.from_dict`` over the lists), which training used before the columns.

``--form cached`` measures the per-construction cache (``helpers.generative.example_cache``): the
columns are built and saved once, then ``--ranks`` processes start together, as the data-parallel
ranks of one machine do, and each maps the files, makes the trainer's dataset and its
length-grouped sampler, and reads every token once (an epoch's reads). Each reports its time and
the resident (RSS) and proportional (PSS: shared pages divided among the processes sharing them)
memory this added to the process. Rank 0 also times the sampler the trainer would build without
our lengths (reading the dataset row by row) on ``--trainer-lengths-rows`` rows.

    .venv/bin/python benchmarks/bench_scale.py --root /tmp/sid-gpu --stages generate data --sizes 62423
    .venv/bin/python benchmarks/bench_examples_memory.py --root /tmp/sid-gpu --examples 1000000 2000000 --form columns
    .venv/bin/python benchmarks/bench_examples_memory.py --root /tmp/sid-gpu --examples 30000000 --form cached --ranks 2
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import bench_scale  # noqa: E402  (profile_for, stand_in_ids, _status)

GIB = 2**30


def release_freed() -> None:
    """Collect garbage and hand freed memory back to the OS (glibc's heap and Arrow's pool), so RSS
    differences count live objects only: otherwise memory freed while loading the data set is
    returned mid-measurement and RSS falls."""
    import ctypes

    import pyarrow

    gc.collect()
    pyarrow.default_memory_pool().release_unused()
    ctypes.CDLL("libc.so.6").malloc_trim(0)


def rec_builder(root: Path, n_items: int, examples: int):
    """(builder, users chosen, examples per epoch): an ``ExampleBuilder`` over the scale folder whose
    train histories are random users' with at least ``examples`` train positions in all."""
    from transformers import AutoTokenizer

    from helpers.data.stage import load_dataset
    from helpers.generative.backbone import add_id_tokens, minilm_tokenizer_path
    from helpers.generative.examples import ExampleBuilder

    os.environ.setdefault("SID_DATA_ROOT", str(root / "data"))
    cfg = bench_scale.profile_for(root, n_items)
    ds = load_dataset(cfg)
    ids = bench_scale.stand_in_ids(cfg, ds.n_items, root)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_tokenizer_path()))
    add_id_tokens(tokenizer, ids)
    builder = ExampleBuilder(ds, ids, tokenizer, cfg["generative"])
    histories = ds.histories(("train",))
    chosen, total = [], 0
    for user in np.random.default_rng(0).permutation(len(histories)):
        chosen.append(histories[user])
        total += max(len(histories[user]) - 1, 0)
        if total >= examples:
            break

    class Users:  # the builder reads histories only through this method
        @staticmethod
        def histories(splits):
            return chosen

    per_epoch = int(sum(max(len(h) - 1, 0) for h in histories)) + int((ds.queries["split"] == "train").sum())
    builder.ds = Users()
    return builder, len(chosen), per_epoch


def measure(root: Path, n_items: int, examples: int, form: str = "columns") -> dict:
    from helpers.generative.train import to_hf_dataset

    builder, users, per_epoch = rec_builder(root, n_items, examples)
    release_freed()
    before = bench_scale._status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    started = time.perf_counter()
    built = builder.rec_examples("train") if form == "frame" else builder.train_columns(tasks=("rec",))
    build_s = time.perf_counter() - started
    release_freed()
    held = bench_scale._status("VmRSS") - before
    started = time.perf_counter()
    hf = to_hf_dataset(built)
    convert_s = time.perf_counter() - started
    peak = bench_scale._status("VmHWM") - before
    n = len(built)
    assert len(hf) == n
    mean_tokens = built["input_ids"].map(len).mean() if form == "frame" else np.diff(built.input_offsets).mean()
    return {"form": form, "examples": n, "users": users, "mean_input_tokens": round(float(mean_tokens), 2),
            "build_s": round(build_s, 1), "to_hf_dataset_s": round(convert_s, 1),
            "held_bytes_per_example": round(held / n), "peak_bytes_per_example": round(peak / n),
            "held_mib": round(held / 2**20), "peak_mib": round(peak / 2**20),
            "examples_per_epoch": per_epoch,
            "predicted_full_held_gib": round(held / n * per_epoch / GIB, 1),
            "predicted_full_peak_gib": round(peak / n * per_epoch / GIB, 1),
            "predicted_full_seconds": round((build_s + convert_s) / n * per_epoch)}


def _smaps_mib(key: str) -> float:
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def _rank(folder: str, rank: int, batch: int, trainer_rows: int, barrier, results) -> None:
    """One data-parallel rank's start: map the cached columns, make the dataset and its sampler."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from helpers.generative.example_columns import ExampleColumns
    from helpers.generative.train import to_hf_dataset

    rss, pss = _smaps_mib("Rss"), _smaps_mib("Pss")  # libraries loaded, no examples yet
    barrier.wait()  # the ranks start together, as under torchrun
    started = time.perf_counter()
    columns = ExampleColumns.load(Path(folder))
    dataset = to_hf_dataset(columns)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    order = list(LengthGroupedSampler(batch, lengths=columns.input_lengths().tolist()))
    sampler_s = time.perf_counter() - started
    assert len(order) == len(dataset)
    started = time.perf_counter()
    checksum = sum(int(getattr(columns, name).sum()) for name in ("input_values", "label_values"))
    read_s = time.perf_counter() - started
    barrier.wait()  # every rank has read everything: now the pages are shared
    row = {"rank": rank, "load_s": round(load_s, 2), "sampler_s": round(sampler_s, 1), "read_s": round(read_s, 1),
           "rss_added_mib": round(_smaps_mib("Rss") - rss), "pss_added_mib": round(_smaps_mib("Pss") - pss),
           "checksum": checksum}
    barrier.wait()
    if rank == 0 and trainer_rows:  # the trainer's own way: every row of the dataset read to measure it
        rows = min(trainer_rows, len(dataset))
        started = time.perf_counter()
        LengthGroupedSampler(batch, dataset=dataset.select(range(rows)))
        row["trainer_lengths_s_per_million"] = round((time.perf_counter() - started) / rows * 1e6, 1)
    results.put(row)


def measure_cached(root: Path, n_items: int, examples: int, ranks: int, trainer_rows: int) -> dict:
    import multiprocessing
    import shutil

    builder, users, per_epoch = rec_builder(root, n_items, examples)
    folder = root / f"examples-cache-{examples}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    columns = builder.train_columns(tasks=("rec",))
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    columns.save(folder)
    save_s = time.perf_counter() - started
    n, held = len(columns), columns.nbytes()
    del columns, builder
    release_freed()
    context = multiprocessing.get_context("spawn")  # fresh processes: nothing shared but the files
    barrier, results = context.Barrier(ranks), context.Queue()
    batch = int(bench_scale.profile_for(root, n_items)["generative"]["batch_size"])
    children = [context.Process(target=_rank, args=(str(folder), r, batch, trainer_rows, barrier, results))
                for r in range(ranks)]
    for child in children:
        child.start()
    rows = sorted((results.get() for _ in children), key=lambda row: row["rank"])
    for child in children:
        child.join()
    shutil.rmtree(folder)
    assert len({row.pop("checksum") for row in rows}) == 1
    return {"form": "cached", "examples": n, "users": users, "examples_per_epoch": per_epoch,
            "build_s": round(build_s, 1), "save_s": round(save_s, 1), "files_mib": round(held / 2**20),
            "ranks": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="bench_scale.py's --root")
    parser.add_argument("--items", type=int, default=bench_scale.FULL)
    parser.add_argument("--examples", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--form", choices=("frame", "columns", "cached"), default="columns")
    parser.add_argument("--ranks", type=int, default=2, help="--form cached: processes mapping the cache at once")
    parser.add_argument("--trainer-lengths-rows", type=int, default=1_000_000,
                        help="--form cached: rows the trainer's own length scan is timed on (0: skip)")
    args = parser.parse_args(argv)
    if args.form == "cached":
        for n in args.examples:
            print(json.dumps(measure_cached(args.root, args.items, n, args.ranks, args.trainer_lengths_rows)), flush=True)
        return 0
    for n in args.examples:  # one child per size: a fresh heap, so sizes do not share freed memory
        if len(args.examples) > 1:
            import subprocess

            subprocess.run([sys.executable, __file__, "--root", str(args.root), "--items", str(args.items),
                            "--examples", str(n), "--form", args.form], check=True)
        else:
            print(json.dumps(measure(args.root, args.items, n, args.form)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
