"""Does more training change a construction's Recall@30? Train one construction for more epochs
than the profile says and decode its test prompts, exactly as notebook 04 does.

    SID_DATA_ROOT=/tmp/cold .venv/bin/python benchmarks/bench_epochs.py --construction separate --epochs 8
    ... --set decoding.test_queries_per_item=2    # any other profile override, as run.sh study takes

The model and predictions land in the data root's cache under their own hash (the epoch count is
part of the key), beside the profile's models, so nothing of the default study is overwritten.
Prints one JSON line: construction, epochs, recall per task, seconds.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ml100k")
    parser.add_argument("--construction", required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="assignments", action="append", default=[],
                        help="override a parameter, e.g. --set decoding.test_queries_per_item=2 (repeatable)")
    args = parser.parse_args(argv)

    from helpers.config import load_profile, parse_assignments
    from helpers.metrics import recall_at_k
    from helpers.generative import stage

    overrides = parse_assignments(args.assignments)
    cfg = load_profile(args.profile, parse_assignments([f"generative.epochs={args.epochs}"], overrides))
    started = time.time()
    stage.train_model(cfg, args.construction, args.seed)
    predictions = stage.predict(cfg, args.construction, args.seed)
    k = int(cfg["evaluation"]["k"])
    recall = {task: round(float(recall_at_k(rows["ranked"], rows["target"], k)), 4)
              for task, rows in predictions.groupby("task")}
    print(json.dumps({"profile": args.profile, "overrides": overrides, "construction": args.construction,
                      "epochs": args.epochs,
                      "seed": args.seed, "recall": recall, "seconds": round(time.time() - started)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
