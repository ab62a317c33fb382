"""Stage 02 entry points: the six item embedding spaces, cached, plus their dense-retrieval reference.

Spaces (paper sections 3-4; names in tables: Content-based, Search based, Rec. based, Multi-task,
Fused concat, Fused SVD):

==============  =================================================================================
``content``     pretrained sentence-transformer over item ``text`` (l2-normalised)
``search``      the same model fine-tuned on (train query, item text) pairs, MNRL (l2-normalised)
``rec``         ENMF item embeddings trained through RecBole on train interactions (raw, not
                normalised: their norms are part of what ENMF learned)
``multitask``   one bi-encoder fine-tuned on (query, item) and (item, co-occurring item) pairs
``fused_concat`` ``[l2(search), l2(rec)]`` (each half unit norm, the whole sqrt(2))
``fused_svd``   l2(search) reduced by TruncatedSVD to rec's dim, plus l2(rec)
==============  =================================================================================

Files in each space's folder ``data/runs/<profile>/embeddings/<space>/<hash>/``:

``vectors.npy``    float32 (n_items, d); row i is item_id i of the catalogue (items.parquet).
``item_ids.npy``   int64 (n_items,): 0..n_items-1, the item order of ``vectors.npy`` (checked on load).
``card.json``      model card: what produced the vectors, from which data (dataset folder, splits,
                   pair/interaction counts), training settings (epochs, steps, lr, batch), losses,
                   seconds, library versions.
``manifest.json``  written last by ``artifacts.atomic_dir``: marks the folder complete.
``model/``         (search, multitask) the fine-tuned sentence-transformers model: the query encoder.
``user_vectors.npy`` / ``enmf_h.npy`` / ``trained_items.npy``  (rec) ENMF's user vectors in our
                   user_id order, its output weights h (score = sum_k h_k u_k i_k), and which items
                   had train interactions (the others hold the mean trained vector).
``svd_components.npy``  (fused_svd) maps an l2-normalised vector of the reduced input into the
                   fused space (``x @ components.T``); which input was reduced is in card.json.

The folder hash covers the dataset folder, the space's own parameters and, for fused spaces, the
folders of their inputs, so changing e.g. ``embeddings.rec.epochs`` rebuilds rec and both fused
spaces, and nothing else. ``encode_batch_size`` is a speed knob and not part of the hash.

The reference (``reference_recalls``) is its own cached artifact,
``data/runs/<profile>/embeddings/reference/<hash>/`` with ``recalls.csv`` (the table) and
``hits.parquet`` (per query/user hits: task, space, method, exclude_history, row, hit).
"""
from __future__ import annotations

import gc
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .. import artifacts
from ..data.dataset import Dataset
from ..data.stage import dataset_dir, load_dataset
from ..errors import DataError
from . import reference as ref
from .biencoder import cooccurrence_pairs, fine_tune, query_item_pairs
from .content import encode_texts
from .fusion import fuse_concat, fuse_svd, single_threaded_blas
from .models import load_sentence_model, resolve_model_path

log = logging.getLogger(__name__)

from ..registry import SPACE_NAMES as DISPLAY_NAMES  # noqa: E402  (one registry of names)
from ..registry import SPACES, TEXT_SPACES  # noqa: E402
from ..vectors import validate_vectors  # noqa: E402,F401  (re-exported: the stage's loaders use it)
FUSED_INPUTS = ("search", "rec")
PRODUCED_BY = "notebooks/02_embeddings.ipynb"
SCHEMA = 1


# ---- folders ---------------------------------------------------------------------------------
def check_space(space: str) -> str:
    if space not in SPACES:
        raise DataError(f"Unknown embedding space '{space}'. Valid spaces: {', '.join(SPACES)}.")
    return space


def space_params(cfg: dict, space: str) -> dict:
    """The parameters that define ``space`` (what its folder hash covers, besides its inputs)."""
    emb = cfg["embeddings"]
    encoder = {"model": emb["model"], "max_seq_length": emb["max_seq_length"]}
    check_space(space)
    if space == "content":
        return encoder
    if space in ("search", "multitask"):
        return {**encoder, **emb[space], "seed": emb["seed"]}
    if space == "rec":
        return {**emb["rec"], "seed": emb["seed"]}
    if space == "fused_svd":
        return dict(emb["fused_svd"])
    return {}


def embedding_dir(cfg: dict, space: str) -> Path:
    """The artifact folder of ``space`` for this profile (a pure function of the profile)."""
    key = {"space": check_space(space), "schema": SCHEMA, "dataset": dataset_dir(cfg).name,
           "params": space_params(cfg, space)}
    if space.startswith("fused"):
        key["inputs"] = {name: embedding_dir(cfg, name).name for name in FUSED_INPUTS}
    return artifacts.stage_dir(cfg, "embeddings", key, name=space)


# ---- loading and validation -----------------------------------------------------------------
def _catalogue_size(cfg: dict) -> int:
    folder = dataset_dir(cfg)
    if artifacts.is_complete(folder) and "n_items" in artifacts.read_manifest(folder):
        return int(artifacts.read_manifest(folder)["n_items"])
    return load_dataset(cfg).n_items


def load_embedding(cfg: dict, space: str) -> np.ndarray:
    """float32 (n_items, d) vectors of ``space``, row i = item_id i; checked against the catalogue.

    Raises MissingArtifactError (naming notebooks/02_embeddings.ipynb) if it was never built, and
    DataError if its item order or values are broken.
    """
    folder = artifacts.require(embedding_dir(cfg, space), f"The '{space}' item embeddings", PRODUCED_BY, cfg)
    vectors = np.load(folder / "vectors.npy").astype(np.float32, copy=False)
    item_ids = np.load(folder / "item_ids.npy")
    return validate_vectors(vectors, item_ids, _catalogue_size(cfg), str(folder))


def load_card(cfg: dict, space: str) -> dict:
    """The model card (card.json) of a built space."""
    folder = artifacts.require(embedding_dir(cfg, space), f"The '{space}' item embeddings", PRODUCED_BY, cfg)
    return artifacts.read_json(folder / "card.json")


def load_query_encoder(cfg: dict, space: str):
    """The SentenceTransformer that encodes queries for a text space (content/search/multitask)."""
    if check_space(space) not in TEXT_SPACES:
        raise DataError(f"'{space}' has no query encoder; only {', '.join(TEXT_SPACES)} do.")
    emb = cfg["embeddings"]
    if space == "content":
        return load_sentence_model(emb["model"], emb["max_seq_length"])
    folder = artifacts.require(embedding_dir(cfg, space), f"The '{space}' item embeddings", PRODUCED_BY, cfg)
    return load_sentence_model(str(folder / "model"), emb["max_seq_length"])


# ---- building ----------------------------------------------------------------------------------
def build_embedding(cfg: dict, space: str, force: bool = False) -> np.ndarray:
    """Build ``space`` unless a complete artifact exists (``force`` rebuilds it); return its vectors.

    Upstream spaces are built as needed (fused spaces need search and rec). Only train queries and
    train interactions are used for training. Writes atomically (see module docstring for files).
    """
    folder = embedding_dir(cfg, check_space(space))
    if artifacts.is_complete(folder) and not force:
        return load_embedding(cfg, space)
    started = time.time()
    if space.startswith("fused"):
        inputs = {name: build_embedding(cfg, name) for name in FUSED_INPUTS}
        dataset = None
    else:
        inputs = {}
        dataset = load_dataset(cfg)
    with artifacts.atomic_dir(folder, {"stage": "embeddings", "space": space, "profile": cfg["name"],
                                       "params": space_params(cfg, space)}) as tmp:
        vectors, card = _BUILDERS[space](cfg, dataset, inputs, tmp)
        validate_vectors(vectors, where=space)
        np.save(tmp / "vectors.npy", vectors.astype(np.float32))
        np.save(tmp / "item_ids.npy", np.arange(len(vectors), dtype=np.int64))
        card = {
            "space": space, "name": DISPLAY_NAMES[space], "dim": int(vectors.shape[1]),
            "n_items": int(vectors.shape[0]), "dataset": str(dataset_dir(cfg)), "profile": cfg["name"],
            "params": space_params(cfg, space), **card,
            "seconds": round(time.time() - started, 2), "versions": _versions(),
        }
        artifacts.write_json(tmp / "card.json", card)
    gc.collect()
    log.info("embeddings '%s' (%s) written to %s in %.1f s", space, vectors.shape, folder, time.time() - started)
    return load_embedding(cfg, space)


def build_all_embeddings(cfg: dict, force: bool = False) -> dict[str, np.ndarray]:
    """Build (or load) every space in ``SPACES`` order; return space -> vectors."""
    return {space: build_embedding(cfg, space, force=force) for space in SPACES}


def _trained_on(dataset: Dataset) -> dict:
    inter = dataset.interactions
    return {"n_items": dataset.n_items, "n_users": dataset.n_users,
            "train_interactions": int((inter["split"] == "train").sum()),
            "train_queries": int((dataset.queries["split"] == "train").sum())}


def _build_content(cfg, dataset, inputs, tmp):
    emb = cfg["embeddings"]
    model = load_sentence_model(emb["model"], emb["max_seq_length"])
    started = time.time()
    vectors = encode_texts(model, dataset.items["text"].tolist(), emb["encode_batch_size"])
    card = {"produced_by": f"pretrained sentence-transformer {emb['model']} ({resolve_model_path(emb['model'])}), "
                           "no fine-tuning",
            "input": "item text", "normalized": True, "trained_on": None,
            "encode_seconds": round(time.time() - started, 2)}
    return vectors, card


def _build_biencoder(space: str):
    def build(cfg, dataset, inputs, tmp):
        emb = cfg["embeddings"]
        params = emb[space]
        seed = emb["seed"]
        pair_sets = {"search": query_item_pairs(dataset, params["max_pairs"], seed)}
        if space == "multitask":
            pair_sets["cooccurrence"] = cooccurrence_pairs(dataset, params["cooccurrence_window"],
                                                           params["max_pairs"], seed)
        model = load_sentence_model(emb["model"], emb["max_seq_length"])
        training = fine_tune(model, pair_sets, params, seed)
        started = time.time()
        vectors = encode_texts(model, dataset.items["text"].tolist(), emb["encode_batch_size"])
        encode_seconds = round(time.time() - started, 2)
        model.save(str(tmp / "model"))
        what = ("(train query, item text) pairs" if space == "search" else
                "(train query, item text) pairs and (item, co-occurring item) pairs from train histories "
                f"(window {params['cooccurrence_window']})")
        card = {"produced_by": f"{emb['model']} fine-tuned with sentence-transformers' "
                               f"SentenceTransformerTrainer on {what}",
                "input": "item text", "normalized": True,
                "trained_on": {**_trained_on(dataset), "splits": ["train"]},
                "training": training, "encode_seconds": encode_seconds, "query_encoder": "model/"}
        del model
        return vectors, card
    return build


def _build_rec(cfg, dataset, inputs, tmp):
    from .enmf import train_enmf

    emb = cfg["embeddings"]
    result = train_enmf(dataset, emb["rec"], seed=emb["seed"])
    np.save(tmp / "user_vectors.npy", result.user_vectors)
    np.save(tmp / "enmf_h.npy", result.h_weights)
    np.save(tmp / "trained_items.npy", result.trained_items)
    test = dataset.interactions[dataset.interactions["split"] == "test"]
    leaked = result.recbole_interactions.merge(test[["user_id", "item_id", "timestamp"]], how="inner")
    if len(leaked):  # a guard, not an expected path: write_atomic_files never writes test rows
        raise DataError(f"{len(leaked)} test interactions reached RecBole; refusing to save the rec space.")
    card = {"produced_by": "ENMF (Chen et al., TOIS 2020) trained through RecBole 1.2.1 "
                           "(Config/create_dataset/data_preparation/get_model/get_trainer)",
            "input": "user-item interactions", "normalized": False,
            "trained_on": {**_trained_on(dataset), "splits": ["train"],
                           "recbole_rows": len(result.recbole_interactions),
                           "note": "RecBole's valid/test files hold our valid split; our test split never "
                                   "reaches it"},
            "training": {**emb["rec"], "epoch_losses": [round(x, 4) for x in result.train_loss],
                         "seconds": result.seconds},
            "untrained_items": int((~result.trained_items).sum()),
            "untrained_items_vector": "mean of the trained item vectors"}
    return result.item_vectors, card


def _build_fused_concat(cfg, dataset, inputs, tmp):
    vectors = fuse_concat(inputs["search"], inputs["rec"])
    card = {"produced_by": "[l2(search), l2(rec)]", "normalized": False,
            "inputs": {name: str(embedding_dir(cfg, name)) for name in FUSED_INPUTS},
            "dims": {name: int(v.shape[1]) for name, v in inputs.items()}}
    return vectors, card


def _build_fused_svd(cfg, dataset, inputs, tmp):
    fused = fuse_svd(inputs["search"], inputs["rec"], seed=cfg["embeddings"]["fused_svd"]["seed"])
    if fused.components is not None:
        np.save(tmp / "svd_components.npy", fused.components)
    card = {"produced_by": "TruncatedSVD(l2(larger input)) + l2(smaller input)", "normalized": False,
            "inputs": {name: str(embedding_dir(cfg, name)) for name in FUSED_INPUTS},
            "dims": {name: int(v.shape[1]) for name, v in inputs.items()},
            "reduced": fused.reduced, "explained_variance_ratio": fused.explained_variance_ratio}
    return fused.vectors, card


_BUILDERS = {"content": _build_content, "search": _build_biencoder("search"), "rec": _build_rec,
             "multitask": _build_biencoder("multitask"), "fused_concat": _build_fused_concat,
             "fused_svd": _build_fused_svd}


def _versions() -> dict:
    import importlib.metadata as md

    out = {}
    for name in ("torch", "sentence-transformers", "transformers", "recbole", "scikit-learn", "faiss-cpu"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


# ---- dense-retrieval reference -------------------------------------------------------------------
def reference_dir(cfg: dict) -> Path:
    key = {"schema": SCHEMA, "spaces": {s: embedding_dir(cfg, s).name for s in SPACES},
           "reference": cfg["embeddings"]["reference"], "k": cfg["evaluation"]["k"]}
    return artifacts.stage_dir(cfg, "embeddings", key, name="reference")


def reference_queries(dataset: Dataset, per_item: int | None) -> pd.DataFrame:
    """The test queries of the search reference: pairs 0..per_item-1 of every item (None: all)."""
    test = dataset.query_split("test")
    if per_item is not None:
        test = test[test["pair"] < per_item]
    return test.sort_values("query_id").reset_index(drop=True)


def _query_vectors_for(space: str, search_queries: np.ndarray, cfg: dict) -> np.ndarray:
    """Queries in a fused space: the search encoder's vector, mapped as the search half was."""
    if space == "fused_concat":
        rec_dim = int(load_card(cfg, "rec")["dim"])
        return np.hstack([search_queries, np.zeros((len(search_queries), rec_dim), np.float32)])
    card = load_card(cfg, "fused_svd")
    if card["reduced"] == "search":
        components = np.load(embedding_dir(cfg, "fused_svd") / "svd_components.npy")
        return search_queries @ components.T
    return search_queries


def reference_recalls(cfg: dict, force: bool = False) -> pd.DataFrame:
    """Dense-retrieval Recall@K of every space, cached; one row per (space, method).

    Columns: ``space``, ``name`` (paper's name), ``method``, ``search_recall`` (NaN without a query
    encoder), ``rec_recall`` (history items skipped), ``rec_recall_with_history`` (all items
    ranked), ``n_queries``, ``n_users``. See ``helpers.embeddings.reference`` for the methods;
    fused spaces are searched with the search encoder's query vector placed where the search half
    of the item vectors is (zeros in the rec half; SVD-projected for fused_svd when search was the
    reduced input). Builds every space first if needed.
    """
    folder = reference_dir(cfg)
    if artifacts.is_complete(folder) and not force:
        return pd.read_csv(folder / "recalls.csv")
    vectors = build_all_embeddings(cfg)
    dataset = load_dataset(cfg)
    params = cfg["embeddings"]["reference"]
    k, recent = int(cfg["evaluation"]["k"]), int(params["recent_items"])
    started = time.time()
    queries = reference_queries(dataset, params["test_queries_per_item"])
    query_vectors = _reference_query_vectors(cfg, queries["text"].tolist())
    query_targets = queries["item_id"].to_numpy()
    histories = dataset.histories(("train", "valid"))
    targets = dataset.targets("test")

    with single_threaded_blas():
        results = _reference_results(vectors, query_vectors, query_targets, histories, targets,
                                     dataset.popularity(), embedding_dir(cfg, "rec"), k, recent)
    table = pd.DataFrame([_reference_row(*result) for result in results])
    hits = pd.concat([_reference_hits(*result) for result in results], ignore_index=True)
    manifest = {"stage": "embeddings-reference", "profile": cfg["name"], "k": k, "params": params,
                "seconds": round(time.time() - started, 2)}
    with artifacts.atomic_dir(folder, manifest) as tmp:
        table.to_csv(tmp / "recalls.csv", index=False)
        hits.to_parquet(tmp / "hits.parquet", index=False)
    return table


def _reference_results(vectors, query_vectors, query_targets, histories, targets, popularity,
                       rec_folder: Path, k: int, recent: int) -> list[tuple]:
    """(space, method, search hits, rec hits skipping history, rec hits ranking all) per row."""
    results = []
    for space in SPACES:
        search = (ref.search_hits(vectors[space], query_vectors[space], query_targets, k)
                  if space in query_vectors else None)
        results.append((space, f"cosine; user = mean of last {recent} history items", search,
                        ref.vector_rec_hits(vectors[space], histories, targets, k, recent, exclude_history=True),
                        ref.vector_rec_hits(vectors[space], histories, targets, k, recent, exclude_history=False)))
    user_vectors, h = np.load(rec_folder / "user_vectors.npy"), np.load(rec_folder / "enmf_h.npy")

    def enmf_scores(lo: int, hi: int) -> np.ndarray:
        return (user_vectors[lo:hi] * h) @ vectors["rec"].T

    results.append(("rec", "ENMF scores (user . h . item)", None,
                    ref.score_rec_hits(enmf_scores, targets, k, histories, exclude_history=True),
                    ref.score_rec_hits(enmf_scores, targets, k, histories, exclude_history=False)))
    results.append(("most_popular", "most popular in train", None,
                    ref.popularity_rec_hits(popularity, histories, targets, k, exclude_history=True),
                    ref.popularity_rec_hits(popularity, histories, targets, k, exclude_history=False)))
    return results


def _reference_query_vectors(cfg: dict, texts: list[str]) -> dict[str, np.ndarray]:
    """Test-query vectors in every space that can be searched (all but rec)."""
    out = {}
    for space in TEXT_SPACES:  # one encoder in memory at a time
        model = load_query_encoder(cfg, space)
        out[space] = encode_texts(model, texts, cfg["embeddings"]["encode_batch_size"])
        del model
        gc.collect()
    for space in ("fused_concat", "fused_svd"):
        out[space] = _query_vectors_for(space, out["search"], cfg)
    return out


def _reference_row(space, method, search, rec, rec_all) -> dict:
    def mean(hits):
        return float(hits.mean()) if hits is not None and len(hits) else np.nan

    return {"space": space, "name": DISPLAY_NAMES.get(space, "Most popular"), "method": method,
            "search_recall": mean(search), "rec_recall": mean(rec), "rec_recall_with_history": mean(rec_all),
            "n_queries": 0 if search is None else len(search), "n_users": len(rec)}


def _reference_hits(space, method, search, rec, rec_all) -> pd.DataFrame:
    parts = [("search", pd.NA, search), ("rec", True, rec), ("rec", False, rec_all)]
    return pd.concat([
        pd.DataFrame({"task": task, "space": space, "method": method,
                      "exclude_history": pd.array([exclude] * len(hits), dtype="boolean"),
                      "row": np.arange(len(hits)), "hit": hits})
        for task, exclude, hits in parts if hits is not None
    ], ignore_index=True)


def reference_hits(cfg: dict) -> pd.DataFrame:
    """Per-query / per-user hits of the reference (for paired tests); see ``reference_recalls``.

    ``row`` indexes the reference queries (``reference_queries(dataset, per_item)`` order) for
    task ``search`` and the user_id for task ``rec``.
    """
    folder = artifacts.require(reference_dir(cfg), "The dense-retrieval reference", PRODUCED_BY, cfg)
    return pd.read_parquet(folder / "hits.parquet")
