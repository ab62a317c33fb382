"""Presentation tables of notebook 04: a model preview, training cards and curves, a recall sanity table.

Display only: nothing here trains, decodes or writes an artifact; every function reads what
:mod:`helpers.generative.stage` saved (``preview`` builds an untrained backbone, which is cheap).

Functions that go over every construction take ``inputs``, a mapping construction ->
:class:`helpers.generative.stage.ModelInputs` for constructions whose models were trained from
other inputs than the profile's artifacts (tests); the others use the profile's.
"""
from __future__ import annotations

from typing import Mapping

import pandas as pd

from .. import artifacts
from ..metrics import recall_at_k
from .backbone import build_backbone, describe
from .examples import SPLITS, ExampleBuilder, training_corpus
from .stage import (ModelInputs, constructions, load_predictions, model_dir, predictions_dir,
                    read_card, resolve_inputs)
from .train import training_curve


def show_examples(examples: pd.DataFrame, tokenizer, per_task: int = 2) -> pd.DataFrame:
    """A few examples as readable text: task, prompt, target ID tokens, target item."""
    picked = examples.groupby("task", sort=False).head(per_task)
    return pd.DataFrame({
        "task": picked["task"],
        "prompt": [tokenizer.decode(x, skip_special_tokens=True) for x in picked["input_ids"]],
        "target ID": ["".join(tokenizer.convert_ids_to_tokens(y)) for y in picked["labels"]],
        "target item": picked["target"],
    }).reset_index(drop=True)


def preview(cfg: dict, construction: str, per_task: int = 2,
            inputs: ModelInputs | None = None) -> tuple[dict, pd.DataFrame]:
    """What a model of ``construction`` would be: backbone sizes, example counts, a few examples.

    Builds an untrained backbone (cheap) and the examples; trains nothing.
    """
    from transformers import set_seed

    gen = cfg["generative"]
    inputs = resolve_inputs(cfg, construction, inputs)
    ds, ids = inputs.dataset, inputs.semantic_ids
    set_seed(0)
    model, tokenizer = build_backbone(gen, ids, training_corpus(ds))
    builder = ExampleBuilder(ds, ids, tokenizer, gen)
    counts = {split: builder.build(split)["task"].value_counts().to_dict() for split in SPLITS}
    summary = {"construction": construction, "scheme": ids.scheme, **describe(model, tokenizer),
               "id_tokens": len(ids.vocabulary), "search_id_length": ids.id_length("search"),
               "rec_id_length": ids.id_length("rec"), "history_items_per_prompt": builder.items_per_prompt,
               "examples": counts}
    return summary, show_examples(builder.build("train"), tokenizer, per_task)


def _models(cfg: dict, inputs: Mapping[str, ModelInputs] | None):
    """(construction, seed, model folder, that construction's inputs or None) for every model of the profile."""
    inputs = inputs or {}
    for construction in constructions(cfg):
        for seed in cfg["generative"]["seeds"]:
            given = inputs.get(construction)
            yield construction, int(seed), model_dir(cfg, construction, seed, given), given


def training_curves(cfg: dict, inputs: Mapping[str, ModelInputs] | None = None) -> pd.DataFrame:
    """Loss against epoch of every trained model: construction, seed, epoch, split, loss."""
    frames = [training_curve(read_card(folder)).assign(construction=construction, seed=seed)
              for construction, seed, folder, _ in _models(cfg, inputs) if artifacts.is_complete(folder)]
    columns = ["construction", "seed", "epoch", "split", "loss"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def model_cards(cfg: dict, inputs: Mapping[str, ModelInputs] | None = None) -> pd.DataFrame:
    """One row per trained model of the profile: the training card's headline numbers."""
    rows = []
    for construction, seed, folder, _ in _models(cfg, inputs):
        if not artifacts.is_complete(folder):
            continue
        card = read_card(folder)
        rows.append({"construction": construction, "seed": seed,
                     "train_seconds": card["train_seconds"],
                     "examples_per_second": card["train_examples_per_second"],
                     "n_train_examples": card["n_train_examples"], "steps": card["steps"],
                     "final_train_loss": card["final_train_loss"], "final_valid_loss": card["final_valid_loss"],
                     "parameters": card["backbone"]["parameters"], "vocabulary": card["backbone"]["vocabulary"],
                     "peak_rss_mib": card["peak_rss_mib"]})
    return pd.DataFrame(rows)


def prediction_summary(cfg: dict, split: str = "test",
                       inputs: Mapping[str, ModelInputs] | None = None) -> pd.DataFrame:
    """Recall@k per construction x seed x task of the saved predictions, with decoding speed.

    A sanity table for notebook 04; notebook 05 does the evaluation proper (segments, tests).
    """
    k = int(cfg["evaluation"]["k"])
    rows = []
    for construction, seed, _, given in _models(cfg, inputs):
        folder = predictions_dir(cfg, construction, seed, split, given)
        if not artifacts.is_complete(folder):
            continue
        manifest = artifacts.read_manifest(folder)
        predictions = load_predictions(cfg, construction, seed, split, given)
        for task, rows_of_task in predictions.groupby("task", sort=False):
            rows.append({"construction": construction, "seed": seed, "task": task,
                         f"recall@{k}": recall_at_k(list(rows_of_task["ranked"]), rows_of_task["target"].to_numpy(), k),
                         "n": len(rows_of_task), "mean_ranked": rows_of_task["ranked"].map(len).mean(),
                         "decoding_seconds": manifest["decoding_seconds"],
                         "queries_per_second": manifest["queries_per_second"]})
    return pd.DataFrame(rows)
