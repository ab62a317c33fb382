"""GPU benchmark of the paper profile's three GPU stages, on inputs cut from the 62,423-item
synthetic MovieLens-25M: the bi-encoder (all-mpnet-base-v2-shaped, cached MNRL, bf16), the joint
model's training (flan-t5-base-shaped T5 through ``train_seq2seq``, i.e. ``Seq2SeqTrainer``) and
its decoding (the paper's diverse beam search, 60 beams in 30 groups, through ``ItemDecoder``).

Two steps, because a GPU machine cannot hold (or quickly rebuild) the 62k-item data set:

    # here, on the CPU: cut a pack (< 20 MB) from a scale folder built by bench_scale.py
    .venv/bin/python benchmarks/bench_scale.py --root /tmp/sid-gpu --stages generate data --sizes 62423
    .venv/bin/python benchmarks/bench_gpu.py pack --root /tmp/sid-gpu --out .gpu_pack
    # on the GPU machine (PYTHONPATH holding this repository's pinned transformers / datasets)
    python benchmarks/bench_gpu.py run --pack .gpu_pack --json gpu.json
    # anywhere: the table and what the full paper profile needs, from the measured rates
    python benchmarks/bench_gpu.py report gpu.json

The pack holds what the stages read, made by the study's own code at 62,423 items: Semantic IDs
of the paper's shape (RQ-KMeans 2 x 256 + disambiguation, on a stand-in embedding, as in
bench_scale.py), train examples drawn with the paper profile's task mix (every history position
of every user, plus every train query), test prompts of both tasks (rec prompts with the user's
history to exclude), (query, item text) pairs, the word-piece tokenizer, and per-epoch counts.
Models are built from configs with random weights (nothing can be downloaded there); their cost
does not depend on the weights. benchmarks/README_scale.md records a run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import bench_scale  # noqa: E402  (base_t5's architecture, the samplers, Meter)

FULL = bench_scale.FULL


# ---- pack (CPU, here) -------------------------------------------------------------------------------
def make_pack(root: Path, out: Path, n_items: int, train_examples: int, test_prompts: int, pairs: int,
              texts: int) -> dict:
    import pandas as pd
    from transformers import AutoTokenizer

    from helpers.data.stage import load_dataset
    from helpers.embeddings.biencoder import query_item_pairs
    from helpers.generative.backbone import add_id_tokens, minilm_tokenizer_path
    from helpers.generative.examples import ExampleBuilder

    os.environ.setdefault("SID_DATA_ROOT", str(root / "data"))  # where bench_scale.py's data stage wrote
    cfg = bench_scale.profile_for(root, n_items)
    ds = load_dataset(cfg)
    ids = bench_scale.stand_in_ids(cfg, ds.n_items, root)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "tokenizer").mkdir(parents=True)
    source = minilm_tokenizer_path()
    for name in bench_scale.TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copy(source / name, tmp / "tokenizer" / name)
    tokenizer = AutoTokenizer.from_pretrained(str(tmp / "tokenizer"))
    add_id_tokens(tokenizer, ids)
    (tmp / "ids").mkdir()
    ids.save(tmp / "ids")
    builder = ExampleBuilder(ds, ids, tokenizer, cfg["generative"])
    train, per_epoch = bench_scale._train_sample(ds, builder, train_examples)
    train[["task", "input_ids", "labels"]].to_parquet(tmp / "train.parquet", index=False)
    bench_scale.sample_prompts(ds, builder, test_prompts).to_parquet(tmp / "test.parquet", index=False)
    all_pairs = query_item_pairs(ds, None, 0)
    all_pairs.sample(n=pairs, random_state=0)[["anchor", "positive"]].to_parquet(tmp / "pairs.parquet", index=False)
    rng = np.random.default_rng(0)
    test_queries = ds.query_split("test")["text"].to_numpy()
    pd.DataFrame({"item_text": ds.items["text"].to_numpy()[rng.choice(ds.n_items, texts, replace=False)],
                  "query_text": test_queries[rng.choice(len(test_queries), texts, replace=False)]}
                 ).to_parquet(tmp / "texts.parquet", index=False)
    meta = {"n_items": ds.n_items, "n_users": ds.n_users, **per_epoch,
            "search_pairs_per_epoch": len(all_pairs),
            "multitask_pairs_per_epoch": len(all_pairs) + int(cfg["embeddings"]["multitask"]["max_pairs"]),
            "test_prompts_search": int((ds.queries["split"] == "test").sum()), "test_prompts_rec": ds.n_users,
            "item_texts": ds.n_items, "profile": {k: cfg[k] for k in ("generative", "decoding")},
            "embeddings": {k: cfg["embeddings"][k] for k in ("search", "multitask", "max_seq_length", "encode_batch_size")},
            "k": int(cfg["evaluation"]["k"]), "vocabulary": len(tokenizer)}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1, default=str))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return meta


# ---- run (GPU machine) --------------------------------------------------------------------------------
def _cuda_peak() -> dict:
    import torch

    if not torch.cuda.is_available():
        return {}
    return {"gpu_peak_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
            "gpu_peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2)}


def _reset_cuda() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _step_clock_class():
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        """Times the steps after the first ``warm`` (compilation, allocator and cuBLAS warm-up)."""

        def __init__(self, warm: int):
            self.warm, self.started, self.steps = warm, None, 0

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == self.warm:
                _sync()
                self.started = time.perf_counter()
            elif self.started is not None:
                self.steps = state.global_step - self.warm

        def on_train_end(self, args, state, control, **kwargs):
            _sync()
            self.seconds = time.perf_counter() - self.started if self.started else None

        def examples_per_second(self, batch: int):
            return round(self.steps * batch / self.seconds, 1) if self.started and self.seconds else None

    return StepClock


def StepClock(warm: int):  # noqa: N802 - a class made on first use, so importing this file needs no transformers
    return _step_clock_class()(warm)


def t5_folder(pack: Path, target: Path, small: bool = False) -> Path:
    """A local seq2seq checkpoint folder of flan-t5-base's architecture (random weights) with the
    pack's tokenizer: the paper profile's ``generative.backbone`` given as a local folder."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(pack / "tokenizer"))
    # small: for checking the script on a CPU, the same code path with a model that trains in seconds
    sizes = dict(d_model=64, d_ff=128, d_kv=16, num_heads=4, num_layers=1, num_decoder_layers=1) if small else {}
    model = bench_scale.base_t5(tokenizer, **sizes)
    model.save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))
    return target


def run_biencoder(pack: Path, meta: dict, args) -> dict:
    import pandas as pd

    from helpers.embeddings.biencoder import fine_tune
    from helpers.embeddings.content import encode_texts
    from helpers.embeddings.models import load_sentence_model

    pairs = pd.read_parquet(pack / "pairs.parquet").iloc[:args.pairs]
    texts = pd.read_parquet(pack / "texts.parquet").iloc[:args.texts]
    emb = meta["embeddings"]
    out = {}
    with tempfile.TemporaryDirectory(prefix="sid-gpu-mpnet-") as tmp:
        folder = bench_scale.mpnet_shaped_folder(Path(tmp), pack / "tokenizer")
        model = load_sentence_model(str(folder), emb["max_seq_length"])
        out["parameters"] = int(sum(p.numel() for p in model.parameters()))
        out["device"] = str(model.device)
        encode_texts(model, list(texts["item_text"][:64]), 64)  # warm-up
        for kind in ("item_text", "query_text"):
            _reset_cuda()
            started = time.perf_counter()
            encode_texts(model, list(texts[kind]), emb["encode_batch_size"])
            _sync()
            wall = time.perf_counter() - started
            out[f"encode_{kind}"] = {"texts": len(texts), "seconds": round(wall, 2),
                                     "texts_per_second": round(len(texts) / wall, 1), **_cuda_peak()}
        params = {**emb["search"], "epochs": 1}
        _reset_cuda()
        started = time.perf_counter()
        card = fine_tune(model, {"search": pairs}, params, 0)
        _sync()
        wall = time.perf_counter() - started
        out["fine_tune"] = {"pairs": len(pairs), "steps": card.get("steps"), "seconds": round(wall, 2),
                            "pairs_per_second": round(len(pairs) / wall, 1), "bf16": card.get("bf16"),
                            "loss": params.get("loss"), "batch_size": params["batch_size"],
                            "mini_batch_size": params.get("mini_batch_size"), **_cuda_peak()}
    return out


def run_generative(pack: Path, meta: dict, args) -> dict:
    import pandas as pd
    import torch

    from helpers.generative.backbone import build_backbone, id_table
    from helpers.generative.decoding import DecodingSettings, ItemDecoder
    from helpers.generative.train import train_seq2seq
    from helpers.metrics import recall_at_k
    from helpers.semantic_ids.ids import SemanticIds

    ids = SemanticIds.load(pack / "ids")
    train = pd.read_parquet(pack / "train.parquet")
    test = pd.read_parquet(pack / "test.parquet")
    for column in ("input_ids", "labels", "seen"):
        for frame in (train, test):
            if column in frame:
                frame[column] = frame[column].map(lambda x: [int(v) for v in x])
    gen, dec = dict(meta["profile"]["generative"]), dict(meta["profile"]["decoding"])
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="sid-gpu-t5-") as tmp:
        folder = t5_folder(pack, Path(tmp) / "base", small=args.small_model)
        model, tokenizer = build_backbone({**gen, "backbone": str(folder)}, ids)
        # the tokenizer here must give the token ids the pack's examples were made with
        for task in ("search", "rec"):
            sample = test[test["task"] == task].iloc[0]
            if id_table(tokenizer, ids, task)[int(sample["target"])].tolist() != list(sample["labels"]):
                raise RuntimeError(f"the pack's {task} ID tokens differ from this tokenizer's: rebuild the pack")
        out["parameters"], out["vocabulary"] = int(model.num_parameters()), len(tokenizer)
        for run_index, (batch, compiled) in enumerate((b, c) for c in args.train_compile for b in args.train_batches):
            n = min(len(train), batch * args.train_steps)
            _reset_cuda()
            gen_run = {**gen, "epochs": 1, "batch_size": batch, "save_steps": None, "torch_compile": compiled}
            model_run = model if run_index == 0 else build_backbone({**gen, "backbone": str(folder)}, ids)[0]
            clock = StepClock(args.warm_steps)
            started = time.perf_counter()
            card = train_seq2seq(model_run, tokenizer, train.iloc[:n], None, gen_run, 0, Path(tmp) / f"ckpt-{run_index}",
                                 callbacks=[clock])
            _sync()
            wall = time.perf_counter() - started
            out.setdefault("train", []).append({
                "batch_size": batch, "torch_compile": compiled, "examples": n, "steps": card["steps"],
                "seconds": round(wall, 2), "trainer_examples_per_second": card["train_examples_per_second"],
                "examples_per_second": round(n / wall, 1),
                "steady_examples_per_second": clock.examples_per_second(batch),
                "bf16": card["bf16"], "device": card["device"], "final_train_loss": card["final_train_loss"],
                **_cuda_peak()})
            if args.json:  # a run stopped at its time limit keeps the rows it finished
                Path(args.json).with_suffix(".partial.json").write_text(json.dumps(out, indent=1, default=str))
            print(json.dumps(out["train"][-1], default=str), flush=True)
            if model_run is not model:
                del model_run
            shutil.rmtree(Path(tmp) / f"ckpt-{run_index}", ignore_errors=True)
        if args.train_only:
            return out
        model = model.eval()
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        k = int(meta["k"])
        rankings = {}
        for precision in args.decode_precisions:
            if precision == "bf16" and device.type != "cuda":
                continue
            run_model = model.to(device=device, dtype=torch.bfloat16 if precision == "bf16" else torch.float32)
            for batch in args.decode_batches:
                settings = DecodingSettings.from_cfg(dec, batch_size=batch)
                decoder = ItemDecoder(run_model, tokenizer, ids, settings)
                decoder.rank_examples(test.groupby("task").head(8), k)  # warm-up
                row = {"precision": precision, "batch_size": batch, "decoding": settings.params()}
                for task in ("search", "rec"):
                    rows = test[test["task"] == task].iloc[:args.decode_prompts]
                    _reset_cuda()
                    started = time.perf_counter()
                    predictions = decoder.rank_examples(rows, k)
                    _sync()
                    wall = time.perf_counter() - started
                    rankings[(precision, batch, task)] = predictions["ranked"].tolist()
                    row[task] = {"prompts": len(rows), "seconds": round(wall, 2),
                                 "prompts_per_second": round(len(rows) / wall, 1),
                                 "recall_at_k": round(recall_at_k(predictions["ranked"], predictions["target"], k), 4),
                                 **_cuda_peak()}
                out.setdefault("decode", []).append(row)
        # bf16 against fp32: how much of the top-k list survives (same prompts, same batch size)
        agreement = {}
        for (precision, batch, task), ranked in rankings.items():
            ref = rankings.get(("fp32", batch, task))
            if precision == "bf16" and ref is not None:
                overlap = [len(set(a) & set(b)) / max(1, len(b)) for a, b in zip(ranked, ref)]
                agreement[f"{task}_batch{batch}"] = round(float(np.mean(overlap)), 4)
        out["bf16_top_k_overlap_with_fp32"] = agreement
        if args.hf_prompts:
            run_model = model.to(device=device, dtype=torch.float32)
            settings = DecodingSettings.from_cfg(dec, batch_size=min(args.hf_prompts, 16))
            decoder = ItemDecoder(run_model, tokenizer, ids, settings)
            rows = test[test["task"] == "search"].iloc[:args.hf_prompts]
            for method in ("trie_beam", "hf_beam"):
                _reset_cuda()
                started = time.perf_counter()
                decoder.rank_examples(rows, k, method=method)
                _sync()
                wall = time.perf_counter() - started
                out.setdefault("methods", []).append({"method": method, "prompts": len(rows), "batch_size": settings.batch_size,
                                                      "prompts_per_second": round(len(rows) / wall, 1), **_cuda_peak()})
    return out


def run_train_profile(pack: Path, meta: dict, args) -> dict:
    """Where a training step's time goes at the paper's batch: a bare loop over pre-collated GPU
    batches (forward + backward in bf16 autocast, gradient clipping, AdamW) against
    ``train_seq2seq``, whose steps torch.profiler records."""
    import pandas as pd
    import torch
    from transformers import DataCollatorForSeq2Seq, TrainerCallback

    from helpers.generative.backbone import build_backbone
    from helpers.generative.train import train_seq2seq
    from helpers.semantic_ids.ids import SemanticIds

    ids = SemanticIds.load(pack / "ids")
    train = pd.read_parquet(pack / "train.parquet")
    for column in ("input_ids", "labels"):
        train[column] = train[column].map(lambda x: [int(v) for v in x])
    gen = dict(meta["profile"]["generative"])
    batch, steps = args.profile_batch, args.profile_steps
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out: dict = {"batch_size": batch}
    with tempfile.TemporaryDirectory(prefix="sid-gpu-prof-") as tmp:
        folder = t5_folder(pack, Path(tmp) / "base", small=args.small_model)
        model, tokenizer = build_backbone({**gen, "backbone": str(folder)}, ids)
        model = model.to(device).train()
        collate = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100)
        rows = train.iloc[:batch * (steps + 5)]
        batches = [{k: v.to(device) for k, v in collate([{"input_ids": r.input_ids, "labels": r.labels}
                    for r in rows.iloc[i * batch:(i + 1) * batch].itertuples()]).items()} for i in range(steps + 5)]
        for fused in (False, True):
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, fused=fused and device.type == "cuda")
            parts = {"forward_backward": 0.0, "clip": 0.0, "optimizer": 0.0}
            for i, b in enumerate(batches):
                timed = i >= 5
                _sync(); t0 = time.perf_counter()
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                    loss = model(**b).loss
                loss.backward()
                _sync(); t1 = time.perf_counter()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                _sync(); t2 = time.perf_counter()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                _sync(); t3 = time.perf_counter()
                if timed:
                    parts["forward_backward"] += t1 - t0
                    parts["clip"] += t2 - t1
                    parts["optimizer"] += t3 - t2
            out[f"bare_loop_{'fused' if fused else 'foreach'}_adamw_ms_per_step"] = {k: round(v / steps * 1000, 2) for k, v in parts.items()}
            del optimizer
        _reset_cuda()

        class Profile(TrainerCallback):
            def __init__(self):
                self.prof = None

            def on_step_begin(self, a, state, control, **kw):
                if state.global_step == 10 and self.prof is None:
                    self.prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]
                                                       + ([torch.profiler.ProfilerActivity.CUDA] if device.type == "cuda" else []))
                    self.prof.__enter__()
                    self.started = time.perf_counter()

            def on_step_end(self, a, state, control, **kw):
                if state.global_step == 30 and self.prof is not None:
                    _sync()
                    out["trainer_ms_per_step_profiled"] = round((time.perf_counter() - self.started) / 20 * 1000, 1)
                    self.prof.__exit__(None, None, None)
                    table = self.prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
                    out["profile_by_cpu"] = table
                    if device.type == "cuda":
                        out["profile_by_cuda"] = self.prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=15)
                    print(table, flush=True)

        model2, _ = build_backbone({**gen, "backbone": str(folder)}, ids)
        started = time.perf_counter()
        card = train_seq2seq(model2, tokenizer, train.iloc[:batch * 40], None,
                             {**gen, "epochs": 1, "batch_size": batch, "save_steps": None}, 0, Path(tmp) / "ckpt",
                             callbacks=[Profile()])
        out["trainer_40_steps_seconds"] = round(time.perf_counter() - started, 2)
        out["trainer_examples_per_second"] = card["train_examples_per_second"]
    return out


def environment() -> dict:
    import torch
    import transformers

    env = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
           "cuda": torch.version.cuda, "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    try:
        import sentence_transformers

        env["sentence_transformers"] = sentence_transformers.__version__
    except ImportError:
        pass
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1), gpu_count=torch.cuda.device_count())
    return env


def run(args) -> dict:
    pack = Path(args.pack)
    meta = json.loads((pack / "meta.json").read_text())
    result = {"environment": environment(), "meta": meta, "args": {k: v for k, v in vars(args).items() if k != "func"}}

    def save():
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1, default=str))

    for part, function in (("generative", run_generative), ("biencoder", run_biencoder), ("train_profile", run_train_profile)):
        if part not in args.parts:
            continue
        started = time.perf_counter()
        try:
            result[part] = function(pack, meta, args)
        except Exception as err:  # keep what the other part measured
            import traceback

            result[part] = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-3000:]}
        result[part]["part_seconds"] = round(time.perf_counter() - started, 1)
        save()
        print(json.dumps({part: result[part]}, indent=1, default=str)[:6000], flush=True)
    return result


# ---- report: measured rates -> the full paper profile -------------------------------------------------
def predict(result: dict) -> list[tuple[str, str, str]]:
    """(what, measured rate, hours for the full paper profile) rows."""
    meta, rows = result["meta"], []
    gen = result.get("generative", {})
    epochs = float(meta["profile"]["generative"]["epochs"])
    per_epoch = meta["rec_examples_per_epoch"] + meta["search_examples_per_epoch"]
    seeds = len(meta["profile"]["generative"]["seeds"])
    for t in gen.get("train", []):
        steady, whole = t.get("steady_examples_per_second"), t["examples_per_second"]
        rate = steady or whole
        measured = (f"{steady:,.0f} examples/s after {result['args'].get('warm_steps')} steps ({whole:,.0f} over the "
                    f"whole run)" if steady else f"{whole:,.0f} examples/s over the whole run")
        hours = epochs * per_epoch / rate / 3600
        rows.append((f"04 training, batch {t['batch_size']}, bf16 {t['bf16']}, torch.compile {t.get('torch_compile', False)}",
                     f"{measured}, GPU peak {t.get('gpu_peak_allocated_gib')} GiB",
                     f"{hours:.2f} h per model ({epochs:g} x {per_epoch:,} examples); {11 * seeds * hours:.0f} h for 11 x {seeds}"))
    for d in gen.get("decode", []):
        s, r = d["search"]["prompts_per_second"], d["rec"]["prompts_per_second"]
        hours = (meta["test_prompts_search"] / s + meta["test_prompts_rec"] / r) / 3600
        peak = max(d["search"].get("gpu_peak_allocated_gib") or 0, d["rec"].get("gpu_peak_allocated_gib") or 0)
        rows.append((f"04 decoding, {d['precision']}, batch {d['batch_size']}",
                     f"search {s:,.0f} / rec {r:,.0f} prompts/s, GPU peak {peak} GiB",
                     f"{hours:.2f} h per model ({meta['test_prompts_search']:,} + {meta['test_prompts_rec']:,} prompts); "
                     f"{11 * seeds * hours:.1f} h for 11 x {seeds}"))
    bi = result.get("biencoder", {})
    if "fine_tune" in bi:
        f = bi["fine_tune"]
        emb = meta["embeddings"]
        search_h = emb["search"]["epochs"] * meta["search_pairs_per_epoch"] / f["pairs_per_second"] / 3600
        multi_h = emb["multitask"]["epochs"] * meta["multitask_pairs_per_epoch"] / f["pairs_per_second"] / 3600
        rows.append(("02 bi-encoder fine-tuning (search; multitask)",
                     f"{f['pairs_per_second']:,.0f} pairs/s, GPU peak {f.get('gpu_peak_allocated_gib')} GiB",
                     f"{search_h:.2f} h search ({emb['search']['epochs']} x {meta['search_pairs_per_epoch']:,}); "
                     f"{multi_h:.2f} h multitask ({emb['multitask']['epochs']} x {meta['multitask_pairs_per_epoch']:,})"))
    if "encode_item_text" in bi:
        i, q = bi["encode_item_text"]["texts_per_second"], bi["encode_query_text"]["texts_per_second"]
        hours = 3 * (meta["item_texts"] / i + meta["test_prompts_search"] / q) / 3600
        rows.append(("02 encoding (3 models x (items + test queries))", f"items {i:,.0f} / queries {q:,.0f} texts/s",
                     f"{hours:.3f} h"))
    return rows


def report(paths: list[str]) -> str:
    lines = []
    for path in paths:
        result = json.loads(Path(path).read_text())
        env = result["environment"]
        lines.append(f"{env.get('gpu', 'no GPU')}, torch {env['torch']}, transformers {env['transformers']}, "
                     f"{env['cpus']} CPUs")
        lines += ["", "| stage | measured | full paper profile |", "| --- | --- | --- |"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in predict(result)]
        for part in ("generative", "biencoder"):
            if "error" in result.get(part, {}):
                lines.append(f"\n{part} failed: {result[part]['error']}")
        if result.get("generative", {}).get("bf16_top_k_overlap_with_fp32"):
            lines.append(f"\nbf16 top-k overlap with fp32: {result['generative']['bf16_top_k_overlap_with_fp32']}")
        for m in result.get("generative", {}).get("methods", []):
            lines.append(f"{m['method']}: {m['prompts_per_second']} prompts/s ({m['prompts']} search prompts, batch {m['batch_size']})")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="cut the inputs from a scale folder (CPU)")
    p.add_argument("--root", type=Path, required=True, help="bench_scale.py's --root (holds ml-<items> and data/)")
    p.add_argument("--out", type=Path, default=ROOT / ".gpu_pack")
    p.add_argument("--items", type=int, default=FULL)
    p.add_argument("--train-examples", type=int, default=131_072)
    p.add_argument("--test-prompts", type=int, default=2048, help="per task")
    p.add_argument("--pairs", type=int, default=32_768)
    p.add_argument("--texts", type=int, default=8192)
    r = sub.add_parser("run", help="measure (on the GPU machine)")
    r.add_argument("--pack", type=Path, default=ROOT / ".gpu_pack")
    r.add_argument("--json", type=Path)
    r.add_argument("--parts", nargs="+", default=["generative", "biencoder"])
    r.add_argument("--train-batches", type=int, nargs="+", default=[128, 512])
    r.add_argument("--train-steps", type=int, default=400)
    r.add_argument("--train-compile", type=lambda v: v == "true", nargs="+", default=[False], metavar="{false,true}")
    r.add_argument("--warm-steps", type=int, default=50, help="steps before the steady-state clock starts")
    r.add_argument("--train-only", action="store_true", help="skip decoding (generative part)")
    r.add_argument("--decode-batches", type=int, nargs="+", default=[64, 256])
    r.add_argument("--decode-precisions", nargs="+", default=["fp32", "bf16"])
    r.add_argument("--decode-prompts", type=int, default=2048, help="per task")
    r.add_argument("--hf-prompts", type=int, default=64, help="search prompts for trie_beam vs HF generate")
    r.add_argument("--pairs", type=int, default=32_768)
    r.add_argument("--texts", type=int, default=8192)
    r.add_argument("--profile-batch", type=int, default=128)
    r.add_argument("--profile-steps", type=int, default=30)
    r.add_argument("--small-model", action="store_true", help="a tiny T5 (checks the script on a CPU)")
    s = sub.add_parser("report", help="tables from run's JSON files")
    s.add_argument("json", nargs="+")
    args = parser.parse_args(argv)
    if args.command == "pack":
        meta = make_pack(args.root, args.out, args.items, args.train_examples, args.test_prompts, args.pairs, args.texts)
        size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
        print(json.dumps({k: v for k, v in meta.items() if k not in ("profile", "embeddings")}, indent=1))
        print(f"pack: {args.out} ({size / 2**20:.1f} MiB)")
    elif args.command == "run":
        run(args)
        if args.json:
            print(report([str(args.json)]))
    else:
        print(report(args.json))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
