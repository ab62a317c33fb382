"""Decoding benchmark: HF ``generate`` beam search with ``prefix_allowed_tokens_fn`` against our
decoders (diverse beam, trie beam, exact top-K), on the same trained model and the same prompts.

    python benchmarks/bench_decoding.py --profile ml100k --construction multitask --per-task 300

Builds (or reuses) the profile's dataset, the construction's Semantic IDs and its seed-0 model,
samples ``--per-task`` test prompts per task, runs every method on them and prints a markdown
table: Recall@K, queries per second, speed relative to HF, mean distinct items returned, and the
overlap of each top-K with exact top-K. ``--json`` also writes the rows to a file. It always
measures afresh (``compare_decoders(..., force=True)``) and leaves its table in the run folder's
``decoder_comparison/`` like notebook 04 does.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ml100k")
    parser.add_argument("--construction", default="multitask")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-task", type=int, default=300, help="test prompts sampled per task")
    parser.add_argument("--repeats", type=int, default=3, help="runs per method (interleaved); the fastest counts")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--set", action="append", default=[], help="profile override KEY=VALUE, repeatable")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)

    import torch

    from helpers.config import load_profile, parse_assignments
    from helpers.data.stage import build_dataset
    from helpers.generative import stage
    from helpers.semantic_ids.stage import build_semantic_ids

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_profile(args.profile, parse_assignments(args.set))
    build_dataset(cfg)
    build_semantic_ids(cfg, args.construction)
    stage.train_model(cfg, args.construction, args.seed)
    load_before = os.getloadavg()
    started = time.time()
    # force: a benchmark measures now, on this machine (the cached comparison holds an earlier run's timings)
    table = stage.compare_decoders(cfg, args.construction, args.seed, per_task=args.per_task, repeats=args.repeats,
                                   force=True)
    k = cfg["evaluation"]["k"]
    hf_speed = table[table["method"] == "hf_beam"].set_index("task")["queries_per_second"]
    table["speed_vs_hf"] = table.apply(lambda row: row["queries_per_second"] / hf_speed.get(row["task"], float("nan")), axis=1)
    overall = (table.groupby("method")
               .apply(lambda rows: rows["n"].sum() / (rows["n"] / rows["queries_per_second"]).sum(), include_groups=False)
               .rename("queries_per_second_all"))
    info = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "profile": cfg["name"],
            "construction": args.construction, "decoding": cfg["decoding"], "k": k, "repeats": args.repeats,
            "per_task": args.per_task,
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()], "seconds": round(time.time() - started, 1)}
    print(json.dumps(info))
    print(table.round(4).to_markdown(index=False))
    print()
    print((overall / overall["hf_beam"]).rename("speed_vs_hf_all").round(2).to_markdown())
    if args.json:
        args.json.write_text(json.dumps({"info": info, "rows": table.to_dict("records"),
                                         "overall_queries_per_second": overall.to_dict()}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
