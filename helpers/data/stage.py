"""Stage 01 entry points: build (cached) and load the S&R dataset for a profile.

Every stage module follows the same three-function pattern:

* ``<stage>_dir(cfg, ...)``: the artifact folder, a pure function of the profile (it hashes the
  stage's parameters together with the folders of the upstream artifacts it reads);
* ``build_<stage>(cfg, ..., force=False)``: compute it unless a complete artifact exists;
  writes atomically (``helpers.artifacts.atomic_dir``);
* ``load_<stage>(cfg, ...)``: read it, or raise ``MissingArtifactError`` naming the notebook
  that produces it.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from .. import artifacts
from ..config import check_codebook_size
from .dataset import Dataset

log = logging.getLogger(__name__)
PRODUCED_BY = "notebooks/01_data.ipynb"


def data_params(cfg: dict) -> dict:
    """The ``data`` parameters that define the dataset (the LLM settings only for the llm generator)."""
    params = {**cfg["data"], "queries": dict(cfg["data"]["queries"])}
    unused = ["llm_concurrency"]  # speed only
    if params["queries"]["generator"] == "template":
        unused += ["llm_model", "llm_max_retries"]
    for key in unused:
        params["queries"].pop(key, None)
    return params


def dataset_dir(cfg: dict) -> Path:
    return artifacts.stage_dir(cfg, "data", {"data": data_params(cfg), "schema": 1})


def load_dataset(cfg: dict) -> Dataset:
    folder = artifacts.require(dataset_dir(cfg), "The S&R dataset", PRODUCED_BY, cfg)
    return Dataset.load(folder)


def build_dataset(cfg: dict, force: bool = False) -> Dataset:
    """Load the profile's source, split it chronologically, generate queries; cached."""
    folder = dataset_dir(cfg)
    if artifacts.is_complete(folder) and not force:
        check_codebook_size(cfg, int(artifacts.read_manifest(folder)["n_items"]))
        return Dataset.load(folder)
    from .audience import audience_facts, fact_sentences
    from .movielens import item_text, load_source
    from .queries import generate_queries
    from .splits import chronological_split

    params = cfg["data"]
    catalogue, interactions, users = load_source(params)
    items, interactions, user_index = chronological_split(catalogue, interactions, params)
    users = users.set_index("source_user").reindex(user_index).reset_index() if len(users) else users
    # item text and queries use train interactions only: nothing from valid/test leaks into them
    facts = audience_facts(len(items), interactions[interactions["split"] == "train"], users)
    items["text"] = [
        item_text(row.title, None if pd.isna(row.year) else int(row.year), list(row.genres),
                  fact_sentences(f) + [f"about {t}" for t in row.themes])
        for row, f in zip(items.itertuples(index=False), facts)
    ]
    queries = generate_queries(items, facts, params["queries"], cache_dir=artifacts.data_root() / "cache" / "llm")
    query_summary = queries.attrs.pop("query_summary", None)
    items["genres"] = ["|".join(g) for g in items["genres"]]
    ds = Dataset(items=items, interactions=interactions, queries=queries)
    ds.check()
    check_codebook_size(cfg, ds.n_items)  # refuse it here, seconds in, not after the embeddings
    manifest = {
        "stage": "data", "profile": cfg["name"], "params": params,
        "n_items": ds.n_items, "n_users": ds.n_users, "n_interactions": len(ds.interactions),
        "n_queries": len(ds.queries), **({"llm_queries": query_summary} if query_summary else {}),
    }
    with artifacts.atomic_dir(folder, manifest) as tmp:
        ds.save(tmp)
    log.info("dataset written to %s", folder)
    return Dataset.load(folder)
