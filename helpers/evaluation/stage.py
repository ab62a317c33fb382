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
``tables/`` and ``figures/`` (added by notebooks 05 and 06 through :func:`write_outputs`)
    each written atomically as a whole, with its own ``manifest.json``: the paper's tables beside
    ours and the other CSVs of notebook 05; PNG and SVG of notebook 06's figures.

Every method is scored on the same queries: the generative models on the test queries they
decoded (``decoding.test_queries_per_item``), and the search baselines on those same queries.

Upstream inputs: ``evaluate``, ``evaluation_dir``, ``load_results`` and ``compare_decoding`` take
an optional :class:`EvaluationInputs` (the dataset, readers of the generative stage's
predictions, and the upstream names for the cache key); without it they read the profile's
artifacts. Tests pass synthetic inputs this way.
"""
from __future__ import annotations

import copy
import logging
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from .. import artifacts
from ..errors import DataError, MissingArtifactError, ProfileError
from ..metrics import hits_from_ranks, popularity_segments, target_ranks
from ..registry import resolve_constructions
from .baselines import baseline_hits
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
#: What notebooks 05 and 06 add to an evaluation artifact (:func:`write_outputs`).
OUTPUT_KINDS = ("tables", "figures")
#: A reader of the generative stage's test predictions: (cfg, construction, seed) -> predictions frame.
PredictionReader = Callable[[dict, str, int], pd.DataFrame]


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


def upstream_names(cfg: dict, constructions: list[str], seeds: list[int]) -> dict:
    """The profile's upstream artifact folders the result depends on (part of the cache key).

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


def _read_test_predictions(cfg: dict, construction: str, seed: int) -> pd.DataFrame:
    from ..generative.stage import load_predictions

    return load_predictions(cfg, construction, seed, split="test")


def _decode_test_predictions(cfg: dict, construction: str, seed: int) -> pd.DataFrame:
    from ..generative.stage import predict

    return predict(cfg, construction, seed, split="test")


@dataclass(frozen=True)
class EvaluationInputs:
    """What the evaluation reads, and the names of it that enter its cache key.

    ``load_predictions(cfg, construction, seed)`` returns saved test predictions (or raises
    ``MissingArtifactError``); ``predict`` has the same signature and decodes what is missing
    (``compare_decoding(build=True)``); ``upstream`` is any JSON naming them and the dataset.
    ``EvaluationInputs.load(cfg, constructions, seeds)`` is the profile's: notebook 01's dataset and
    notebook 04's predictions.
    """

    dataset: object  # helpers.data.dataset.Dataset
    load_predictions: PredictionReader
    upstream: dict
    predict: PredictionReader | None = None

    @classmethod
    def load(cls, cfg: dict, constructions: list[str], seeds: list[int]) -> "EvaluationInputs":
        from ..data.stage import load_dataset

        return cls(load_dataset(cfg), _read_test_predictions, upstream_names(cfg, constructions, seeds),
                   _decode_test_predictions)


def _upstream(cfg: dict, constructions: list[str], seeds: list[int], inputs: EvaluationInputs | None) -> dict:
    return inputs.upstream if inputs is not None else upstream_names(cfg, constructions, seeds)


def evaluation_dir(cfg: dict, constructions=None, seeds=None, inputs: EvaluationInputs | None = None) -> Path:
    constructions = resolve_constructions(cfg, constructions)
    seeds = resolve_seeds(cfg, seeds)
    params = {k: cfg["evaluation"][k] for k in ("k", "baseline_seed") if k in cfg["evaluation"]}
    key = {"evaluation": params, "head_fraction": cfg["data"]["head_fraction"], "constructions": constructions,
           "seeds": seeds, "test_queries_per_item": cfg["decoding"].get("test_queries_per_item"),
           "upstream": _upstream(cfg, constructions, seeds, inputs),
           "schema": 4}  # 3: lexical search baseline; 4: baselines on the decoded test queries only
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


def _predictions(inputs: EvaluationInputs, cfg: dict, construction: str, seed: int) -> pd.DataFrame:
    try:
        return inputs.load_predictions(cfg, construction, seed)
    except MissingArtifactError as err:
        raise MissingArtifactError(
            f"Test predictions of construction '{construction}', seed {seed} are missing: run "
            f"{PREDICTIONS_PRODUCED_BY}, or helpers.generative.stage.predict(cfg, {construction!r}, {seed}). {err}"
        ) from err


def evaluate(cfg: dict, constructions=None, seeds=None, force: bool = False,
             inputs: EvaluationInputs | None = None) -> EvaluationResults:
    """Hits and recall of every construction x seed plus the baselines; cached on disk.

    Args:
        cfg: a profile (``helpers.config.load_profile``).
        constructions: keys of ``semantic_ids.constructions``; default ``evaluation.constructions``
            or, when that is null, all of them. Unknown names are refused before any work.
        seeds: generative seeds; default ``generative.seeds``. An empty list is refused.
        force: recompute even if a complete artifact exists.
        inputs: the dataset and predictions to evaluate (default: the profile's artifacts, read
            only when the result is not cached).
    """
    constructions = resolve_constructions(cfg, constructions)
    seeds = resolve_seeds(cfg, seeds)
    folder = evaluation_dir(cfg, constructions, seeds, inputs)
    if artifacts.is_complete(folder) and not force:
        return _read(folder)
    inputs = inputs if inputs is not None else EvaluationInputs.load(cfg, constructions, seeds)
    k = int(cfg["evaluation"]["k"])
    dataset = inputs.dataset
    head_mask = dataset.head_items(cfg["data"]["head_fraction"])
    frames = []
    for construction in constructions:
        for seed in seeds:
            predictions = _predictions(inputs, cfg, construction, seed)
            hits = prediction_hits(predictions, k, head_mask)
            check_against_dataset(predictions, dataset, f"construction '{construction}', seed {seed}")
            hits.insert(0, "seed", seed)
            hits.insert(0, "kind", "generative")
            hits.insert(0, "method", construction)
            frames.append(hits)
    baselines = baseline_hits(dataset, k, cfg["data"]["head_fraction"], seed=int(cfg["evaluation"].get("baseline_seed", 0)),
                              test_queries_per_item=cfg["decoding"].get("test_queries_per_item"))
    baselines.insert(1, "kind", "baseline")
    hits = pd.concat(frames + [baselines], ignore_index=True)[HITS_COLUMNS]
    summary = summarise(hits)
    manifest = {"stage": "evaluation", "profile": cfg["name"], "k": k, "constructions": constructions,
                "seeds": seeds, "upstream": inputs.upstream,
                "test_queries_per_item": cfg["decoding"].get("test_queries_per_item"), "n_rows": len(hits)}
    with artifacts.atomic_dir(folder, manifest) as tmp:
        hits.to_parquet(tmp / "hits.parquet", index=False)
        summary.to_csv(tmp / "summary.csv", index=False)
    log.info("evaluation written to %s", folder)
    return _read(folder)


def load_results(cfg: dict, constructions=None, seeds=None, inputs: EvaluationInputs | None = None) -> EvaluationResults:
    """The saved evaluation of this profile, or MissingArtifactError naming notebook 05."""
    folder = artifacts.require(evaluation_dir(cfg, constructions, seeds, inputs), "The evaluation results",
                               PRODUCED_BY, cfg)
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


# ---- notebooks 05 and 06 add their tables and figures to the artifact, atomically ------------------
def outputs_dir(results: EvaluationResults, kind: str) -> Path:
    """``<evaluation artifact>/tables`` or ``/figures``: where notebooks 05 and 06 save their outputs."""
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"Unknown output kind {kind!r}; choose one of {', '.join(OUTPUT_KINDS)}.")
    if results.folder is None:
        raise DataError("These results were built in memory (results_from_hits): they have no artifact folder to "
                        "save outputs into. Use evaluate(cfg) or load_results(cfg).")
    return Path(results.folder) / kind


@contextmanager
def write_outputs(results: EvaluationResults, kind: str, results_dir: str | Path | None = None) -> Iterator[Path]:
    """Yield an empty folder to write ``kind`` (``tables`` | ``figures``) into; publish it whole.

    On success the folder becomes :func:`outputs_dir` at once (``helpers.artifacts.atomic_dir``,
    with a ``manifest.json`` listing its files), replacing an earlier one, and its files are then
    copied into ``results_dir`` when given. On any error nothing is published: an interrupted
    notebook never leaves half its tables or figures in the artifact.
    """
    final = outputs_dir(results, kind)
    manifest = {"stage": f"evaluation/{kind}", "evaluation": Path(results.folder).name}
    with artifacts.atomic_dir(final, manifest) as tmp:
        yield tmp
        manifest["files"] = sorted(p.name for p in tmp.iterdir())
    if results_dir:
        Path(results_dir).mkdir(parents=True, exist_ok=True)
        for name in manifest["files"]:
            shutil.copy(final / name, Path(results_dir) / name)


# ---- optional comparisons read from other stages ---------------------------------------------
def compare_decoding(cfg: dict, construction: str = "multitask", seed: int | None = None,
                     methods=("exact", None), build: bool = False,
                     inputs: EvaluationInputs | None = None) -> pd.DataFrame:
    """Recall of one construction's predictions under several decoders.

    ``None`` in ``methods`` means the profile's own ``decoding.method``. Without ``build``, only
    predictions already on disk are read and the others are reported with ``available=False``
    (exact decoding can be expensive on a large catalogue); with ``build`` the missing ones are
    decoded through ``helpers.generative.stage.predict`` (cached), or ``inputs.predict``.
    Columns: decoding, task, recall, mean_length, n, available.
    """
    construction = resolve_constructions(cfg, [construction])[0]
    seed = resolve_seeds(cfg, seed)[0]
    inputs = inputs if inputs is not None else EvaluationInputs.load(cfg, [construction], [seed])
    if build and inputs.predict is None:
        raise ValueError("compare_decoding(build=True) needs inputs.predict to decode what is missing.")
    k = int(cfg["evaluation"]["k"])
    head_mask = inputs.dataset.head_items(cfg["data"]["head_fraction"])
    rows = []
    for method in dict.fromkeys(m or cfg["decoding"]["method"] for m in methods):
        variant = copy.deepcopy(cfg)
        variant["decoding"]["method"] = method
        try:
            read = inputs.predict if build else inputs.load_predictions
            hits = prediction_hits(read(variant, construction, seed), k, head_mask)
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
