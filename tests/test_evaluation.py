"""Unit tests of helpers.evaluation: metrics, baselines, significance, Pareto, tables, plots, stage.

Everything runs on synthetic predictions built here, in seconds, passed to the stage as
``EvaluationInputs`` (nothing is patched); the notebooks are exercised by tests/test_notebooks.py
(smoke tier).
"""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import artifacts
from helpers.config import load_profile
from helpers.errors import DataError, MissingArtifactError, ProfileError
from helpers.evaluation import baselines, metrics, paper, pareto, significance, stage, tables

K = 5


# ---- synthetic predictions -------------------------------------------------------------------
def make_predictions(dataset, quality: float, seed: int, k: int = K) -> pd.DataFrame:
    """Predictions in the generative stage's format; ``quality`` = chance the target is ranked first."""
    rng = np.random.default_rng(seed)
    rows = []
    test_queries = dataset.query_split("test")
    keyed = [("search", q, t) for q, t in zip(test_queries["query_id"], test_queries["item_id"])]
    keyed += [("rec", u, t) for u, t in enumerate(dataset.targets("test"))]
    for task, key, target in keyed:
        others = rng.permutation(np.setdiff1d(np.arange(dataset.n_items), [target]))[:k]
        ranked = [int(target)] + [int(i) for i in others[: k - 1]] if rng.random() < quality else others.tolist()
        rows.append({"task": task, "query_key": int(key), "target": int(target), "ranked": ranked})
    return pd.DataFrame(rows)


QUALITY = {"content": 0.1, "search": 0.9, "rec": 0.3, "separate": 0.4, "prefix_share": 0.2,
           "fused_concat": 0.5, "fused_svd": 0.5, "multitask": 0.7, "multitask_dict": 0.3,
           "multitask_rlfq": 0.2, "multitask_rqvae": 0.1}


def synthetic_results(dataset, seeds=(0, 1), methods=tuple(QUALITY)) -> stage.EvaluationResults:
    head = dataset.head_items(0.1)
    frames = []
    for method in methods:
        for seed in seeds:
            hits = stage.prediction_hits(make_predictions(dataset, QUALITY[method], seed * 100 + len(method)), K, head)
            frames.append(hits.assign(method=method, kind="generative", seed=seed))
    base = baselines.baseline_hits(dataset, K, 0.1).assign(kind="baseline")
    return stage.results_from_hits(pd.concat(frames + [base], ignore_index=True), K)


@pytest.fixture
def results(synthetic_dataset):
    return synthetic_results(synthetic_dataset)


class FakeUpstream:
    """Synthetic test predictions for the stage, counting every read and every decode."""

    def __init__(self, dataset, missing=(), undecoded=()):
        self.dataset, self.missing, self.undecoded = dataset, set(missing), set(undecoded)
        self.reads, self.decoded = [], []

    def load_predictions(self, cfg, construction, seed):
        self.reads.append((construction, seed))
        if construction in self.missing or cfg["decoding"]["method"] in self.undecoded:
            raise MissingArtifactError(f"no {cfg['decoding']['method']} predictions")
        predictions = make_predictions(self.dataset, QUALITY.get(construction, 0.5), seed)
        per_item = cfg["decoding"].get("test_queries_per_item")
        if per_item is not None:  # decode only the first paraphrases, as the generative stage does
            pairs = self.dataset.queries.set_index("query_id")["pair"]
            is_search = predictions["task"] == "search"
            keep = ~is_search | (pairs.reindex(predictions["query_key"]).to_numpy() < per_item)
            predictions = predictions[keep].reset_index(drop=True)
        return predictions

    def predict(self, cfg, construction, seed):
        self.decoded.append(cfg["decoding"]["method"])
        self.undecoded.discard(cfg["decoding"]["method"])
        return self.load_predictions(cfg, construction, seed)

    def inputs(self, name: str = "synthetic") -> stage.EvaluationInputs:
        return stage.EvaluationInputs(dataset=self.dataset, load_predictions=self.load_predictions,
                                      upstream={"dataset": name, "predictions": name}, predict=self.predict)


@pytest.fixture
def fake(synthetic_dataset):
    return FakeUpstream(synthetic_dataset, missing={"missing"})


# ---- metrics ---------------------------------------------------------------------------------
def test_ranks_agree_with_hits_at_k_for_every_k():
    ranked = [[3, 1, 2], [5, 6], [], [9, 8, 7, 6]]
    targets = [2, 1, 4, 9]
    ranks = metrics.target_ranks(ranked, targets)
    assert ranks.tolist() == [3, 0, 0, 1]
    for k in (1, 2, 3, 4):
        np.testing.assert_array_equal(metrics.hits_from_ranks(ranks, k), metrics.hits_at_k(ranked, targets, k))
    assert metrics.recall_at_k(ranked, targets, 3) == pytest.approx(0.5)


def test_recall_grows_with_k():
    ranked = [list(np.random.default_rng(i).permutation(20)) for i in range(50)]
    targets = np.arange(50) % 20
    recalls = [metrics.recall_at_k(ranked, targets, k) for k in (1, 5, 10, 20)]
    assert recalls == sorted(recalls) and recalls[-1] == 1.0


def test_head_and_torso_split_the_targets(synthetic_dataset):
    head = synthetic_dataset.head_items(0.1)
    assert head.sum() == round(0.1 * synthetic_dataset.n_items)
    pop = synthetic_dataset.popularity()
    assert pop[head].min() >= pop[~head].max()  # head = the most popular items
    segments = metrics.popularity_segments(np.arange(synthetic_dataset.n_items), head)
    assert set(segments) == {"head", "torso"} and (segments == "head").sum() == head.sum()
    with pytest.raises(ValueError, match="catalogue"):
        metrics.popularity_segments([synthetic_dataset.n_items], head)


def test_prediction_hits_rejects_malformed_predictions():
    head = np.zeros(10, dtype=bool)
    good = pd.DataFrame({"task": ["search"], "query_key": [0], "target": [1], "ranked": [[1, 2]]})
    assert stage.prediction_hits(good, 1, head)["hit"].tolist() == [1.0]
    with pytest.raises(DataError, match="ranked"):
        stage.prediction_hits(good.drop(columns="ranked"), 1, head)
    with pytest.raises(DataError, match="unknown task"):
        stage.prediction_hits(good.assign(task="ads"), 1, head)
    with pytest.raises(DataError, match="twice"):
        stage.prediction_hits(pd.concat([good, good]), 1, head)


# ---- baselines -------------------------------------------------------------------------------
def test_random_baseline_matches_its_expectation():
    n_queries, n_items, k = 20000, 100, 10
    expected = baselines.random_expected_recall(n_items, k)
    tolerance = baselines.random_recall_tolerance(n_items, k, n_queries)
    assert tolerance == pytest.approx(4 * np.sqrt(0.1 * 0.9 / n_queries))  # 4 binomial standard deviations
    for seed in range(5):
        hits = baselines.random_hits(np.zeros(n_queries, dtype=int), n_items=n_items, k=k, seed=seed)
        assert abs(hits.mean() - expected) <= tolerance
    assert baselines.random_expected_recall(5, 30) == 1.0
    # a random ranking that were really most-popular (recall 2 K / n) would be caught
    assert 2 * expected - expected > tolerance


def test_random_baseline_recall_is_k_over_catalogue_within_binomial_tolerance(synthetic_dataset):
    hits = baselines.baseline_hits(synthetic_dataset, K, 0.1)
    random = hits[hits["method"] == "random"]
    expected = K / synthetic_dataset.n_items
    for task, rows in random.groupby("task"):
        tolerance = baselines.random_recall_tolerance(synthetic_dataset.n_items, K, len(rows))
        assert abs(rows["hit"].mean() - expected) <= tolerance, task


def test_most_popular_skips_the_history_only_when_asked():
    popularity = np.array([50, 40, 30, 20, 10])  # ranking 0, 1, 2, 3, 4
    targets = np.array([2, 2, 0])
    histories = [np.array([0]), np.array([]), np.array([0])]
    # k=2: with the seen item 0 skipped, user 0's list is [1, 2]; user 2 re-consumes item 0 (never hit)
    assert baselines.most_popular_hits(targets, popularity, histories, 2).tolist() == [1.0, 0.0, 0.0]
    assert baselines.most_popular_hits(targets, popularity, None, 2).tolist() == [0.0, 0.0, 1.0]


def test_baseline_hits_cover_every_user_and_query(synthetic_dataset):
    hits = baselines.baseline_hits(synthetic_dataset, K, 0.1)
    rec = hits[hits["task"] == "rec"]
    assert set(rec["method"]) == set(baselines.BASELINES) - {"lexical"}
    assert (rec.groupby("method").size() == synthetic_dataset.n_users).all()
    search = hits[hits["task"] == "search"]
    assert set(search["method"]) == {"random", "lexical"}
    assert (search.groupby("method").size() == len(synthetic_dataset.query_split("test"))).all()
    assert hits["hit"].isin([0.0, 1.0]).all()


def test_search_baselines_score_only_the_decoded_queries(synthetic_dataset):
    ds = synthetic_dataset
    test = ds.query_split("test")
    assert test["pair"].nunique() == 2  # so that one per item is a strict subset
    first = test.loc[test["pair"] < 1, "query_id"].tolist()
    assert baselines.decoded_test_queries(ds, 1)["query_id"].tolist() == first
    assert baselines.decoded_test_queries(ds, None)["query_id"].tolist() == test["query_id"].tolist()
    hits = baselines.baseline_hits(ds, K, 0.1, test_queries_per_item=1)
    search = hits[hits["task"] == "search"]
    for method, rows in search.groupby("method"):
        assert rows["query_key"].tolist() == first, method
    rec = hits[hits["task"] == "rec"]
    assert (rec.groupby("method").size() == ds.n_users).all()  # users are never subsampled
    everything = baselines.baseline_hits(ds, K, 0.1)
    pd.testing.assert_frame_equal(everything[everything["task"] == "rec"].reset_index(drop=True),
                                  rec.reset_index(drop=True))  # rec baselines do not depend on the filter


def test_lexical_baseline_finds_reworded_queries_and_ignores_unknown_words():
    train = ["scary horror film", "funny comedy movie", "space adventure", "funny comedy movie"]
    items = [0, 1, 2, 3]
    test = ["a horror flick", "comedy picture", "frightening flick"]
    hits = baselines.lexical_search_hits(train, items, test, [0, 1, 0], n_items=50, k=1)
    # "horror" is shared with item 0's query only; items 1 and 3 share the comedy query, so k=2
    # holds both; "frightening flick" shares no word with any train query, so it ties the four
    # items that have train queries (the 46 without any score lower)
    assert hits[0] == 1.0
    at_two = baselines.lexical_search_hits(train, items, test, [0, 1, 0], n_items=50, k=2)
    assert at_two[1] == 1.0
    draws = [baselines.lexical_search_hits(train, items, test[2:], [0], n_items=50, k=1, seed=s)[0]
             for s in range(200)]
    assert 0.1 < np.mean(draws) < 0.4  # a random pick among the 4 tied items: about 1 in 4


def test_lexical_baseline_beats_random_on_template_paraphrases(synthetic_dataset):
    ds = synthetic_dataset
    train, test = ds.query_split("train"), ds.query_split("test")
    hits = baselines.lexical_search_hits(train["text"].tolist(), train["item_id"], test["text"].tolist(),
                                         test["item_id"], ds.n_items, K, chunk=7)
    assert hits.mean() > 2 * baselines.random_expected_recall(ds.n_items, K)
    with pytest.raises(ValueError, match="train queries"):
        baselines.lexical_search_hits([], [], ["x"], [0], ds.n_items, K)


# ---- significance ----------------------------------------------------------------------------
def test_clearly_different_vectors_are_significant():
    rng = np.random.default_rng(0)
    good, bad = (rng.random(300) < 0.6).astype(float), (rng.random(300) < 0.1).astype(float)
    t, p = significance.paired_ttest(good, bad)
    assert t > 0 and p < 0.001


def test_identical_and_degenerate_vectors_do_not_crash():
    same = np.array([1.0, 0.0, 1.0, 1.0])
    assert significance.paired_ttest(same, same) == (0.0, 1.0)
    assert significance.paired_ttest(np.zeros(4), np.zeros(4)) == (0.0, 1.0)
    t, p = significance.paired_ttest(np.ones(4), np.zeros(4))  # constant difference: no variance
    assert t == np.inf and p == 0.0
    assert significance.paired_ttest([1.0], [0.0]) == (0.0, 1.0)
    tests = significance.pairwise_tests({"a": same, "b": same.copy(), "c": same.copy()})
    assert not tests[["t", "p", "p_adjusted"]].isna().any().any()
    assert not tests["significant"].any() and (tests["better"] == "").all()
    with pytest.raises(ValueError, match="aligned"):
        significance.paired_ttest([1.0, 0.0], [1.0])


def test_bonferroni_makes_p_values_larger():
    rng = np.random.default_rng(1)
    hits = {name: (rng.random(200) < q).astype(float) for name, q in [("a", 0.3), ("b", 0.35), ("c", 0.5), ("d", 0.2)]}
    raw = significance.pairwise_tests(hits, correction="none")
    corrected = significance.pairwise_tests(hits, correction="bonferroni")
    assert (corrected["p_adjusted"] >= raw["p_adjusted"]).all()
    assert (corrected["p_adjusted"] > raw["p_adjusted"]).any()
    np.testing.assert_allclose(corrected["p_adjusted"], np.minimum(1.0, raw["p"] * len(raw)))
    assert corrected["significant"].sum() <= raw["significant"].sum()


def test_superscripts_name_the_rows_a_method_beats():
    rng = np.random.default_rng(2)
    hits = {"content": (rng.random(400) < 0.05).astype(float), "search": (rng.random(400) < 0.6).astype(float),
            "rec": (rng.random(400) < 0.05).astype(float)}
    marks = significance.superscripts(significance.pairwise_tests(hits), ["content", "search", "rec"])
    assert marks["search"] == "13"
    assert marks["content"] == "" and marks["rec"] == ""


# ---- Pareto ----------------------------------------------------------------------------------
def test_pareto_frontier_on_hand_made_points():
    points = np.array([[0.7, 0.2], [0.1, 0.6], [0.4, 0.5], [0.3, 0.3], [0.4, 0.5], [0.7, 0.1], [np.nan, 0.9]])
    assert pareto.pareto_mask(points).tolist() == [True, True, True, False, True, False, False]
    table = pd.DataFrame(points, columns=["search_all", "rec_all"], index=list("abcdefg"))
    front = pareto.pareto_frontier(table)
    assert list(front.index) == ["b", "c", "e", "a"]
    assert front["search_all"].is_monotonic_increasing and front["rec_all"].is_monotonic_decreasing
    xs, ys = pareto.staircase(front)
    assert len(xs) == len(ys) == 2 * len(front) + 1
    with pytest.raises(ValueError, match="shape"):
        pareto.pareto_mask(np.zeros((3, 3)))


def test_a_point_better_on_both_tasks_is_alone_on_the_frontier():
    points = np.array([[0.5, 0.5], [0.4, 0.1], [0.1, 0.4], [0.5, 0.2]])
    assert pareto.pareto_mask(points).tolist() == [True, False, False, False]


# ---- the paper's numbers and claims ------------------------------------------------------------
def test_paper_tables_have_the_published_rows():
    assert list(paper.paper_table("table1").index) == ["content", "search", "rec"]
    assert list(paper.paper_table("table2").index) == list(paper.TABLE2_ROWS)
    assert paper.paper_table("table1").loc["search", "search_all_sig"] == "13"
    # Table 1 and Table 2 report the same two task-specific runs
    t1, t2 = paper.paper_table("table1"), paper.paper_table("table2")
    for method in ("search", "rec"):
        assert t1.loc[method, "search_all"] == t2.loc[method, "search_all"]
        assert t1.loc[method, "rec_all"] == t2.loc[method, "rec_all"]
    assert paper.paper_table("table3").loc["multitask", "search_all"] == t2.loc["multitask", "search_all"]
    assert "10.1145/3705328.3759300" in paper.CITATION


def test_every_claim_holds_on_the_papers_own_numbers():
    checked = paper.check_claims(paper.paper_means())
    assert checked["holds"].tolist() == [True] * len(paper.CLAIMS), checked[["claim", "evidence"]]


def test_claims_say_when_they_cannot_be_checked():
    checked = paper.check_claims(paper.paper_means().drop(index=["multitask_rqvae", "fused_svd"]))
    status = dict(zip(checked["claim"], checked["holds"]))
    assert status["rq_kmeans_best"] is None and status["svd_vs_concat"] is None
    assert status["trade_off"] is True


def test_claims_notice_a_reversed_finding():
    means = paper.paper_means()
    means.loc["rec", "rec_all"] = 0.001  # rec-tuned IDs no longer best on rec
    status = dict(zip(*paper.check_claims(means)[["claim", "holds"]].T.values))
    assert status["rec_space_best_rec"] is False


# ---- results and tables ------------------------------------------------------------------------
def test_results_means_and_stds(results):
    means, stds = results.means("generative"), results.stds("generative")
    assert list(means.columns) == list(paper.METRICS)
    hits = results.hits
    for method in ("search", "rec"):  # the mean over seeds of each seed's recall, from the per-query hits
        rows = hits[(hits["method"] == method) & (hits["task"] == "rec") & (hits["segment"] == "torso")]
        per_seed = rows.groupby("seed")["hit"].mean()
        assert means.loc[method, "rec_torso"] == pytest.approx(per_seed.mean())
        assert stds.loc[method, "rec_torso"] == pytest.approx(per_seed.std(ddof=1))
    assert means.loc["search", "search_all"] > means.loc["content", "search_all"]  # quality 0.9 vs 0.1
    assert stds.notna().all().all()  # two seeds -> a std everywhere
    base = results.means("baseline")
    assert np.isnan(base.loc["most_popular", "search_all"]) and np.isfinite(base.loc["random", "search_all"])


def test_tables_have_the_papers_rows_and_columns(results):
    built = tables.build_tables(results)
    for name, table in built.items():
        assert table["method"].tolist() == list(paper.TABLE_ROWS[name])
        for metric in paper.TABLE_METRICS[name]:
            assert {metric, f"{metric}_std", f"{metric}_sig", f"{metric}_paper"} <= set(table.columns)
            np.testing.assert_allclose(table[f"{metric}_paper"], paper.paper_table(name)[metric].astype(float))
    assert built["table2"]["group"].tolist()[:2] == ["Task-specific"] * 2
    assert built["table3"]["label"].tolist() == ["RQ-KMeans", "Dictionary encoding", "ResidualLFQ", "RQ-VAE"]
    # the strong synthetic search method beats the weak content and rec ones significantly
    t1 = built["table1"].set_index("method")
    assert t1.loc["search", "search_all_sig"] == "13"
    shown = tables.display_table(built["table1"])
    assert list(shown.index) == ["1. Content-based", "2. Search based", "3. Rec. based"]
    assert "±" in shown.loc["2. Search based", "Search All (ours)"] and "¹³" in shown.loc["2. Search based", "Search All (ours)"]
    assert shown.loc["2. Search based", "Search All (paper)"] == "0.072 ± 0.028 ¹³"


def test_single_seed_and_missing_methods_leave_blanks_not_errors(synthetic_dataset, tmp_path):
    few = synthetic_results(synthetic_dataset, seeds=(0,), methods=("search", "rec", "multitask"))
    table = tables.build_table(few, "table2")
    assert table["method"].tolist() == list(paper.TABLE2_ROWS)
    assert table.set_index("method")["search_all"].isna().tolist() == [m not in ("search", "rec", "multitask")
                                                                        for m in paper.TABLE2_ROWS]
    assert table["search_all_std"].isna().all()  # one seed: no std
    shown = tables.display_table(table)
    assert "±" not in shown.iloc[0]["Search All (ours)"] and shown.iloc[2]["Search All (ours)"] == ""
    written = tables.save_tables({"table2": table}, tmp_path)
    assert all(p.is_file() for p in written)
    assert pd.read_csv(tmp_path / "table2.csv")["method"].tolist() == list(paper.TABLE2_ROWS)


def test_baselines_table(results):
    shown = tables.baselines_table(results)
    assert set(shown.index) == set(baselines.BASELINE_LABELS.values())
    with pytest.raises(ValueError, match="Unknown table"):
        tables.build_table(results, "table4")


# ---- plots -------------------------------------------------------------------------------------
def test_plots_write_png_and_svg(results, tmp_path):
    import matplotlib.pyplot as plt

    from helpers.evaluation import plots

    figures = {
        "pareto": plots.pareto_plot(results.means("generative"), results.stds("generative"), results.means("baseline"), k=K),
        "tokenizers": plots.tokenizer_plot(results.means("generative"), results.stds("generative"), paper.paper_means()),
        "summary": plots.summary_figure(results.means("generative"), paper.paper_means()),
    }
    for stem, fig in figures.items():
        paths = plots.save_figure(fig, tmp_path / "figs", stem)
        again = plots.save_figure(fig, tmp_path / "again", stem)  # same figure, same bytes: runs compare file by file
        plt.close(fig)
        assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in again]
        assert b"<dc:date>" not in paths[1].read_bytes()
        assert [p.suffix for p in paths] == [".png", ".svg"]
        assert all(p.stat().st_size > 1000 for p in paths)
        assert paths[0].read_bytes()[:4] == b"\x89PNG" and b"<svg" in paths[1].read_bytes()[:500]


def test_pareto_plot_shows_the_lexical_level_without_stretching_the_axis(results):
    import matplotlib.pyplot as plt

    from helpers.evaluation import plots

    means, base = results.means("generative"), results.means("baseline").copy()
    texts = lambda fig: [t.get_text() for t in fig.axes[0].texts] + fig.axes[0].get_legend_handles_labels()[1]  # noqa: E731
    base.loc["lexical", "search_all"] = 0.9 * means["search_all"].max()  # within the points: a line
    near = plots.pareto_plot(means, None, base, k=K)
    assert "Lexical (search)" in texts(near)
    base.loc["lexical", "search_all"] = 10 * means["search_all"].max()  # far beyond: a note at the edge
    far = plots.pareto_plot(means, None, base, k=K)
    assert any(t.startswith("Lexical search: ") for t in texts(far))
    assert far.axes[0].get_xlim()[1] < 2 * means["search_all"].max()
    plt.close(near), plt.close(far)


def test_relative_to_best_puts_the_best_at_one():
    from helpers.evaluation.plots import relative_to_best

    shares = relative_to_best(paper.paper_means(), paper.TABLE2_ROWS)
    assert shares.max().tolist() == [1.0, 1.0] and (shares <= 1).all().all()


# ---- the stage: caching and bad input -------------------------------------------------------
def test_evaluate_writes_reads_and_caches(fake):
    cfg = load_profile("smoke", {"evaluation": {"k": K}, "data": {"head_fraction": 0.1},
                                 "decoding": {"test_queries_per_item": None}})
    inputs = fake.inputs()
    with pytest.raises(MissingArtifactError, match="05_evaluation"):
        stage.load_results(cfg, ["search", "multitask"], [0, 1], inputs)
    first = stage.evaluate(cfg, ["multitask", "search"], [1, 0], inputs=inputs)
    assert first.constructions == ["search", "multitask"] and first.seeds == [0, 1]  # profile order, sorted seeds
    assert fake.reads == [("search", 0), ("search", 1), ("multitask", 0), ("multitask", 1)]
    assert (first.folder / "hits.parquet").is_file() and (first.folder / "summary.csv").is_file()
    assert set(first.hits.columns) == set(stage.HITS_COLUMNS)
    again = stage.evaluate(cfg, ["search", "multitask"], [0, 1], inputs=inputs)
    assert len(fake.reads) == 4  # cached: no prediction was read again
    pd.testing.assert_frame_equal(again.summary, first.summary)
    loaded = stage.load_results(cfg, ["search", "multitask"], [0, 1], inputs)
    assert loaded.folder == first.folder
    # other upstream names are other inputs: another folder, not this cache
    assert stage.evaluation_dir(cfg, ["search", "multitask"], [0, 1], fake.inputs("other")) != first.folder
    # the saved recall is the recall of the predictions that were read
    head = fake.dataset.head_items(0.1)
    search0 = stage.prediction_hits(make_predictions(fake.dataset, QUALITY["search"], 0), K, head)
    saved = loaded.summary.set_index(["method", "seed", "metric"])["recall"]
    assert saved[("search", 0, "search_all")] == pytest.approx(search0.loc[search0["task"] == "search", "hit"].mean())
    means = loaded.means("generative")
    assert means.loc["search", "search_all"] > means.loc["multitask", "search_all"]  # quality 0.9 vs 0.7


def test_every_method_is_scored_on_the_same_queries(fake):
    cfg = load_profile("smoke", {"evaluation": {"k": K}, "data": {"head_fraction": 0.1},
                                 "decoding": {"test_queries_per_item": 1}})
    results = stage.evaluate(cfg, ["search", "multitask"], [0], inputs=fake.inputs("one-per-item"))
    search = results.hits[results.hits["task"] == "search"]
    keys = {method: sorted(rows["query_key"]) for method, rows in search.groupby("method")}
    assert set(keys) == {"search", "multitask", "random", "lexical"}
    decoded = fake.dataset.query_split("test")
    decoded = sorted(decoded.loc[decoded["pair"] < 1, "query_id"])
    assert all(k == decoded for k in keys.values()), {m: len(k) for m, k in keys.items()}
    assert results.manifest["test_queries_per_item"] == 1
    rec = results.hits[results.hits["task"] == "rec"]
    assert rec.groupby("method").size().nunique() == 1  # every user for every method
    # and the number of queries behind each search recall is the same for every method
    n = results.summary[results.summary["metric"] == "search_all"].set_index("method")["n"]
    assert n.nunique() == 1 and n.iloc[0] == fake.dataset.n_items


def test_bad_input_is_refused_before_any_work(fake):
    cfg = load_profile("smoke")
    inputs = fake.inputs()
    with pytest.raises(ProfileError, match="Unknown construction.*'nope'"):
        stage.evaluate(cfg, ["multitask", "nope"], inputs=inputs)
    with pytest.raises(ProfileError, match="at least one seed"):
        stage.evaluate(cfg, seeds=[], inputs=inputs)
    with pytest.raises(ProfileError, match="at least one of"):
        stage.evaluate(cfg, constructions=[], inputs=inputs)
    with pytest.raises(ProfileError, match="integers"):
        stage.evaluate(cfg, seeds=["zero"], inputs=inputs)
    assert fake.reads == []  # refused before reading a single prediction


def test_a_missing_upstream_artifact_names_the_notebook(fake):
    cfg = load_profile("smoke")
    cfg["semantic_ids"]["constructions"]["missing"] = {"space": "content", "quantizer": "rq_kmeans", "scheme": "shared"}
    with pytest.raises(MissingArtifactError, match="notebook 04"):
        stage.evaluate(cfg, ["missing"], [0], inputs=fake.inputs())


def test_the_default_upstream_is_the_generative_stage_and_the_dataset(smoke_cfg):
    from helpers.data.stage import dataset_dir
    from helpers.generative.stage import predictions_dir

    names = stage.upstream_names(smoke_cfg, ["multitask"], [0])
    folder = predictions_dir(smoke_cfg, "multitask", 0, "test")
    assert names == {"dataset": f"{dataset_dir(smoke_cfg).parent.name}/{dataset_dir(smoke_cfg).name}",
                     "predictions": {"multitask/0": f"{folder.parent.name}/{folder.name}"}}
    assert stage.evaluation_dir(smoke_cfg, ["multitask"], [0]) == stage.evaluation_dir(
        smoke_cfg, ["multitask"], [0], stage.EvaluationInputs(None, None, names))


def test_claims_markdown_counts_verdicts():
    means = paper.paper_means().drop(index=["multitask_rqvae"])
    text = paper.claims_markdown(paper.check_claims(means))
    assert text.startswith(f"{len(paper.CLAIMS) - 1} of {len(paper.CLAIMS) - 1} checkable findings")
    assert text.count("**holds**") == len(paper.CLAIMS) - 1 and "*not checked*" in text


def test_headline_record_is_plain_json(results):
    import json

    record = tables.headline_record(results)
    text = json.dumps(record, allow_nan=False)  # NaN would break strict JSON readers
    assert json.loads(text)["search_all_recall"]["search"] == pytest.approx(results.means().loc["search", "search_all"])
    assert record["baseline_search_all"]["most_popular"] is None


def test_compare_decoding_reports_unavailable_decoders(synthetic_dataset):
    cfg = load_profile("smoke")
    beam = cfg["decoding"]["method"]
    fake = FakeUpstream(synthetic_dataset, undecoded={"exact"})
    table = stage.compare_decoding(cfg, "multitask", 0, inputs=fake.inputs())
    assert table.set_index(["decoding", "task"])["available"].to_dict() == {
        ("exact", "search"): False, ("exact", "rec"): False, (beam, "rec"): True, (beam, "search"): True}
    assert fake.decoded == []  # without build nothing is decoded
    built = stage.compare_decoding(cfg, "multitask", 0, build=True, inputs=fake.inputs())
    assert built["available"].all() and fake.decoded == ["exact", beam]
    assert cfg["decoding"]["method"] == beam != "exact"  # the profile itself was not modified
    with pytest.raises(ValueError, match="inputs.predict"):
        stage.compare_decoding(cfg, "multitask", 0, build=True,
                               inputs=stage.EvaluationInputs(synthetic_dataset, fake.load_predictions, {}))


def test_predictions_from_another_split_are_refused(synthetic_dataset):
    good = make_predictions(synthetic_dataset, 0.5, 0)
    stage.check_against_dataset(good, synthetic_dataset, "ok")
    valid_targets = synthetic_dataset.targets("valid")
    shifted = good.copy()
    is_rec = shifted["task"] == "rec"
    shifted.loc[is_rec, "target"] = valid_targets[shifted.loc[is_rec, "query_key"]]
    with pytest.raises(DataError, match="another split"):
        stage.check_against_dataset(shifted, synthetic_dataset, "valid targets")
    unknown = good.copy()
    unknown.loc[unknown["task"] == "search", "query_key"] += 10_000
    with pytest.raises(DataError, match="not a test query_id"):
        stage.check_against_dataset(unknown, synthetic_dataset, "unknown queries")


def test_ranking_lengths_flag_short_rankings(results):
    lengths = tables.ranking_lengths(results)
    assert set(lengths["method"]) == set(QUALITY) and set(lengths["task"]) == {"search", "rec"}
    assert (lengths["mean_length"] == K).all() and (lengths["share_short"] == 0).all()  # every ranking is full
    short = results.hits.assign(n_ranked=np.where(results.hits["method"] == "rec", 2, results.hits["n_ranked"]))
    flagged = tables.ranking_lengths(stage.results_from_hits(short, K)).set_index(["method", "task"])
    assert flagged.loc[("rec", "search"), "share_short"] == 1.0 and flagged.loc[("search", "search"), "share_short"] == 0.0


# ---- notebooks 05/06 write their outputs into the artifact atomically ----------------------------------
def test_outputs_are_published_whole_or_not_at_all(fake, tmp_path):
    cfg = load_profile("smoke", {"evaluation": {"k": K}, "data": {"head_fraction": 0.1}})
    results = stage.evaluate(cfg, ["search"], [0], inputs=fake.inputs("outputs"))
    with stage.write_outputs(results, "tables", tmp_path / "results") as folder:
        written = tables.save_tables(tables.build_tables(results), folder)
        assert not (results.folder / "tables").exists()  # nothing is visible while writing
    final = results.folder / "tables"
    assert sorted(p.name for p in final.iterdir()) == sorted([p.name for p in written] + ["manifest.json"])
    manifest = artifacts.read_manifest(final)
    assert manifest["files"] == sorted(p.name for p in written) and manifest["evaluation"] == results.folder.name
    copied = sorted(p.name for p in (tmp_path / "results").iterdir())
    assert copied == sorted(p.name for p in written)  # the manifest stays with the artifact
    # an interrupted write publishes nothing and leaves the previous tables as they were
    before = {p.name: p.read_bytes() for p in final.iterdir()}
    with pytest.raises(RuntimeError, match="interrupted"):
        with stage.write_outputs(results, "tables") as folder:
            (folder / "table1.csv").write_text("half")
            raise RuntimeError("interrupted")
    assert {p.name: p.read_bytes() for p in final.iterdir()} == before
    assert not [p for p in results.folder.iterdir() if p.name.startswith(".tmp")]
    with pytest.raises(ValueError, match="Unknown output kind"):
        stage.outputs_dir(results, "slides")
    with pytest.raises(DataError, match="no artifact folder"):
        stage.outputs_dir(stage.results_from_hits(results.hits, K), "figures")


# ---- layers: the metrics sit below the stages ----------------------------------------------------------
def test_no_stage_below_the_evaluation_imports_it():
    root = Path(__file__).resolve().parent.parent / "helpers"
    offenders = []
    for package in ("data", "embeddings", "semantic_ids", "generative"):
        for path in (root / package).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.ImportFrom):
                    names = [(node.module or "")] + [f"{node.module}.{a.name}" for a in node.names]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                if any("evaluation" in name.split(".") for name in names):
                    offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == []
    from helpers import metrics as shared

    assert metrics.recall_at_k is shared.recall_at_k and baselines.most_popular_hits is shared.most_popular_hits
