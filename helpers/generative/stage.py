"""Stage 04 entry points: one joint search & recommendation model per (ID construction, seed),
and its ranked predictions. Cached, atomic, and loadable by later notebooks.

Artifacts (``data/runs/<profile>/generative/<construction>-seed<seed>/<hash>/``), a model folder:

``config.json``, ``model.safetensors``, ``generation_config.json``
    the trained seq2seq model (``save_pretrained``; ``AutoModelForSeq2SeqLM.from_pretrained`` reads it).
``tokenizer.json``, ``tokenizer_config.json``, ...
    its tokenizer, Semantic-ID tokens included (``AutoTokenizer.from_pretrained``).
``card.json``
    the training card: seconds, examples per second, steps, example counts per task, final
    train/validation loss, peak RSS, device, and the trainer's full ``log_history`` (the curves).
``manifest.json``
    construction, seed, the upstream folders, the ``generative`` parameters and the card's
    headline numbers.

Predictions (``data/runs/<profile>/predictions/<construction>-seed<seed>-<split>/<hash>/``):

``predictions.parquet`` (one row per test query and per user; search rows first; with
``decoding.test_queries_per_item`` only the test queries whose ``pair`` is below it)
    task (str: ``search`` | ``rec``), query_key (int64: ``query_id`` for search, ``user_id`` for
    rec), target (int64 item_id), ranked (list of int64 item ids, best first, at most
    ``evaluation.k``, distinct, every one a catalogue item; with ``decoding.exclude_history`` a
    rec ranking holds none of the user's earlier items).
``manifest.json``
    decoding method and parameters, decoding seconds, queries per second, counts per task.

Text states (``data/runs/<profile>/text_states/<hash>/``), only for ``backbone: minilm-frozen``:
the frozen encoder's token states of every prompt text of the dataset, built once by the first
model that needs them and read by every other construction and seed
(:mod:`helpers.generative.text_states` documents the files). A ``minilm-frozen`` model folder holds
only the trainable weights; ``load_model`` attaches these states, and the frozen encoder runs on
the fly only for a text they do not hold (a typed query).

Decoder comparison (``data/runs/<profile>/decoder_comparison/<construction>-seed<seed>/<hash>/``),
written by ``compare_decoders``:

``comparison.parquet`` (one row per decoding method x task)
    method (str), task (str), ``recall@<k>`` (float64), queries_per_second (float64: the fastest of
    ``repeats`` runs *on the machine and at the time that measured them*; the manifest's
    ``environment`` says which), mean_distinct_items (float64), overlap_with_exact (float64: mean
    share of the exact top-k set a method recovers), n (int64 prompts).
``manifest.json``
    the model folder, decoding settings, methods, sample size and seed, repeats, prompts per task.

The model's cache key covers the ``generative`` section (except ``seeds``: adding a seed does not
retrain the others; and the keys of the other backbones, ``backbone.unused_keys``), the seed,
and the upstream Semantic-ID and dataset folders; the predictions' key covers the model folder,
the decoding parameters the method uses, ``k`` and the split.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .. import artifacts
from ..data.dataset import Dataset
from ..errors import InvalidIdError, ProfileError
from ..metrics import recall_at_k
from ..registry import check_construction, construction_names as constructions
from ..semantic_ids.ids import SemanticIds
from .backbone import FROZEN_TEXT, build_backbone, describe, load_backbone, save_backbone, unused_keys
from .decoding import METHODS, DecodingSettings, ItemDecoder
from .example_cache import cached_train_columns
from .examples import SPLITS, ExampleBuilder, training_corpus
from .train import peak_rss_mib, train_seq2seq

log = logging.getLogger(__name__)
PRODUCED_BY = "notebooks/04_generative_training.ipynb"
SCHEMA = 1
CARD = "card.json"
PREDICTIONS = "predictions.parquet"
PREDICTION_COLUMNS = ["task", "query_key", "target", "ranked"]
COMPARISON = "comparison.parquet"
#: What ``predict`` decodes. ``valid`` and ``test``: the dataset's splits (``examples.SPLITS``);
#: ``train``: the train queries with ``pair < evaluation.train_queries_per_item`` (search only: how
#: well the model recalls what it was trained on, next to the test paraphrases of the same pairs);
#: ``human``: the hand-written queries of ``evaluation.human_queries`` (search only).
PREDICTION_SPLITS = SPLITS[1:] + ("train", "human")


@dataclass
class TrainedModel:
    """A trained model folder, loaded: the seq2seq model, its tokenizer and its training card."""

    model: object
    tokenizer: object
    path: Path
    card: dict


# ---- upstream ----------------------------------------------------------------------------------
def _check(cfg: dict, construction: str, seed=None, split: str | None = None) -> None:
    check_construction(cfg, construction)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise ProfileError(f"A seed must be an integer, got {seed!r}.")
    if split is not None and split not in PREDICTION_SPLITS:
        raise ProfileError(f"Predictions are made for split {', '.join(map(repr, PREDICTION_SPLITS))}, got {split!r}.")


def upstream_names(cfg: dict, construction: str) -> dict:
    """The profile's upstream folder names for ``construction`` (cheap: no artifact is read)."""
    from ..data.stage import dataset_dir
    from ..semantic_ids.stage import semantic_ids_dir

    return {"semantic_ids": semantic_ids_dir(cfg, construction).name, "data": dataset_dir(cfg).name}


@dataclass(frozen=True)
class ModelInputs:
    """What a model of one construction is trained and decoded from.

    ``upstream`` names the folders of ``dataset`` and ``semantic_ids`` (keys ``semantic_ids`` and
    ``data``); it enters every cache key of this stage, so other inputs land in other folders.
    ``ModelInputs.load(cfg, construction)`` reads the profile's artifacts; a test builds one from
    synthetic data and passes it as ``inputs=``.
    """

    dataset: Dataset
    semantic_ids: SemanticIds
    upstream: dict

    @classmethod
    def load(cls, cfg: dict, construction: str) -> "ModelInputs":
        from ..data.stage import load_dataset
        from ..semantic_ids.stage import load_semantic_ids

        return cls(load_dataset(cfg), load_semantic_ids(cfg, construction), upstream_names(cfg, construction))


def _upstream(cfg: dict, construction: str, inputs: ModelInputs | None) -> dict:
    return dict(inputs.upstream) if inputs is not None else upstream_names(cfg, construction)


def resolve_inputs(cfg: dict, construction: str, inputs: ModelInputs | None = None) -> ModelInputs:
    """``inputs`` when given, else the profile's dataset and Semantic IDs of ``construction``."""
    return inputs if inputs is not None else ModelInputs.load(cfg, construction)


# ---- frozen text states (minilm-frozen) -----------------------------------------------------------
def _data_name(cfg: dict, inputs: ModelInputs | None) -> str:
    from ..data.stage import dataset_dir

    return str(inputs.upstream["data"]) if inputs is not None else dataset_dir(cfg).name


def text_states_dir(cfg: dict, inputs: ModelInputs | None = None) -> Path:
    """The folder of the frozen text states of the profile's dataset (or of ``inputs``' dataset)."""
    from .text_states import text_states_dir as states_dir

    return states_dir(cfg, _data_name(cfg, inputs))


def build_text_states(cfg: dict, inputs: ModelInputs | None = None, force: bool = False):
    """Compute (or find cached) the frozen states of every prompt text; a ``TextStates`` store.

    Shared by every construction and seed: ``inputs`` only names the dataset (default: the profile's).
    """
    from ..data.stage import load_dataset
    from .text_states import build_text_states as build

    dataset = inputs.dataset if inputs is not None else load_dataset(cfg)
    return build(cfg, dataset, _data_name(cfg, inputs), force=force)


def load_text_states(cfg: dict, inputs: ModelInputs | None = None):
    """The built text states of the profile's (or ``inputs``') dataset, or None if not built."""
    from .text_states import load_text_states as load

    return load(cfg, _data_name(cfg, inputs))


# ---- models --------------------------------------------------------------------------------------
def model_dir(cfg: dict, construction: str, seed: int, inputs: ModelInputs | None = None) -> Path:
    """The folder of the model for (construction, seed) under this profile."""
    _check(cfg, construction, seed)
    gen = cfg["generative"]
    unused = {"seeds", "workers", "save_steps", "torch_compile"} | unused_keys(gen)  # how, not what, a model trains
    params = {k: v for k, v in gen.items() if k not in unused}
    key = {"generative": params, "seed": int(seed), **_upstream(cfg, construction, inputs), "schema": SCHEMA}
    return artifacts.stage_dir(cfg, "generative", key, name=f"{construction}-seed{int(seed)}")


def train_model(cfg: dict, construction: str, seed: int, force: bool = False, progress: bool = False,
                inputs: ModelInputs | None = None) -> Path:
    """Train (or find cached) the joint S&R model for (construction, seed); return its folder.

    The folder appears only once training and saving succeeded. Per-epoch trainer checkpoints go
    to a hidden sibling folder, so an interrupted run resumes where it stopped. ``inputs``: the
    dataset and Semantic IDs to train on (default: the profile's, read only when training).

    Safe to call from several processes: a lock on the folder lets one build it while the others
    wait and then return the finished folder. Under ``torchrun``/``accelerate`` every rank trains
    (the trainer runs DDP) and only rank 0 takes the lock and writes.
    """
    from .jobs import distributed_rank

    folder = model_dir(cfg, construction, seed, inputs)
    if artifacts.is_complete(folder) and not force:
        return folder
    rank, _ = distributed_rank()
    with artifacts.lock(folder) if rank == 0 else contextlib.nullcontext():
        if artifacts.is_complete(folder) and not force:  # another process built it while we waited
            return folder
        return _train_model(cfg, construction, seed, folder, force, progress, inputs, writer=rank == 0)


def _train_model(cfg: dict, construction: str, seed: int, folder: Path, force: bool, progress: bool,
                 inputs: ModelInputs | None, writer: bool) -> Path:
    from transformers import set_seed

    from .jobs import distributed_rank

    gen = cfg["generative"]
    inputs = resolve_inputs(cfg, construction, inputs)
    ds, ids = inputs.dataset, inputs.semantic_ids
    set_seed(int(seed))  # the randomly initialised t5-config weights depend on it
    model, tokenizer = build_backbone(gen, ids, training_corpus(ds))
    states = None
    if gen["backbone"] == FROZEN_TEXT:  # one pass of the frozen encoder, shared by every model
        states = build_text_states(cfg, inputs)
        model.attach_text_states(states)
    builder = ExampleBuilder(ds, ids, tokenizer, gen)
    # tokenized once per construction and memory-mapped (shared by its seeds and DDP ranks)
    train_examples = cached_train_columns(cfg, construction, builder, inputs.upstream)
    valid_examples = builder.build("valid")
    checkpoints = folder.parent / f".checkpoints-{folder.name}"
    label = f"{construction} seed {int(seed)}"
    if not writer:  # a DDP rank other than 0: train alongside rank 0, which saves
        train_seq2seq(model, tokenizer, train_examples, valid_examples, gen, int(seed), checkpoints, progress,
                      label=label)
        return folder
    if force:
        shutil.rmtree(checkpoints, ignore_errors=True)
    manifest = {"stage": "generative", "profile": cfg["name"], "construction": construction, "seed": int(seed),
                "scheme": ids.scheme, "generative": gen, "upstream": dict(inputs.upstream),
                "backbone": describe(model, tokenizer)}
    if states is not None:
        manifest["text_states"] = str(text_states_dir(cfg, inputs))
    with artifacts.atomic_dir(folder, manifest) as tmp:
        card = train_seq2seq(model, tokenizer, train_examples, valid_examples, gen, int(seed), checkpoints, progress,
                             label=label)
        card.update(construction=construction, seed=int(seed), backbone=describe(model, tokenizer),
                    processes=distributed_rank()[1])
        save_backbone(model, tokenizer, tmp)
        artifacts.write_json(tmp / CARD, card)
        manifest.update({k: v for k, v in card.items() if k != "log_history"})
    shutil.rmtree(checkpoints, ignore_errors=True)
    log.info("%s seed %d: trained in %.0f s (%.0f examples/s)", construction, seed,
             card["train_seconds"], card["train_examples_per_second"])
    return folder


def load_model(cfg: dict, construction: str, seed: int, inputs: ModelInputs | None = None) -> TrainedModel:
    """The trained model of (construction, seed), or ``MissingArtifactError`` naming notebook 04."""
    folder = artifacts.require(model_dir(cfg, construction, seed, inputs),
                               f"The generative model for {construction} (seed {seed})", PRODUCED_BY, cfg)
    states = load_text_states(cfg, inputs) if cfg["generative"]["backbone"] == FROZEN_TEXT else None
    model, tokenizer = load_backbone(folder, text_states=states)
    model = model.to(decoding_device(cfg["decoding"].get("device", "auto")))
    return TrainedModel(model=model.eval(), tokenizer=tokenizer, path=folder, card=read_card(folder))


def decoding_device(setting: str = "auto"):
    """``decoding.device``: ``auto`` (the GPU when there is one, else the CPU), ``cpu``, ``cuda[:i]``.

    Every decoder runs where the model is (the trie and the prompts follow it), so a GPU machine
    decodes on its GPU without further settings.
    """
    import torch

    setting = str(setting or "auto")
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(setting)
    except RuntimeError as err:
        raise ProfileError(f"decoding.device {setting!r} is not a device: use auto, cpu or cuda[:index].") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ProfileError(f"decoding.device is {setting!r} but torch sees no GPU here; use auto or cpu.")
    return device


def read_card(folder: Path) -> dict:
    return json.loads((Path(folder) / CARD).read_text())


def all_jobs(cfg: dict) -> list[tuple[str, int]]:
    """Every (construction, seed) of the profile, seeds inside constructions."""
    return [(c, int(s)) for c in constructions(cfg) for s in cfg["generative"]["seeds"]]


def _train_job(cfg: dict, construction: str, seed: int, force: bool = False) -> Path:
    return train_model(cfg, construction, seed, force=force)


def train_all(cfg: dict, force: bool = False, progress: bool = True) -> dict[tuple[str, int], Path]:
    """Train every construction of ``semantic_ids.constructions`` x every ``generative.seeds``.

    ``generative.workers`` processes train side by side (:mod:`helpers.generative.workers`).
    """
    from .workers import run_jobs

    jobs = [job for job in all_jobs(cfg) if force or not artifacts.is_complete(model_dir(cfg, *job))]
    if _needs_text_states(cfg) and jobs:
        build_text_states(cfg)  # once, before the workers start, rather than under a lock in the first job
    run_jobs(_train_job, cfg, [(c, s, force) for c, s in jobs], workers=workers(cfg), desc="generative models",
             progress=progress)
    return {job: model_dir(cfg, *job) for job in all_jobs(cfg)}


def workers(cfg: dict) -> int:
    """``generative.workers``: processes that train or decode models side by side (1 = this one)."""
    return int(cfg["generative"].get("workers") or 1)


def _needs_text_states(cfg: dict) -> bool:
    return cfg["generative"]["backbone"] == FROZEN_TEXT


# ---- predictions ---------------------------------------------------------------------------------
def predictions_dir(cfg: dict, construction: str, seed: int, split: str = "test",
                    inputs: ModelInputs | None = None) -> Path:
    _check(cfg, construction, seed, split)
    settings = DecodingSettings.from_cfg(cfg["decoding"])
    key = {"model": model_dir(cfg, construction, seed, inputs).name, "decoding": settings.params(),
           "test_queries_per_item": cfg["decoding"].get("test_queries_per_item"),
           "k": int(cfg["evaluation"]["k"]), "split": split, "schema": SCHEMA}
    if split == "train":
        key["train_queries_per_item"] = cfg["evaluation"].get("train_queries_per_item")
    elif split == "human":
        from ..data.human_queries import human_queries_path

        key["human_queries"] = artifacts.file_digest(human_queries_path(_human_queries_name(cfg)))
    return artifacts.stage_dir(cfg, "predictions", key, name=f"{construction}-seed{int(seed)}-{split}")


def _human_queries_name(cfg: dict) -> str:
    name = cfg["evaluation"].get("human_queries")
    if not name:
        raise ProfileError("evaluation.human_queries is null: this profile has no human query set to decode.")
    return name


def prediction_examples(cfg: dict, builder: ExampleBuilder, split: str) -> pd.DataFrame:
    """The prompts ``predict`` decodes for ``split`` (see :data:`PREDICTION_SPLITS`)."""
    if split == "train":
        per_item = cfg["evaluation"].get("train_queries_per_item")
        return builder.search_examples("train", None if per_item is None else int(per_item))
    if split == "human":
        from ..data.human_queries import load_human_queries

        return builder.search_rows(load_human_queries(_human_queries_name(cfg), builder.ds.items))
    return builder.build(split, test_queries_per_item=cfg["decoding"].get("test_queries_per_item"))


def check_predictions(predictions: pd.DataFrame, n_items: int, k: int) -> None:
    """The contract of predictions.parquet: distinct, valid, at most k items per row."""
    for ranked in predictions["ranked"]:
        ranked = list(ranked)
        if len(ranked) > k or len(set(ranked)) != len(ranked) or any(not 0 <= i < n_items for i in ranked):
            raise InvalidIdError(f"Invalid ranking {ranked[:5]}...: rankings hold at most {k} distinct item ids.")


def predict(cfg: dict, construction: str, seed: int, split: str = "test", force: bool = False,
            inputs: ModelInputs | None = None) -> pd.DataFrame:
    """Ranked items for every ``split`` prompt of (construction, seed); cached (trains if needed)."""
    folder = predictions_dir(cfg, construction, seed, split, inputs)
    if artifacts.is_complete(folder) and not force:
        return load_predictions(cfg, construction, seed, split, inputs)
    inputs = resolve_inputs(cfg, construction, inputs)
    train_model(cfg, construction, seed, inputs=inputs)
    _decode(cfg, construction, seed, split, inputs, load_model(cfg, construction, seed, inputs))
    return load_predictions(cfg, construction, seed, split, inputs)


def _decode(cfg: dict, construction: str, seed: int, split: str, inputs: ModelInputs, trained: TrainedModel) -> None:
    """Decode ``split`` with a loaded model and write its predictions artifact."""
    folder = predictions_dir(cfg, construction, seed, split, inputs)
    ds, ids = inputs.dataset, inputs.semantic_ids
    examples = prediction_examples(cfg, ExampleBuilder(ds, ids, trained.tokenizer, cfg["generative"]), split)
    settings = DecodingSettings.from_cfg(cfg["decoding"])
    k = int(cfg["evaluation"]["k"])
    predictions, seconds = ItemDecoder(trained.model, trained.tokenizer, ids, settings).timed_rank_examples(examples, k)
    check_predictions(predictions, ids.n_items, k)
    log.info("%s seed %d: %d %s prompts decoded in %.0f s", construction, seed, len(predictions), split, seconds)
    manifest = {"stage": "predictions", "profile": cfg["name"], "construction": construction, "seed": int(seed),
                "split": split, "k": k, "model": str(trained.path), "decoding": settings.params(),
                "decoding_seconds": round(seconds, 2),
                "queries_per_second": round(len(predictions) / seconds, 1) if seconds > 0 else None,
                "n_queries": predictions["task"].value_counts().to_dict(),
                "mean_ranked_length": predictions["ranked"].map(len).groupby(predictions["task"]).mean().to_dict(),
                "peak_rss_mib": peak_rss_mib()}
    with artifacts.atomic_dir(folder, manifest) as tmp:
        predictions.to_parquet(tmp / PREDICTIONS, index=False)


def load_predictions(cfg: dict, construction: str, seed: int, split: str = "test",
                     inputs: ModelInputs | None = None) -> pd.DataFrame:
    """predictions.parquet of (construction, seed, split), or ``MissingArtifactError`` naming notebook 04."""
    folder = artifacts.require(predictions_dir(cfg, construction, seed, split, inputs),
                               f"The {split} predictions of the generative model for {construction} (seed {seed})",
                               PRODUCED_BY, cfg)
    predictions = pd.read_parquet(folder / PREDICTIONS)
    predictions["ranked"] = [np.asarray(r, dtype=np.int64).tolist() for r in predictions["ranked"]]
    return predictions


def profile_splits(cfg: dict) -> tuple[str, ...]:
    """What notebook 04 decodes: the test split, the diagnostic train queries and, when the profile
    names a set (``evaluation.human_queries``), the hand-written queries."""
    return ("test", "train") + (("human",) if cfg["evaluation"].get("human_queries") else ())


def _predict_job(cfg: dict, construction: str, seed: int, splits: tuple[str, ...], force: bool = False) -> None:
    """Decode the missing ``splits`` of one model: its inputs and weights are loaded once for all."""
    todo = [split for split in splits if force or not artifacts.is_complete(predictions_dir(cfg, construction, seed, split))]
    if not todo:
        return
    inputs = resolve_inputs(cfg, construction)
    train_model(cfg, construction, seed, inputs=inputs)
    trained = load_model(cfg, construction, seed, inputs)
    for split in todo:
        _decode(cfg, construction, seed, split, inputs, trained)


def predict_all(cfg: dict, split: str | Sequence[str] = "test", force: bool = False, progress: bool = True) -> dict:
    """``predict`` for every construction x seed of the profile; returns the manifests.

    ``split``: one split or several (decoded by the same job, one model load); with several the
    manifests are keyed (construction, seed, split). ``generative.workers`` processes decode side
    by side.
    """
    from .workers import run_jobs

    splits = (split,) if isinstance(split, str) else tuple(split)
    pending = [(c, s) for c, s in all_jobs(cfg)
               if force or not all(artifacts.is_complete(predictions_dir(cfg, c, s, name)) for name in splits)]
    run_jobs(_predict_job, cfg, [(c, s, splits, force) for c, s in pending], workers=workers(cfg),
             desc=f"{'/'.join(splits)} predictions", progress=progress)
    manifests = {(c, s, name): artifacts.read_manifest(predictions_dir(cfg, c, s, name))
                 for c, s in all_jobs(cfg) for name in splits}
    if isinstance(split, str):
        return {(c, s): manifest for (c, s, _), manifest in manifests.items()}
    return manifests


# ---- the decoders side by side ----------------------------------------------------------------
def _comparison_methods(methods) -> list[str]:
    methods = list(methods or METHODS)
    if "exact" not in methods:
        methods.append("exact")
    return methods


def decoder_comparison_dir(cfg: dict, construction: str, seed: int | None = None, per_task: int = 200,
                           methods=None, sample_seed: int = 0, repeats: int = 1,
                           inputs: ModelInputs | None = None) -> Path:
    """The folder of ``compare_decoders``' artifact for these settings (see the module docstring)."""
    seed = int(cfg["generative"]["seeds"][0] if seed is None else seed)
    model = model_dir(cfg, construction, seed, inputs)
    settings = dataclasses.asdict(DecodingSettings.from_cfg(cfg["decoding"]))
    settings.pop("method")  # every method is run; the profile's choice does not matter here
    key = {"model": f"{model.parent.name}/{model.name}", "decoding": settings,
           "methods": _comparison_methods(methods), "k": int(cfg["evaluation"]["k"]), "split": "test",
           "per_task": int(per_task), "sample_seed": int(sample_seed), "repeats": max(1, int(repeats)),
           "schema": SCHEMA}
    return artifacts.stage_dir(cfg, "decoder_comparison", key, name=f"{construction}-seed{seed}")


def compare_decoders(cfg: dict, construction: str, seed: int | None = None, per_task: int = 200,
                     methods=None, sample_seed: int = 0, repeats: int = 1, force: bool = False,
                     inputs: ModelInputs | None = None) -> pd.DataFrame:
    """Every decoder on the same trained model and the same sampled test prompts; cached.

    Returns one row per method x task: Recall@k, queries per second (the fastest of ``repeats``
    runs, which interleave the methods so a busy machine slows them alike), the mean number of
    distinct items returned, and the mean overlap of its top-k set with exact top-k (1.0 =
    identical sets). The model must be trained already (``train_model``).

    The table is an artifact (``decoder_comparison_dir``): a later call with the same model,
    settings and sample reads it back, timings included, so the speeds are those of the run that
    measured them (its manifest's ``environment`` names the machine). ``force`` measures again.
    """
    seed = int(cfg["generative"]["seeds"][0] if seed is None else seed)
    folder = decoder_comparison_dir(cfg, construction, seed, per_task, methods, sample_seed, repeats, inputs)
    if artifacts.is_complete(folder) and not force:
        return pd.read_parquet(folder / COMPARISON)
    methods = _comparison_methods(methods)
    k = int(cfg["evaluation"]["k"])
    trained = load_model(cfg, construction, seed, inputs)
    inputs = resolve_inputs(cfg, construction, inputs)
    ids = inputs.semantic_ids
    examples = ExampleBuilder(inputs.dataset, ids, trained.tokenizer, cfg["generative"]).build("test")
    rng = np.random.default_rng(sample_seed)
    sample = pd.concat([rows.iloc[np.sort(rng.choice(len(rows), min(per_task, len(rows)), replace=False))]
                        for _, rows in examples.groupby("task", sort=False)], ignore_index=True)
    settings = DecodingSettings.from_cfg(cfg["decoding"])
    decoder = ItemDecoder(trained.model, trained.tokenizer, ids, settings)
    rankings, seconds = {}, {}
    for _ in range(max(1, repeats)):
        for method in ["exact"] + [m for m in methods if m != "exact"]:
            for task, prompts in sample.groupby("task", sort=False):
                started = time.perf_counter()
                rankings[(method, task)] = decoder.rank(task, list(prompts["input_ids"]), k, list(prompts["seen"]),
                                                        method=method)
                elapsed = time.perf_counter() - started
                seconds[(method, task)] = min(elapsed, seconds.get((method, task), elapsed))
    results = []
    for (method, task), ranked in rankings.items():
        prompts = sample[sample["task"] == task]
        exact = rankings[("exact", task)]
        overlap = np.mean([len(set(a) & set(b)) / max(1, len(b)) for a, b in zip(ranked, exact)])
        results.append({"method": method, "task": task, f"recall@{k}": recall_at_k(ranked, prompts["target"].to_numpy(), k),
                        "queries_per_second": len(prompts) / seconds[(method, task)],
                        "mean_distinct_items": np.mean([len(r) for r in ranked]),
                        "overlap_with_exact": overlap, "n": len(prompts)})
    table = pd.DataFrame(results)
    manifest = {"stage": "decoder_comparison", "profile": cfg["name"], "construction": construction, "seed": seed,
                "model": str(trained.path), "decoding": dataclasses.asdict(settings), "methods": methods, "k": k,
                "per_task": int(per_task), "sample_seed": int(sample_seed), "repeats": max(1, int(repeats)),
                "n_prompts": sample["task"].value_counts().to_dict(),
                "fastest_run_seconds": round(sum(seconds.values()), 2)}
    with artifacts.atomic_dir(folder, manifest) as tmp:
        table.to_parquet(tmp / COMPARISON, index=False)
    return pd.read_parquet(folder / COMPARISON)
