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

    .venv/bin/python benchmarks/bench_scale.py --root /tmp/sid-gpu --stages generate data --sizes 62423
    .venv/bin/python benchmarks/bench_examples_memory.py --root /tmp/sid-gpu --examples 1000000 2000000 --form columns
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


def measure(root: Path, n_items: int, examples: int, form: str = "columns") -> dict:
    from transformers import AutoTokenizer

    from helpers.data.stage import load_dataset
    from helpers.generative.backbone import add_id_tokens, minilm_tokenizer_path
    from helpers.generative.examples import ExampleBuilder
    from helpers.generative.train import to_hf_dataset

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
    return {"form": form, "examples": n, "users": len(chosen), "mean_input_tokens": round(float(mean_tokens), 2),
            "build_s": round(build_s, 1), "to_hf_dataset_s": round(convert_s, 1),
            "held_bytes_per_example": round(held / n), "peak_bytes_per_example": round(peak / n),
            "held_mib": round(held / 2**20), "peak_mib": round(peak / 2**20),
            "examples_per_epoch": per_epoch,
            "predicted_full_held_gib": round(held / n * per_epoch / GIB, 1),
            "predicted_full_peak_gib": round(peak / n * per_epoch / GIB, 1),
            "predicted_full_seconds": round((build_s + convert_s) / n * per_epoch)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="bench_scale.py's --root")
    parser.add_argument("--items", type=int, default=bench_scale.FULL)
    parser.add_argument("--examples", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--form", choices=("frame", "columns"), default="columns")
    args = parser.parse_args(argv)
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
