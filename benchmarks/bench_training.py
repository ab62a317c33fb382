"""Training benchmark: examples per second and peak RSS of the joint S&R model, and the time the
default study's training would take at that speed.

    python benchmarks/bench_training.py --profile ml100k --construction multitask --epochs 1 \
        --variant default --variant vocabulary=full --variant threads=1

Each variant trains in a fresh subprocess (so its peak RSS is its own) with the profile's
``generative`` settings plus the variant's changes, on the construction's real examples, for
``--epochs`` epochs (throughput does not depend on the epoch count). The study estimate is
``constructions x seeds x profile epochs x examples per epoch / examples per second``.
Variants: ``default``, or ``KEY=VALUE`` pairs joined by ``,`` where KEY is a ``generative`` key or
``threads`` (torch threads).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def parse_variant(text: str) -> dict:
    import yaml

    if text == "default":
        return {}
    pairs = (item.split("=", 1) for item in text.split(","))
    return {key.strip(): yaml.safe_load(value) for key, value in pairs}


def worker(profile: str, construction: str, variant: dict, epochs: float) -> dict:
    """Train once in this process and return the measurements (run through a subprocess)."""
    import torch
    from transformers import set_seed

    from helpers.config import load_profile
    from helpers.generative import stage
    from helpers.generative.backbone import build_backbone, describe
    from helpers.generative.examples import ExampleBuilder, training_corpus
    from helpers.generative.train import peak_rss_mib, train_seq2seq

    variant = dict(variant)
    threads = variant.pop("threads", None)
    if threads:
        torch.set_num_threads(int(threads))
    cfg = load_profile(profile, {"generative": variant})
    gen = {**cfg["generative"], "epochs": epochs}
    inputs = stage.ModelInputs.load(cfg, construction)  # the inputs notebook 04 trains on
    ds, ids = inputs.dataset, inputs.semantic_ids
    set_seed(0)
    model, tokenizer = build_backbone(gen, ids, training_corpus(ds))
    builder = ExampleBuilder(ds, ids, tokenizer, gen)
    train, valid = builder.build("train"), builder.build("valid")
    rss_before = peak_rss_mib()
    with tempfile.TemporaryDirectory() as checkpoints:
        card = train_seq2seq(model, tokenizer, train, valid, gen, 0, Path(checkpoints))
    per_epoch = len(train)
    study_models = len(cfg["semantic_ids"]["constructions"]) * len(cfg["generative"]["seeds"])
    study_seconds = study_models * cfg["generative"]["epochs"] * per_epoch / card["train_examples_per_second"]
    return {"variant": variant, "threads": torch.get_num_threads(), **describe(model, tokenizer),
            "examples_per_epoch": per_epoch, "epochs": epochs, "train_seconds": card["train_seconds"],
            "examples_per_second": card["train_examples_per_second"],
            "peak_rss_mib": card["peak_rss_mib"], "peak_rss_before_training_mib": rss_before,
            "study_models": study_models, "profile_epochs": cfg["generative"]["epochs"],
            "study_training_minutes_estimate": round(study_seconds / 60, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ml100k")
    parser.add_argument("--construction", default="multitask")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--variant", action="append", default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.worker is not None:
        print("RESULT " + json.dumps(worker(args.profile, args.construction, json.loads(args.worker), args.epochs)))
        return 0

    from helpers.config import load_profile
    from helpers.data.stage import build_dataset
    from helpers.semantic_ids.stage import build_semantic_ids

    cfg = load_profile(args.profile)
    build_dataset(cfg)
    build_semantic_ids(cfg, args.construction)
    rows = []
    for text in args.variant or ["default"]:
        load_before = os.getloadavg()
        out = subprocess.run([sys.executable, __file__, "--profile", args.profile, "--construction", args.construction,
                              "--epochs", str(args.epochs), "--worker", json.dumps(parse_variant(text))],
                             capture_output=True, text=True, check=False, cwd=ROOT)
        result = next((line[7:] for line in out.stdout.splitlines() if line.startswith("RESULT ")), None)
        if result is None:
            print(out.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"variant {text!r} failed")
        rows.append({"variant_text": text, **json.loads(result), "load_average_before": round(load_before[0], 2),
                     "load_average_after": round(os.getloadavg()[0], 2)})
    import pandas as pd

    info = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "profile": args.profile, "construction": args.construction}
    print(json.dumps(info))
    columns = ["variant_text", "threads", "parameters", "vocabulary", "examples_per_epoch", "examples_per_second",
               "train_seconds", "peak_rss_mib", "study_training_minutes_estimate", "load_average_before",
               "load_average_after"]
    print(pd.DataFrame(rows)[columns].to_markdown(index=False))
    if args.json:
        args.json.write_text(json.dumps({"info": info, "rows": rows}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
