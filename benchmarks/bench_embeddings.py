"""Wall time and peak memory of building every embedding space of a profile, from a cold cache.

    .venv/bin/python benchmarks/bench_embeddings.py --profile ml100k
    .venv/bin/python benchmarks/bench_embeddings.py --profile smoke --set embeddings.search.epochs=2

By default it uses a fresh temporary data root, so nothing is cached: the dataset stage is built
first (timed on its own line), then each space in ``SPACES`` order (fused spaces find search and
rec already built, as in a real run), then the dense-retrieval reference. Peak RSS is the
process's high-water mark (``resource.getrusage``) after each step, so it only grows. Wall time
depends on what else runs on the machine, so the load average and the process's own CPU time
(user + system) are reported too: on an idle 2-core machine wall time is at most the CPU time.
Results go to stdout as a markdown table and, with ``--out``, to a JSON file.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is KiB on Linux


def cpu_seconds() -> float:
    """User + system CPU time of this process: the work done, whatever else runs on the machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def current_rss_gib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ml100k")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="profile override, e.g. embeddings.search.max_pairs=3200 (repeatable)")
    parser.add_argument("--data-root", default=None,
                        help="SID_DATA_ROOT to use (default: a fresh temporary folder, i.e. a cold cache)")
    parser.add_argument("--no-reference", action="store_true", help="skip the dense-retrieval reference")
    parser.add_argument("--out", default=None, help="write the measurements as JSON here")
    args = parser.parse_args()

    os.environ["SID_DATA_ROOT"] = args.data_root or tempfile.mkdtemp(prefix="sid-bench-")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # helpers.embeddings sets OMP_WAIT_POLICY before torch is imported: import it first.
    from helpers import embeddings
    from helpers.config import load_profile, parse_assignments
    from helpers.data.stage import build_dataset

    overrides = parse_assignments(args.set)
    cfg = load_profile(args.profile, overrides)

    rows = []
    load_before = os.getloadavg()

    def measure(step: str, fn) -> None:
        started, cpu_started = time.time(), cpu_seconds()
        result = fn()
        shape = getattr(result, "shape", None)
        rows.append({"step": step, "seconds": round(time.time() - started, 1),
                     "cpu_seconds": round(cpu_seconds() - cpu_started, 1),
                     "shape": list(shape) if shape is not None else None,
                     "peak_rss_gib": round(peak_rss_gib(), 2), "rss_gib": round(current_rss_gib(), 2),
                     "load_1min": round(os.getloadavg()[0], 1)})
        print(rows[-1], flush=True)

    measure("dataset (stage 01)", lambda: build_dataset(cfg).items)
    started, cpu_started = time.time(), cpu_seconds()
    for space in embeddings.SPACES:
        measure(space, lambda space=space: embeddings.build_embedding(cfg, space))
    spaces_seconds = round(time.time() - started, 1)
    spaces_cpu_seconds = round(cpu_seconds() - cpu_started, 1)
    if not args.no_reference:
        measure("reference recalls", lambda: embeddings.reference_recalls(cfg))

    import torch

    report = {
        "profile": args.profile, "overrides": overrides, "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        "load_average_before": [round(x, 1) for x in load_before],
        "load_average_after": [round(x, 1) for x in os.getloadavg()],
        "six_spaces_seconds": spaces_seconds, "six_spaces_cpu_seconds": spaces_cpu_seconds,
        "peak_rss_gib": round(peak_rss_gib(), 2), "steps": rows,
    }
    for space in ("search", "multitask", "rec"):
        card = embeddings.load_card(cfg, space)
        report[f"{space}_training"] = {k: v for k, v in card.get("training", {}).items()
                                       if k not in ("step_losses", "epoch_losses")}
    if not args.no_reference:
        report["reference"] = embeddings.reference_recalls(cfg).to_dict(orient="records")

    print()
    print("| step | wall s | CPU s | peak RSS (GiB) | load (1 min) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['step']} | {row['seconds']} | {row['cpu_seconds']} | {row['peak_rss_gib']} | {row['load_1min']} |")
    print(f"| **six spaces** | **{spaces_seconds}** | **{spaces_cpu_seconds}** | **{report['peak_rss_gib']}** | |")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
