"""``helpers.verify``: committed tables against a run's, within a tolerance, naming what differs."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import verify
from helpers.config import PROJECT_ROOT


# ---- synthetic results folders (fast) ----------------------------------------------------------
def _write_results(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({
        "row": [1, 2], "method": ["search", "fused_svd"], "label": ["Search based", "Fused SVD"], "n_seeds": [1, 1],
        "search_all": [0.0929845, 0.0541023], "search_all_std": [np.nan, np.nan], "search_all_sig": ["2", np.nan],
        "search_all_paper": [0.072, 0.033], "rec_all": [0.161188, 0.202545],
    }).to_csv(folder / "table2.csv", index=False)
    pd.DataFrame({"claim": ["trade_off", "balanced"], "holds": [True, False],
                  "evidence": ["search: Search based 0.093 vs Rec. based 0.023",
                               "worst-task share: Search based 0.69, Fused SVD 0.58"]}
                 ).to_csv(folder / "findings.csv", index=False)
    pd.DataFrame({"metric": ["search_all"], "method_a": ["search"], "method_b": ["fused_svd"],
                  "mean_a": [0.0929845], "mean_b": [0.0541023], "n": [16820], "t": [12.3], "p": [1e-30],
                  "p_adjusted": [2e-29], "significant": [True], "better": ["search"]}
                 ).to_csv(folder / "significance_table2.csv", index=False)
    pd.DataFrame({"Search All": [0.017479, np.nan], "Rec. All": [0.02439, 0.15376]},
                 index=["Random", "Most popular"]).to_csv(folder / "baselines.csv")
    (folder / "table2_display.csv").write_text("method,Search All (ours)\n1. Search based,0.093\n")
    return folder


def _edit(folder: Path, table: str, row, column: str, value, key: str | None = "method") -> None:
    path = folder / f"{table}.csv"
    frame = pd.read_csv(path, index_col=0 if key is None else None, dtype=str)
    value = str(value)
    if key is None:
        frame.loc[row, column] = value
        frame.to_csv(path)
    else:
        frame.loc[frame[key] == row, column] = value
        frame.to_csv(path, index=False)


@pytest.fixture
def folders(tmp_path):
    expected = _write_results(tmp_path / "expected")
    actual = tmp_path / "actual"
    shutil.copytree(expected, actual)
    return expected, actual


def test_identical_folders_agree(folders, capsys):
    expected, actual = folders
    assert verify.compare_folders(expected, actual) == []
    assert verify.main(["--results", str(expected), "--against", str(actual)]) == 0
    assert "OK" in capsys.readouterr().out


def test_display_tables_are_not_compared(folders):
    expected, actual = folders
    (actual / "table2_display.csv").write_text("method,Search All (ours)\n1. Search based,0.999\n")
    assert verify.compare_folders(expected, actual) == []


def test_a_value_within_tolerance_agrees_and_one_beyond_is_named(folders, capsys):
    expected, actual = folders
    _edit(actual, "table2", "fused_svd", "search_all", 0.0541023 + 0.004)
    assert verify.compare_folders(expected, actual) == []
    _edit(actual, "table2", "fused_svd", "search_all", 0.0600)
    diffs = verify.compare_folders(expected, actual)
    assert [(d.table, d.row, d.column) for d in diffs] == [("table2.csv", "method=fused_svd", "search_all")]
    assert diffs[0].expected == pytest.approx(0.0541023) and diffs[0].actual == pytest.approx(0.06)
    assert verify.main(["--results", str(expected), "--against", str(actual)]) == 1
    out = capsys.readouterr().out
    assert "table2.csv: row method=fused_svd, column search_all" in out and "0.0541023" in out
    # a tighter tolerance catches the smaller change too
    _edit(actual, "table2", "fused_svd", "search_all", 0.0541023 + 0.004)
    assert len(verify.compare_folders(expected, actual, tolerance=0.001)) == 1


def test_counts_strings_and_paper_numbers_are_exact(folders):
    expected, actual = folders
    _edit(actual, "table2", "search", "n_seeds", 2)
    _edit(actual, "table2", "search", "search_all_sig", "23")
    _edit(actual, "table2", "search", "search_all_paper", 0.0721)
    _edit(actual, "significance_table2", "search_all", "better", "fused_svd", key="metric")
    found = {(d.table, d.row, d.column) for d in verify.compare_folders(expected, actual)}
    assert found == {("table2.csv", "method=search", "n_seeds"), ("table2.csv", "method=search", "search_all_sig"),
                     ("table2.csv", "method=search", "search_all_paper"),
                     ("significance_table2.csv", "metric=search_all, method_a=search, method_b=fused_svd", "better")}


def test_nan_equals_only_nan_and_test_statistics_are_skipped(folders):
    expected, actual = folders
    _edit(actual, "significance_table2", "search_all", "t", 99.0, key="metric")
    _edit(actual, "significance_table2", "search_all", "p", 0.5, key="metric")
    assert verify.compare_folders(expected, actual) == []
    _edit(actual, "table2", "search", "search_all_std", 0.001)
    _edit(actual, "baselines", "Most popular", "Search All", 0.2, key=None)
    found = {(d.table, d.row, d.column, d.why) for d in verify.compare_folders(expected, actual)}
    assert found == {("table2.csv", "method=search", "search_all_std", "one side is empty"),
                     ("baselines.csv", "Most popular", "Search All", "one side is empty")}


def test_numbers_inside_text_get_the_tolerance_and_their_rounding(folders):
    expected, actual = folders
    # 0.58 -> 0.59 can be rounding of values 0.0001 apart: within 0.005 + half a unit on each side
    _edit(actual, "findings", "balanced", "evidence", "worst-task share: Search based 0.69, Fused SVD 0.59",
          key="claim")
    assert verify.compare_folders(expected, actual) == []
    _edit(actual, "findings", "balanced", "evidence", "worst-task share: Search based 0.69, Fused SVD 0.66",
          key="claim")
    _edit(actual, "findings", "trade_off", "evidence", "search: Rec. based 0.093 vs Search based 0.023",
          key="claim")
    diffs = {(d.row, d.column, d.why.split(" (")[0]) for d in verify.compare_folders(expected, actual)}
    assert diffs == {("claim=balanced", "evidence", "number 0.58 -> 0.66"),
                     ("claim=trade_off", "evidence", "text differs")}


def test_missing_rows_columns_and_tables_are_reported(folders):
    expected, actual = folders
    frame = pd.read_csv(actual / "table2.csv")
    frame[frame["method"] != "fused_svd"].drop(columns=["rec_all"]).to_csv(actual / "table2.csv", index=False)
    (actual / "findings.csv").unlink()
    found = {(d.table, d.row, d.column, d.why) for d in verify.compare_folders(expected, actual)}
    assert ("table2.csv", "method=fused_svd", "", "row missing") in found
    assert ("table2.csv", "", "rec_all", "column missing") in found
    assert any(t == "findings.csv" and why.startswith("table missing") for t, _, _, why in found)


def test_reports_folder_and_bad_folders(folders, tmp_path):
    expected, actual = folders
    reports = tmp_path / "reports"
    shutil.copytree(actual, reports / "results")
    assert verify.main(["--results", str(expected), "--reports", str(reports)]) == 0
    assert verify.main(["--results", str(tmp_path / "nowhere"), "--against", str(actual)]) == 2
    assert verify.main(["--results", str(expected), "--against", str(tmp_path / "nowhere")]) == 2


def test_committed_results_verify_against_themselves():
    committed = PROJECT_ROOT / "results" / "ml100k"
    if not verify.table_files(committed):
        pytest.skip("no committed results")
    assert verify.compare_folders(committed, committed) == []


def test_module_runs_from_the_command_line(folders):
    expected, actual = folders
    _edit(actual, "table2", "fused_svd", "rec_all", 0.1856)
    done = subprocess.run([sys.executable, "-m", "helpers.verify", "--results", str(expected), "--against",
                           str(actual)], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert done.returncode == 1, done.stderr
    assert "table2.csv: row method=fused_svd, column rec_all" in done.stdout


# ---- smoke profile: notebook 05 run twice, then a perturbed copy ---------------------------------
@pytest.mark.smoke
def test_smoke_results_verify_and_a_perturbed_value_is_named(tmp_path, capsys):
    import papermill as pm

    from helpers.config import load_profile
    from helpers.data.stage import build_dataset
    from helpers.embeddings.stage import reference_recalls
    from helpers.generative.stage import predict_all, profile_splits
    from helpers.semantic_ids.stage import build_all_semantic_ids

    cfg = load_profile("smoke")  # stages 01-04, cached (free when other smoke tests built them)
    build_dataset(cfg)
    build_all_semantic_ids(cfg)
    reference_recalls(cfg)
    predict_all(cfg, profile_splits(cfg), progress=False)  # what notebook 05 reads: test, train, human
    runs = []
    for name in ("first", "second"):
        results = tmp_path / name / "results"
        results.mkdir(parents=True)
        pm.execute_notebook(str(PROJECT_ROOT / "notebooks" / "05_evaluation.ipynb"),
                            str(tmp_path / name / "05_evaluation.ipynb"),
                            parameters={"PROFILE": "smoke", "RESULTS_DIR": str(results)},
                            kernel_name="python3", cwd=str(PROJECT_ROOT), progress_bar=False)
        runs.append(results)
    first, second = runs
    assert {p.name for p in verify.table_files(first)} >= {"table1.csv", "table2.csv", "table3.csv", "baselines.csv",
                                                           "findings.csv", "significance_table2.csv"}
    assert verify.main(["--results", str(first), "--against", str(second)]) == 0

    perturbed = tmp_path / "perturbed"
    shutil.copytree(second, perturbed)
    table = pd.read_csv(perturbed / "table2.csv")
    method = table.loc[table["search_all"].notna(), "method"].iloc[0]
    before = float(table.loc[table["method"] == method, "search_all"].iloc[0])
    table.loc[table["method"] == method, "search_all"] = before + 0.05
    table.to_csv(perturbed / "table2.csv", index=False)
    capsys.readouterr()
    assert verify.main(["--results", str(first), "--against", str(perturbed)]) == 1
    out = capsys.readouterr().out
    assert f"table2.csv: row method={method}, column search_all" in out
    diffs = verify.compare_folders(first, perturbed)
    assert [(d.table, d.row, d.column) for d in diffs] == [("table2.csv", f"method={method}", "search_all")]
