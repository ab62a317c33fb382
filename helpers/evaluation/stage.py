"""Stage 05 entry points: per-query hits of every construction x seed, cached; and their summary.

``evaluate(cfg)`` reads the generative stage's test predictions (notebook 04) for every
construction and seed, computes per-query hits at ``evaluation.k``, adds the baselines, and
writes one artifact; ``load_results(cfg)`` reads it back.

Files in the stage folder (``data/runs/<profile>/evaluation/<hash>/``):

``hits.parquet`` (one row per method x seed x test query/user)
    method (str: a construction key such as ``multitask``, or a baseline key such as
    ``most_popular``), kind (``generative`` | ``baseline``), seed (int64: the generative seed;
    ``evaluation.baseline_seed`` for baselines), task (``search`` | ``rec``), query_key (int64:
    query_id for search, user_id for rec), target (int64 item_id), segment (``head`` | ``torso``:
    the target's train popularity, top ``data.head_fraction`` of items = head), rank (int64,
    1-based position of the target in the ranking, 0 = not retrieved; 0 for baselines),
    n_ranked (int64, how many items the ranking holds: a decoder returning fewer than ``k``
    caps its recall; ``k`` for baselines), hit (float64, 1.0 when the target is within the top ``k``).
``summary.csv`` (one row per method x seed x metric)
    method, kind, seed, metric (``search_all`` | ``rec_all`` | ``rec_head`` | ``rec_torso``),
    recall (Recall@k), n (queries or users behind it).
``manifest.json``
    k, constructions, seeds, the upstream prediction folders, timings.
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import artifacts
from ..errors import DataError, MissingArtifactError, ProfileError
from ..registry import resolve_constructions
from .baselines import baseline_hits
from .metrics import hits_from_ranks, popularity_segments, target_ranks
from .paper import METRICS

log = logging.getLogger(__name__)
PRODUCED_BY = "notebooks/05_evaluation.ipynb"
PREDICTIONS_PRODUCED_BY = "notebook 04 (the generative stage) for this profile first"
PREDICTION_COLUMNS = ("task", "query_key", "target", "ranked")
HITS_COLUMNS = ["method", "kind", "seed", "task", "query_key", "target", "segment", "rank", "n_ranked", "hit"]
SUMMARY_COLUMNS = ["method", "kind", "seed", "metric", "recall", "n"]
#: metric key -> (task, subset of targets)
METRIC_SUBSETS = {"search_all": ("search", "all"), "rec_all": ("rec", "all"),
                  "rec_head": ("rec", "head"), "rec_torso": ("rec", "torso")}


# ---- what to evaluate: validated before any work starts ------------------------------------
def resolve_seeds(cfg: dict, seeds=None) -> list[int]:
    """The generative seeds to evaluate (default ``generative.seeds``); refuses an empty list."""
    chosen = cfg["generative"]["seeds"] if seeds is None else seeds
    if isinstance(chosen, (int, np.integer)):
        chosen = [chosen]
    chosen = list(chosen)
    if not chosen:
        raise ProfileError("No seed to evaluate: pass at least one seed, e.g. seeds=[0] (paper: [0, 1, 2, 3, 4]).")
    if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in chosen):
        raise ProfileError(f"Seeds must be integers, got {chosen}.")
    return sorted({int(s) for s in chosen})


def _upstream(cfg: dict, constructions: list[str], seeds: list[int]) -> dict:
    """The upstream artifact folders the result depends on (they are part of the cache key).

    Folders are named relative to the data root, so moving the data root keeps the cache valid.
    """
    from ..data.stage import dataset_dir
    from ..generative.stage import predictions_dir

    def short(path) -> str:
        path = Path(path)
        return f"{path.parent.name}/{path.name}"

    return {"dataset": short(dataset_dir(cfg)),
            "predictions": {f"{c}/{s}": short(predictions_dir(cfg, c, s, "test"))
                            for c in constructions for s in seeds}}


def evaluation_dir(cfg: dict, constructions=None, seeds=None) -> Path:
    constructions = resolve_constructions(cfg, constructions)
    seeds = resolve_seeds(cfg, seeds)
    params = {k: cfg["evaluation"][k] for k in ("k", "baseline_seed") if k in cfg["evaluation"]}
    key = {"evaluation": params, "head_fraction": cfg["data"]["head_fraction"], "constructions": constructions,
           "seeds": seeds, "upstream": _upstream(cfg, constructions, seeds), "schema": 3}  # 3: lexical search baseline
    return artifacts.stage_dir(cfg, "evaluation", key)


# ---- the results object --------------------------------------------------------------------
@dataclass
class EvaluationResults:
    """Per-query hits and their summary; the input of every table, test and plot."""

    hits: pd.DataFrame
    summary: pd.DataFrame
    k: int
    constructions: list[str]
    seeds: list[int]
    folder: Path | None = None
    manifest: dict = field(default_factory=dict)

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(self.summary["method"]))

    def means(self, kind: str | None = None) -> pd.DataFrame:
        """Mean recall over seeds: index = method, columns = metric keys (NaN where not measured)."""
        return self._pivot("mean", kind)

    def stds(self, kind: str | None = None) -> pd.DataFrame:
        """Sample std of recall over seeds (NaN with a single seed)."""
        return self._pivot("std", kind)

    def _pivot(self, how: str, kind: str | None) -> pd.DataFrame:
        rows = self.summary if kind is None else self.summary[self.summary["kind"] == kind]
        table = rows.groupby(["method", "metric"], sort=False)["recall"].agg(how).unstack("metric")
        order = [m for m in self.methods if m in table.index]
        return table.reindex(index=order, columns=list(METRICS)).astype(float)


def summarise(hits: pd.DataFrame) -> pd.DataFrame:
    """Recall per method x seed x metric from the long hits frame (see the module docstring)."""
    rows = []
    for (method, kind, seed), group in hits.groupby(["method", "kind", "seed"], sort=False):
        tasks = set(group["task"])
        for metric, (task, subset) in METRIC_SUBSETS.items():
            if task not in tasks:
                continue  # e.g. most-popular has no search rows: leave the metric unmeasured
            part = group[group["task"] == task]
            if subset != "all":
                part = part[part["segment"] == subset]
            rows.append({"method": method, "kind": kind, "seed": int(seed), "metric": metric,
                         "recall": float(part["hit"].mean()) if len(part) else np.nan, "n": len(part)})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def prediction_hits(predictions: pd.DataFrame, k: int, head_mask: np.ndarray) -> pd.DataFrame:
    """Per-query rank, hit and popularity segment for one predictions frame of the generative stage.

    ``predictions`` has columns task (``search``/``rec``), query_key, target, ranked (item ids,
    best first). Raises DataError when a column is missing or a task is unknown.
    """
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise DataError(f"Predictions lack column(s) {missing}; expected {list(PREDICTION_COLUMNS)}.")
    tasks = set(predictions["task"].unique())
    if not tasks <= {"search", "rec"}:
        raise DataError(f"Predictions hold unknown task(s) {sorted(tasks - {'search', 'rec'})}.")
    if predictions.duplicated(["task", "query_key"]).any():
        raise DataError("Predictions hold a query or user twice; each (task, query_key) must be unique.")
    ranks = target_ranks(list(predictions["ranked"]), predictions["target"].to_numpy())
    return pd.DataFrame({
        "task": predictions["task"].astype(str).to_numpy(),
        "query_key": predictions["query_key"].to_numpy(np.int64),
        "target": predictions["target"].to_numpy(np.int64),
        "segment": popularity_segments(predictions["target"].to_numpy(), head_mask),
        "rank": ranks,
        "n_ranked": predictions["ranked"].map(len).to_numpy(np.int64),
        "hit": hits_from_ranks(ranks, k),
    })


def check_against_dataset(predictions: pd.DataFrame, dataset, where: str) -> None:
    """Refuse predictions whose queries or targets are not the dataset's test split.

    A wrong split (e.g. validation targets) or shifted ids would otherwise produce plausible but
    meaningless recalls. Partial coverage is allowed (a profile may decode a sample of the test
    queries) but logged, because recall is then over that sample only.
    """
    truth = {
        "search": dataset.query_split("test").set_index("query_id")["item_id"],
        "rec": pd.Series(dataset.targets("test"), index=np.arange(dataset.n_users)),
    }
    for task, expected in truth.items():
        rows = predictions[predictions["task"] == task]
        known = rows["query_key"].isin(expected.index)
        if not known.all():
            raise DataError(f"{where}: {int((~known).sum())} {task} predictions have a query_key that is not a "
                            f"test {'query_id' if task == 'search' else 'user_id'} of this profile's dataset.")
        wrong = rows["target"].to_numpy() != expected.loc[rows["query_key"]].to_numpy()
        if wrong.any():
            raise DataError(f"{where}: {int(wrong.sum())} {task} predictions carry a target that is not the "
                            "dataset's test item for that query/user; were they made on another split?")
        if len(rows) < len(expected):
            log.warning("%s: %d of %d test %s queries predicted; recall covers those only",
                        where, len(rows), len(expected), task)


def _load_predictions(cfg: dict, construction: str, seed: int) -> pd.DataFrame:
    from ..generative.stage import load_predictions

    try:
        return load_predictions(cfg, construction, seed, split="test")
    except MissingArtifactError as err:
        raise MissingArtifactError(
            f"Test predictions of construction '{construction}', seed {seed} are missing: run "
            f"{PREDICTIONS_PRODUCED_BY}, or helpers.generative.stage.predict(cfg, {construction!r}, {seed}). {err}"
        ) from err


def evaluate(cfg: dict, constructions=None, seeds=None, force: bool = False) -> EvaluationResults:
    """Hits and recall of every construction x seed plus the baselines; cached on disk.

    Args:
        cfg: a profile (``helpers.config.load_profile``).
        constructions: keys of ``semantic_ids.constructions``; default ``evaluation.constructions``
            or, when that is null, all of them. Unknown names are refused before any work.
        seeds: generative seeds; default ``generative.seeds``. An empty list is refused.
        force: recompute even if a complete artifact exists.
    """
    constructions = resolve_constructions(cfg, constructions)
    seeds = resolve_seeds(cfg, seeds)
    folder = evaluation_dir(cfg, constructions, seeds)
    if artifacts.is_complete(folder) and not force:
        return _read(folder)
    from ..data.stage import load_dataset

    k = int(cfg["evaluation"]["k"])
    dataset = load_dataset(cfg)
    head_mask = dataset.head_items(cfg["data"]["head_fraction"])
    frames = []
    for construction in constructions:
        for seed in seeds:
            predictions = _load_predictions(cfg, construction, seed)
            hits = prediction_hits(predictions, k, head_mask)
            check_against_dataset(predictions, dataset, f"construction '{construction}', seed {seed}")
            hits.insert(0, "seed", seed)
            hits.insert(0, "kind", "generative")
            hits.insert(0, "method", construction)
            frames.append(hits)
    baselines = baseline_hits(dataset, k, cfg["data"]["head_fraction"], seed=int(cfg["evaluation"].get("baseline_seed", 0)))
    baselines.insert(1, "kind", "baseline")
    hits = pd.concat(frames + [baselines], ignore_index=True)[HITS_COLUMNS]
    summary = summarise(hits)
    manifest = {"stage": "evaluation", "profile": cfg["name"], "k": k, "constructions": constructions,
                "seeds": seeds, "upstream": _upstream(cfg, constructions, seeds),
                "n_rows": len(hits)}
    with artifacts.atomic_dir(folder, manifest) as tmp:
        hits.to_parquet(tmp / "hits.parquet", index=False)
        summary.to_csv(tmp / "summary.csv", index=False)
    log.info("evaluation written to %s", folder)
    return _read(folder)


def load_results(cfg: dict, constructions=None, seeds=None) -> EvaluationResults:
    """The saved evaluation of this profile, or MissingArtifactError naming notebook 05."""
    folder = artifacts.require(evaluation_dir(cfg, constructions, seeds), "The evaluation results", PRODUCED_BY, cfg)
    return _read(folder)


def _read(folder: Path) -> EvaluationResults:
    manifest = artifacts.read_manifest(folder)
    return EvaluationResults(
        hits=pd.read_parquet(folder / "hits.parquet"),
        summary=pd.read_csv(folder / "summary.csv"),
        k=int(manifest["k"]), constructions=list(manifest["constructions"]), seeds=list(manifest["seeds"]),
        folder=Path(folder), manifest=manifest,
    )


def results_from_hits(hits: pd.DataFrame, k: int) -> EvaluationResults:
    """An in-memory results object from a long hits frame (tests and ad-hoc analyses)."""
    missing = [c for c in HITS_COLUMNS if c not in hits.columns]
    if missing:
        raise DataError(f"hits lack column(s) {missing}; expected {HITS_COLUMNS}.")
    generative = hits[hits["kind"] == "generative"]
    return EvaluationResults(hits=hits[HITS_COLUMNS].reset_index(drop=True), summary=summarise(hits), k=k,
                             constructions=list(dict.fromkeys(generative["method"])),
                             seeds=sorted(int(s) for s in generative["seed"].unique()))


def ranking_lengths(results: "EvaluationResults", kind: str = "generative") -> pd.DataFrame:
    """Mean ranking length per method and task, and the share of rankings shorter than ``k``.

    Recall@K is capped by what the decoder returns: a beam search that yields 10 distinct items
    cannot reach the recall of 30. Columns: method, task, mean_length, share_short.
    """
    rows = results.hits[results.hits["kind"] == kind]
    grouped = rows.groupby(["method", "task"], sort=False)["n_ranked"]
    table = pd.DataFrame({"mean_length": grouped.mean(),
                          "share_short": grouped.apply(lambda n: float((n < results.k).mean()))})
    return table.reset_index()


# ---- optional comparisons read from other stages ---------------------------------------------
def compare_decoding(cfg: dict, construction: str = "multitask", seed: int | None = None,
                     methods=("exact", None), build: bool = False) -> pd.DataFrame:
    """Recall of one construction's predictions under several decoders.

    ``None`` in ``methods`` means the profile's own ``decoding.method``. Without ``build``, only
    predictions already on disk are read and the others are reported with ``available=False``
    (exact decoding can be expensive on a large catalogue); with ``build`` the missing ones are
    decoded through ``helpers.generative.stage.predict`` (cached). Columns: decoding, task,
    recall, mean_length, n, available.
    """
    from ..data.stage import load_dataset
    from ..generative.stage import load_predictions, predict

    construction = resolve_constructions(cfg, [construction])[0]
    seed = resolve_seeds(cfg, seed)[0]
    k = int(cfg["evaluation"]["k"])
    head_mask = load_dataset(cfg).head_items(cfg["data"]["head_fraction"])
    rows = []
    for method in dict.fromkeys(m or cfg["decoding"]["method"] for m in methods):
        variant = copy.deepcopy(cfg)
        variant["decoding"]["method"] = method
        try:
            read = predict if build else load_predictions
            hits = prediction_hits(read(variant, construction, seed, split="test"), k, head_mask)
        except MissingArtifactError:
            rows += [{"decoding": method, "task": t, "recall": np.nan, "mean_length": np.nan, "n": 0,
                      "available": False} for t in ("search", "rec")]
            continue
        for task, part in hits.groupby("task"):
            rows.append({"decoding": method, "task": task, "recall": float(part["hit"].mean()),
                         "mean_length": float(part["n_ranked"].mean()), "n": len(part), "available": True})
    return pd.DataFrame(rows, columns=["decoding", "task", "recall", "mean_length", "n", "available"])


def dense_references(cfg: dict) -> pd.DataFrame | None:
    """The embeddings stage's dense-retrieval Recall@K per space, or None when not built yet.

    Only reads: ``reference_recalls`` would build every embedding space when its artifact is
    missing, which is notebook 02's job, not the evaluation's.
    """
    try:
        from ..embeddings.stage import reference_dir, reference_recalls

        if not artifacts.is_complete(reference_dir(cfg)):
            log.warning("dense references unavailable: run notebooks/02_embeddings.ipynb for this profile")
            return None
        return reference_recalls(cfg)
    except (MissingArtifactError, ImportError) as err:
        log.warning("dense references unavailable: %s", err)
        return None
