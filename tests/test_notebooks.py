"""Smoke tier: every notebook, executed on the smoke profile, with its recorded numbers read back.

recommenders-style (``tests/smoke/examples/test_notebooks_python.py``): one ``notebooks`` map, one
``execute`` helper, one run of the whole study (the study runner executes 01..NN through
papermill, as ``bash run.sh study --profile smoke`` does), then one test per notebook reading its
``record(...)`` values back. Relations that must hold on any data come first; the seeded headline
numbers are pinned with a tolerance (``PINNED``), so a change that moves them is noticed.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from helpers.config import PROJECT_ROOT, load_profile
from helpers.notebook_results import read_records
from helpers.study import notebooks as numbered_notebooks
from helpers.study import run_study

pytestmark = pytest.mark.smoke
NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
#: Exact top-K holds the K most likely IDs, so it retrieves the target at least as often as beam
#: search; recall is not likelihood, so allow a hair of slack for ties.
EXACT_SLACK = 0.01
#: Seeded smoke-profile headline numbers (two cold runs on one machine are bit-identical; the
#: tolerance absorbs BLAS differences between CPUs). Re-pin them when a change is meant to move them:
#: ``bash run.sh study --profile smoke`` and read the records of reports/smoke/*.ipynb.
PINNED = {
    ("02_embeddings", "search_recall", "search"): 0.892,
    ("02_embeddings", "rec_recall", "rec"): 0.350,
    ("05_evaluation", "search_all_recall", "search"): 0.603,
    ("05_evaluation", "rec_all_recall", "rec"): 0.317,
    ("05_evaluation", "search_all_recall", "multitask"): 0.507,
    ("05_evaluation", "rec_all_recall", "multitask"): 0.550,
    ("05_evaluation", "baseline_rec_all", "most_popular"): 0.358,
}
PINNED_TOLERANCE = 0.03


@pytest.fixture(scope="module")
def notebooks() -> dict[str, Path]:
    """Every numbered notebook by stem: ``{"01_data": Path(...), ...}``."""
    return {path.stem: path for path in numbered_notebooks()}


def execute(source: Path, out: Path, cwd: Path = PROJECT_ROOT, **parameters) -> dict:
    """Execute one notebook through papermill; return its records."""
    import papermill as pm

    pm.execute_notebook(str(source), str(out), parameters=parameters, kernel_name="python3", cwd=str(cwd),
                        progress_bar=False)
    return read_records(out)


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """The whole smoke study, once: executed notebooks in ``<out>/reports``, tables in ``<out>/results``."""
    out = tmp_path_factory.mktemp("smoke-study")
    run_study("smoke", reports_dir=out / "reports", results_dir=out / "results")
    return out


def records(study: Path, stem: str) -> dict:
    return read_records(study / "reports" / f"{stem}.ipynb")


def test_every_notebook_ran_and_recorded(study, notebooks):
    for stem in notebooks:
        assert (study / "reports" / f"{stem}.html").is_file(), stem
        assert records(study, stem), f"{stem} records nothing for its tests"


def test_the_index_and_every_page_link_only_to_files_that_exist(study, notebooks):
    from helpers.report import broken_links

    index = study / "reports" / "index.html"
    text = index.read_text()
    assert "pareto.png" in text and "is produced by notebook" not in text, "a full study shows its results"
    for page in [index] + [study / "reports" / f"{stem}.html" for stem in notebooks]:
        assert broken_links(page) == [], page.name


def test_a_notebook_runs_from_its_own_folder_as_jupyterlab_runs_it(study, notebooks, tmp_path):
    # JupyterLab starts the kernel in notebooks/: helpers must import from there (installed package)
    got = execute(notebooks["01_data"], tmp_path / "01_data.ipynb", cwd=NOTEBOOK_DIR, PROFILE="smoke")
    assert got == records(study, "01_data")


@pytest.mark.parametrize("key", sorted(PINNED))
def test_seeded_headline_numbers_are_pinned(study, key):
    stem, record, name = key
    assert records(study, stem)[record][name] == pytest.approx(PINNED[key], abs=PINNED_TOLERANCE)


def test_01_builds_a_chronological_dataset_with_queries(study):
    got = records(study, "01_data")
    assert got["chronological"] is True
    assert got["n_queries"] == 2 * got["n_items"] * load_profile("smoke")["data"]["queries"]["per_item"]
    assert 0 < got["n_head_items"] < got["n_items"]


def test_02_builds_every_space_and_the_search_tuned_one_searches_best(study):
    from helpers.registry import SPACES, TEXT_SPACES

    got = records(study, "02_embeddings")
    search, rec = got["search_recall"], got["rec_recall"]
    assert set(search) == set(TEXT_SPACES) | {"fused_concat", "fused_svd"} and set(rec) == set(SPACES)
    for value in [*search.values(), *rec.values(), got["enmf_rec_recall"], got["most_popular_rec_recall"]]:
        assert 0.0 <= value <= 1.0
    assert search["search"] > search["content"], "fine-tuning on train queries must help search"
    assert got["dims"]["fused_concat"] == got["dims"]["search"] + got["dims"]["rec"]
    assert got["dims"]["fused_svd"] == min(got["dims"]["search"], got["dims"]["rec"])
    assert got["n_items"] == got["n_items_embedded"]


def test_03_builds_unique_ids_for_every_construction(study):
    got = records(study, "03_semantic_ids")
    names = list(load_profile("smoke")["semantic_ids"]["constructions"])
    assert got["constructions"] == names
    assert all(got["all_ids_unique"][name] for name in names)
    for name in names:
        for task, rate in got["collision_rate"][name].items():
            # an ID is the code levels plus a disambiguation token only when codes collide
            assert got["id_length"][name][task] == got["n_levels"] + (rate > 0)
    assert got["collision_rate"]["multitask"]["search"] > 0, "150 items on 8 x 8 = 64 slots must collide"
    assert got["vocabularies_disjoint"]["separate"]
    assert got["vocabulary_size"]["separate"] > got["vocabulary_size"]["multitask"]
    assert got["shared_prefix"]["prefix_share"] and got["vocabularies_disjoint"]["prefix_share"] is False
    assert got["shared_prefix"]["multitask"] and not got["vocabularies_disjoint"]["multitask"]
    assert got["relative_reconstruction_error"]["multitask"]["shared"] < 1.0, "RQ-KMeans must beat the mean"
    assert got["genre_lift"]["content"]["shared"] > 1.0, "a first token must group alike genres"
    sweep = got["codebook_sweep"]
    assert sweep["collision_rate"][0] > sweep["collision_rate"][-1], "collisions fall as codebooks grow"


def test_04_trains_and_decodes_every_construction(study):
    from helpers.data.stage import load_dataset

    cfg = load_profile("smoke")
    got = records(study, "04_generative_training")
    constructions = list(cfg["semantic_ids"]["constructions"])
    assert got["n_models"] == len(constructions) * len(cfg["generative"]["seeds"])
    assert got["train_seconds_total"] > 0 and got["train_examples_per_second_mean"] > 0
    assert 0 < got["peak_rss_mib"] < 8 * 1024
    for task in ("search_recall", "rec_recall"):
        assert set(got[task]) == set(constructions)
    ds = load_dataset(cfg)
    test_queries = ds.query_split("test")
    test_queries = test_queries[test_queries["pair"] < cfg["decoding"]["test_queries_per_item"]]
    assert got["predictions_per_model"] == [len(test_queries) + ds.n_users] * got["n_models"]
    overlap = got["decoder_overlap_with_exact"]
    assert overlap["exact"] == pytest.approx(1.0)
    # our trie beam search and HF's constrained beam search explore the same beams
    assert overlap["trie_beam"] >= overlap["hf_beam"] - 0.02


def test_05_scores_every_method_on_the_same_queries_and_random_as_expected(study):
    from helpers.evaluation.baselines import random_recall_tolerance

    got = records(study, "05_evaluation")
    assert len(set(got["search_queries"].values())) == 1, got["search_queries"]
    n_queries, n_items = got["search_queries"]["random"], records(study, "01_data")["n_items"]
    assert got["baseline_search_all"]["random"] == pytest.approx(
        got["random_expected_recall"], abs=random_recall_tolerance(n_items, got["k"], n_queries))


def test_05_task_specific_ids_beat_random_on_their_own_task(study):
    from helpers.evaluation.baselines import random_recall_tolerance

    got = records(study, "05_evaluation")
    n_items, k = records(study, "01_data")["n_items"], got["k"]
    # search: 300 decoded queries, so beating random by its 4-sigma band is a real signal
    noise = random_recall_tolerance(n_items, k, got["search_queries"]["search"])
    assert got["search_all_recall"]["search"] > got["baseline_search_all"]["random"] + noise
    # rec: 120 test users (sigma 0.04 around 0.2): the rec-space IDs must at least beat random
    assert got["rec_all_recall"]["rec"] > got["baseline_rec_all"]["random"]
    assert got["baseline_rec_all"]["most_popular"] > got["baseline_rec_all"]["random"]


def test_05_exact_top_k_is_not_worse_than_beam_search(study):
    got = records(study, "05_evaluation")
    recalls, beam = got["decoding_recall"], got["beam_method"]
    assert beam != "exact" and load_profile("smoke")["evaluation"]["exact_decoding"], "the smoke profile compares"
    for task in ("search", "rec"):
        assert recalls[f"exact/{task}"] >= recalls[f"{beam}/{task}"] - EXACT_SLACK, task


def test_05_reports_memorisation_and_the_human_queries(study):
    got = records(study, "05_evaluation")
    train, same = got["memorisation_search_train"], got["memorisation_search_test_same_pairs"]
    assert set(train) == set(load_profile("smoke")["semantic_ids"]["constructions"])
    # a model recalls the queries it trained on at least as well as their paraphrases, on average
    assert sum(train.values()) > sum(same.values())
    assert all(0.0 < share < 1.0 for share in got["untrained_token_share"].values())
    human = got["human_recall"]
    assert got["human_n"] == 46, "the smoke catalogue holds 46 of the shipped set's films"
    assert 0 <= got["human_n_head_targets"] <= got["human_n"]
    assert all(0.0 <= value <= 1.0 for value in human.values())
    assert human["dense retrieval, search space"] > human["random (expected)"]
    table = pd.read_csv(study / "results" / "human_queries.csv")
    assert len(table) == len(human) and (study / "results" / "memorisation.csv").is_file()


def test_05_saves_the_papers_tables(study):
    from helpers.evaluation.paper import TABLE_ROWS

    for name, rows in TABLE_ROWS.items():
        assert pd.read_csv(study / "results" / f"{name}.csv")["method"].tolist() == list(rows)
        assert (study / "results" / f"{name}_display.csv").is_file()
    findings = pd.read_csv(study / "results" / "findings.csv")
    assert len(findings) and (study / "results" / "baselines.csv").is_file()


def test_06_draws_a_consistent_pareto_frontier(study):
    from helpers.evaluation.plots import PARETO_METHODS

    got = records(study, "06_pareto")
    search, rec = got["search_all_recall"], got["rec_all_recall"]
    assert got["pareto_frontier"] and set(got["pareto_frontier"]) <= set(search)
    plotted = [m for m in PARETO_METHODS if m in search and m in rec]
    for point in got["pareto_frontier"]:  # no plotted method beats a frontier point on both tasks
        assert not any(search[m] > search[point] and rec[m] > rec[point] for m in plotted)
    off_frontier = [m for m in plotted if m not in got["pareto_frontier"]]
    for m in off_frontier:  # and every other point is beaten on both by some frontier point
        assert any(search[p] >= search[m] and rec[p] >= rec[m] for p in got["pareto_frontier"]), m
    for stem in ("pareto", "pareto_paper", "tokenizers", "summary"):
        for suffix in (".png", ".svg"):
            assert (study / "results" / f"{stem}{suffix}").stat().st_size > 1000


def test_07_explores_real_items_side_by_side(study):
    from helpers.data.stage import load_dataset

    got = records(study, "07_explore")
    titles = load_dataset(load_profile("smoke")).items["title"]
    assert got["profile"] == "smoke" and len(got["constructions"]) >= 2
    assert set(got["constructions"]) <= set(got["trained"])
    for construction in got["constructions"]:
        found, scores = got["search_items"][construction], got["search_scores"][construction]
        assert 0 < len(found) == len(set(found)) <= got["k"] and all(0 <= i < got["n_items"] for i in found)
        assert got["search_titles"][construction] == titles.iloc[found].tolist()
        assert all(a >= b - 1e-4 for a, b in zip(scores, scores[1:])) and max(scores) <= 0
        recommended = got["rec_items"][construction]
        assert not set(recommended) & set(got["history_items"]), "a user's history is never recommended"
        rank = got["rec_test_item_rank"][construction]
        assert rank is None or 1 <= rank <= got["k"]
    assert got["test_item"] not in got["history_items"]
    assert all(size >= 1 for size in got["id_groups"].values())
    assert got["seconds_per_query"] < 1 and got["seconds_per_user"] < 1
