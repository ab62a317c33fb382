"""Backbone benchmark: what a pretrained text encoder brings the joint model, and what it costs.

    SID_DATA_ROOT=/tmp/backbone-data .venv/bin/python benchmarks/bench_backbones.py --profile ml100k \\
        --construction search --construction multitask \\
        --variant backbone=t5-config --variant backbone=minilm-frozen --threads 1 --json /tmp/bench.json

Each (variant, construction) trains and decodes in a fresh subprocess (so its peak RSS and its
torch threads are its own) exactly as notebook 04 does: ``stage.train_model`` then
``stage.predict`` on the profile's test split, so the models land in the data root's cache under
their own hash and a re-run reads them back (the card keeps the training time and speed that
were measured when they were trained; ``cached`` says so). Reported per row: search and rec
Recall@K on every decoded test query and user, train examples/s, minutes of training and of
decoding per model, peak RSS, trainable parameters, and the estimated training minutes of the
whole study (11 constructions x 3 seeds at this speed, one process). Other jobs share the cores, so
the process's own CPU time is reported beside the wall time: with one torch thread, CPU minutes
are what the wall minutes would be on an idle core (``*_cpu_*`` columns; ``study_training_cpu_minutes``
is 33 x this model's training CPU time).

Before the models, a ``minilm-frozen`` variant needs the frozen text states of the dataset: the
one-off pass is timed in its own subprocess (``states`` line; read from its manifest if cached,
computed again with ``--rebuild-states``).

``--decoders N`` also runs every decoder (trie / diverse beam, exact, HF ``generate``) on N sampled
test prompts per task of each model, interleaved, twice (``stage.compare_decoders``): queries/s and
the speed of trie beam search relative to HF's.

``--finetune-batches N`` also times MiniLM itself trained end to end (forward, backward, AdamW) on
N batches of train search prompts: the least that fine-tuning the text encoder would cost.

Variants: ``KEY=VALUE`` pairs joined by ``,`` where KEY is a ``generative`` key. ``--parallel 2``
runs two subprocesses side by side (jobs go construction by construction, so the first two
variants of a construction run together, under the same load), to measure what two training
processes on two cores achieve together. ``--set`` overrides any other parameter (e.g.
``--set decoding.test_queries_per_item=2`` to decode fewer test queries). ``--data`` and ``--ids``
pin the upstream folders (dataset, each construction's Semantic IDs), so a change to the profile's
upstream sections during a long run does not send later rows to other inputs.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

STUDY_MODELS = 11 * 3  # constructions x seeds the budget is about


def parse_variant(text: str) -> dict:
    import yaml

    if text == "default":
        return {}
    pairs = (item.split("=", 1) for item in text.split(","))
    return {key.strip(): yaml.safe_load(value) for key, value in pairs}


def profile(name: str, assignments: list[str], variant: dict):
    from helpers.config import load_profile, parse_assignments

    return load_profile(name, parse_assignments([f"generative.{k}={json.dumps(v)}" for k, v in variant.items()],
                                                 parse_assignments(assignments)))


def pinned_inputs(upstream: dict):
    """``ModelInputs`` read from the given dataset and Semantic-ID folders (not the profile's hashes)."""
    from helpers.data.dataset import Dataset
    from helpers.generative.stage import ModelInputs
    from helpers.semantic_ids.ids import SemanticIds

    data, ids = Path(upstream["data"]), upstream.get("semantic_ids")
    return ModelInputs(Dataset.load(data), SemanticIds.load(Path(ids)) if ids else None,
                       {"semantic_ids": Path(ids).name if ids else None, "data": data.name})


def states_worker(args, upstream: dict) -> dict:
    """Build (or read) the frozen text states of the dataset; timing and memory."""
    from helpers import artifacts
    from helpers.generative import stage
    from helpers.generative.train import peak_rss_mib

    cfg = profile(args.profile, args.assignments, {"backbone": "minilm-frozen"})
    inputs = pinned_inputs(upstream)
    folder = stage.text_states_dir(cfg, inputs)
    cached = artifacts.is_complete(folder) and not args.rebuild_states
    started = time.time()
    stage.build_text_states(cfg, inputs, force=args.rebuild_states)
    manifest = artifacts.read_manifest(folder)
    return {"folder": str(folder), "cached": cached, "wall_seconds": round(time.time() - started, 1),
            "encode_seconds": manifest["encode_seconds"], "n_texts": manifest["n_texts"],
            "n_tokens": manifest["n_tokens"], "megabytes": manifest["megabytes"],
            "torch_threads": manifest["torch_threads"], "peak_rss_mib": peak_rss_mib() if not cached else None}


def finetune_worker(args, batches: int) -> dict:
    """Examples/s of MiniLM itself trained end to end (forward + backward + AdamW) on search prompts.

    A lower bound on the cost of fine-tuning the text encoder inside the joint model: the seq2seq
    part on top would only add to it. Batches of ``generative.batch_size`` real train prompts.
    """
    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    from helpers.data.stage import load_dataset
    from helpers.generative.examples import search_prompts
    from helpers.generative.text_states import encoder_path

    cfg = profile(args.profile, args.assignments, {})
    gen = cfg["generative"]
    folder = encoder_path(gen["text_encoder"])
    tokenizer, model = AutoTokenizer.from_pretrained(str(folder)), AutoModel.from_pretrained(str(folder)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    texts = search_prompts(load_dataset(cfg).query_split("train")["text"])
    rng = np.random.default_rng(0)
    size = int(gen["batch_size"])
    seconds = []
    for step in range(batches + 1):  # the first batch warms up and is not counted
        batch = [texts[i] for i in rng.choice(len(texts), size, replace=False)]
        encoded = tokenizer(batch, padding=True, truncation=True, max_length=int(gen["max_input_tokens"]),
                            return_tensors="pt")
        started = time.perf_counter()
        loss = model(**encoded).last_hidden_state.pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step:
            seconds.append(time.perf_counter() - started)
    return {"batches": batches, "batch_size": size, "examples_per_second": round(size * batches / sum(seconds), 1),
            "torch_threads": torch.get_num_threads()}


def model_worker(args, variant: dict, construction: str, upstream: dict) -> dict:
    """Train (or read) one model and decode its test prompts, as notebook 04; the measurements."""
    import torch

    from helpers import artifacts
    from helpers.generative import stage
    from helpers.generative.train import peak_rss_mib
    from helpers.metrics import recall_at_k

    cfg = profile(args.profile, args.assignments, variant)
    inputs = pinned_inputs(upstream)
    folder = stage.model_dir(cfg, construction, args.seed, inputs)
    cached = artifacts.is_complete(folder)
    cpu = time.process_time()
    stage.train_model(cfg, construction, args.seed, inputs=inputs)
    train_cpu = None if cached else time.process_time() - cpu  # examples, training and saving
    card = stage.read_card(folder)
    predictions_folder = stage.predictions_dir(cfg, construction, args.seed, inputs=inputs)
    decoded_before = artifacts.is_complete(predictions_folder)
    cpu = time.process_time()
    predictions = stage.predict(cfg, construction, args.seed, inputs=inputs)
    decode_cpu = None if decoded_before else time.process_time() - cpu  # loading the model and decoding
    decoding = artifacts.read_manifest(predictions_folder)
    k = int(cfg["evaluation"]["k"])
    recall = {task: round(float(recall_at_k(list(rows["ranked"]), rows["target"].to_numpy(), k)), 4)
              for task, rows in predictions.groupby("task")}
    gen = cfg["generative"]
    examples = card["n_train_examples"]
    decoders = {}
    if args.decoders:  # every decoder on the same sampled test prompts, interleaved (stage.compare_decoders)
        table = stage.compare_decoders(cfg, construction, args.seed, per_task=args.decoders, repeats=2, force=True,
                                       inputs=inputs)
        speed = table.groupby("method").apply(lambda rows: rows["n"].sum() / (rows["n"] / rows["queries_per_second"]).sum(),
                                              include_groups=False)
        decoders = {"decoders_queries_per_second": speed.round(1).to_dict(),
                    "trie_beam_speed_vs_hf": round(float(speed["trie_beam"] / speed["hf_beam"]), 2),
                    "decoders_recall": table.set_index(["method", "task"])[f"recall@{k}"].round(4)
                                            .rename(lambda m: m, level=0).to_dict()}
        decoders["decoders_recall"] = {f"{m}/{t}": v for (m, t), v in decoders["decoders_recall"].items()}
    return {**decoders,
        "variant": variant, "construction": construction, "backbone": gen["backbone"], "cached": cached or decoded_before,
        "d_model": gen["d_model"], "layers": f"{card['backbone']['encoder_layers']}+{card['backbone']['decoder_layers']}",
        "epochs": gen["epochs"], "lr": gen["lr"], "parameters": card["backbone"]["parameters"],
        f"search_recall@{k}": recall.get("search"), f"rec_recall@{k}": recall.get("rec"),
        "n_search": int((predictions["task"] == "search").sum()), "n_rec": int((predictions["task"] == "rec").sum()),
        "train_examples_per_second": card["train_examples_per_second"],
        "train_minutes": round(card["train_seconds"] / 60, 2),
        "train_cpu_minutes": None if train_cpu is None else round(train_cpu / 60, 2),
        "train_examples_per_cpu_second": None if train_cpu is None else round(examples * gen["epochs"] / train_cpu, 1),
        "decode_cpu_minutes": None if decode_cpu is None else round(decode_cpu / 60, 2),
        "study_training_cpu_minutes": None if train_cpu is None else round(STUDY_MODELS * train_cpu / 60, 1),
        "decode_minutes": round(decoding["decoding_seconds"] / 60, 2),
        "peak_rss_mib": max(card["peak_rss_mib"], decoding.get("peak_rss_mib") or 0),
        "torch_threads": card["torch_threads"], "this_process_threads": torch.get_num_threads(),
        "study_training_minutes": round(STUDY_MODELS * gen["epochs"] * examples / card["train_examples_per_second"] / 60, 1),
        "rss_this_process_mib": peak_rss_mib(),
    }


def run_worker(args, payload: dict) -> dict:
    command = [sys.executable, __file__, "--profile", args.profile, "--seed", str(args.seed),
               *(["--rebuild-states"] if args.rebuild_states else []),
               "--threads", str(args.threads), "--decoders", str(args.decoders), "--worker", json.dumps(payload)]
    for assignment in args.assignments:
        command += ["--set", assignment]
    load_before = os.getloadavg()[0]
    started = time.time()
    out = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    line = next((l[7:] for l in out.stdout.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        print(out.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"worker {payload} failed")
    return {**json.loads(line), "wall_minutes": round((time.time() - started) / 60, 2),
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ml100k")
    parser.add_argument("--construction", action="append", default=None)
    parser.add_argument("--variant", action="append", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per subprocess")
    parser.add_argument("--parallel", type=int, default=1, help="subprocesses side by side")
    parser.add_argument("--set", dest="assignments", action="append", default=[])
    parser.add_argument("--data", default=None, help="pin the dataset folder (default: the profile's, built if missing)")
    parser.add_argument("--ids", action="append", default=[], metavar="CONSTRUCTION=FOLDER",
                        help="pin a construction's Semantic-ID folder (default: the profile's, built if missing)")
    parser.add_argument("--decoders", type=int, default=0, metavar="PER_TASK",
                        help="also compare every decoder (HF generate included) on this many test prompts per task")
    parser.add_argument("--rebuild-states", action="store_true", help="time the one-off states pass again")
    parser.add_argument("--finetune-batches", type=int, default=0,
                        help="also time MiniLM trained end to end for this many batches (0: skip)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker is not None:
        import torch

        torch.set_num_threads(args.threads)
        payload = json.loads(args.worker)
        if payload.get("states"):
            result = states_worker(args, payload["upstream"])
        elif payload.get("finetune"):
            result = finetune_worker(args, int(payload["finetune"]))
        else:
            result = model_worker(args, payload["variant"], payload["construction"], payload["upstream"])
        print("RESULT " + json.dumps(result))
        return 0

    from helpers.data.stage import build_dataset
    from helpers.semantic_ids.stage import build_semantic_ids

    constructions = args.construction or ["search", "multitask"]
    variants = [parse_variant(v) for v in (args.variant or ["backbone=t5-config", "backbone=minilm-frozen"])]
    from helpers.data.stage import dataset_dir
    from helpers.semantic_ids.stage import semantic_ids_dir

    cfg = profile(args.profile, args.assignments, {})
    pinned = dict(item.split("=", 1) for item in args.ids)
    if args.data is None:
        build_dataset(cfg)
    data = args.data or str(dataset_dir(cfg))
    upstream = {}
    for construction in constructions:
        if construction not in pinned:
            build_semantic_ids(cfg, construction)
        upstream[construction] = {"data": data,
                                  "semantic_ids": pinned.get(construction) or str(semantic_ids_dir(cfg, construction))}
    info = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "profile": args.profile, "threads": args.threads, "parallel": args.parallel,
            "assignments": args.assignments, "upstream": upstream, "uptime_before": os.popen("uptime").read().strip()}
    print(json.dumps(info), flush=True)
    states = None
    if any(v.get("backbone") == "minilm-frozen" for v in variants):
        states = run_worker(args, {"states": True, "upstream": {"data": data}})
        print("states " + json.dumps(states), flush=True)
    finetune = None
    if args.finetune_batches:
        finetune = run_worker(args, {"finetune": args.finetune_batches})
        print("finetune " + json.dumps(finetune), flush=True)
    # construction-major: with --parallel 2 the two variants of a construction run side by side, under one load
    jobs = [{"variant": v, "construction": c, "upstream": upstream[c]} for c in constructions for v in variants]
    rows = []
    with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
        for row in pool.map(lambda job: run_worker(args, job), jobs):
            print(json.dumps(row), flush=True)
            rows.append(row)
    info["uptime_after"] = os.popen("uptime").read().strip()
    print(json.dumps({"uptime_after": info["uptime_after"]}))
    import pandas as pd

    k = next(key for key in rows[0] if key.startswith("search_recall@")).split("@")[1]
    columns = ["construction", "backbone", "d_model", "layers", "epochs", "parameters", f"search_recall@{k}",
               f"rec_recall@{k}", "train_examples_per_second", "train_examples_per_cpu_second", "train_minutes",
               "train_cpu_minutes", "decode_minutes", "decode_cpu_minutes", "peak_rss_mib", "study_training_minutes",
               "study_training_cpu_minutes", "cached", "load_before", "load_after"]
    print(pd.DataFrame(rows)[columns].to_markdown(index=False))
    if args.json:
        args.json.write_text(json.dumps({"info": info, "states": states, "finetune": finetune, "rows": rows}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
