"""The paper's Tables 1, 2 and 3 built from our results, each beside the paper's numbers.

``build_table(results, "table2")`` returns one row per method of the paper's table (in the
paper's order, even where we did not run a method: its numbers are NaN) and, per metric, the
columns

``<metric>`` our mean over seeds, ``<metric>_std`` the std over seeds (NaN for one seed),
``<metric>_sig`` our superscripts (rows this method is significantly better than, paired t-test
over queries with Bonferroni over the column's pairs), ``<metric>_paper`` the paper's mean
(Table 1 also has ``<metric>_paper_std`` and ``<metric>_paper_sig``).

``display_table`` turns that into the strings a reader wants ("0.072 ± 0.028 ¹³"); ``baselines_table``
and ``ranking_lengths`` are notebook 05's other tables. Display only: the evaluation artifact is
:mod:`helpers.evaluation.stage`'s, which also writes these tables into it (``write_outputs``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .baselines import BASELINE_LABELS, BASELINES
from .paper import (METHOD_LABELS, METRIC_LABELS, TABLE_METRICS, TABLE_ROWS, TASK_SPECIFIC, TOKENIZER_LABELS,
                    paper_table)
from .significance import pairwise_tests, seed_averaged_hits, superscripts
from .stage import METRIC_SUBSETS

TABLES = tuple(TABLE_ROWS)
_SUPERSCRIPT_DIGITS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def row_label(table: str, method: str) -> str:
    """The paper's row name: tokenizer names in Table 3, method names elsewhere."""
    return TOKENIZER_LABELS[method] if table == "table3" else METHOD_LABELS.get(method, method)


def table_tests(results, table: str, alpha: float = 0.05, correction: str = "bonferroni") -> pd.DataFrame:
    """Pairwise paired t-tests between the table's methods, per metric, corrected per metric column.

    Columns: metric plus :data:`helpers.evaluation.significance.TEST_COLUMNS`.
    """
    rows = [m for m in TABLE_ROWS[table] if m in set(results.hits["method"])]
    frames = []
    for metric in TABLE_METRICS[table]:
        task, subset = METRIC_SUBSETS[metric]
        per_query = seed_averaged_hits(results.hits, rows, task, subset)
        tests = pairwise_tests(per_query, alpha=alpha, correction=correction)
        tests.insert(0, "metric", metric)
        frames.append(tests)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def build_table(results, table: str, alpha: float = 0.05, correction: str = "bonferroni") -> pd.DataFrame:
    """Our numbers for one of the paper's tables beside the paper's (see the module docstring)."""
    if table not in TABLE_ROWS:
        raise ValueError(f"Unknown table {table!r}; choose one of {', '.join(TABLES)}.")
    order = list(TABLE_ROWS[table])
    means = results.means("generative").reindex(order)
    stds = results.stds("generative").reindex(order)
    paper = paper_table(table)
    tests = table_tests(results, table, alpha, correction)
    out = pd.DataFrame({"row": np.arange(1, len(order) + 1), "method": order,
                        "label": [row_label(table, m) for m in order]})
    if table == "table2":
        out.insert(2, "group", ["Task-specific" if m in TASK_SPECIFIC else "Cross-task" for m in order])
    n_seeds = results.summary[results.summary["kind"] == "generative"].groupby("method")["seed"].nunique()
    out["n_seeds"] = [int(n_seeds.get(m, 0)) for m in order]
    for metric in TABLE_METRICS[table]:
        marks = superscripts(tests[tests["metric"] == metric], order) if len(tests) else {}
        out[metric] = means[metric].to_numpy()
        out[f"{metric}_std"] = stds[metric].to_numpy()
        out[f"{metric}_sig"] = [marks.get(m, "") for m in order]
        out[f"{metric}_paper"] = paper[metric].to_numpy(float)
        if f"{metric}_std" in paper.columns:
            out[f"{metric}_paper_std"] = paper[f"{metric}_std"].to_numpy(float)
            out[f"{metric}_paper_sig"] = paper[f"{metric}_sig"].to_numpy()
    return out


def build_tables(results, alpha: float = 0.05, correction: str = "bonferroni") -> dict[str, pd.DataFrame]:
    """All three tables, keyed ``table1``, ``table2``, ``table3``."""
    return {name: build_table(results, name, alpha, correction) for name in TABLES}


def format_cell(mean: float, std: float = np.nan, sig: str = "", digits: int = 3) -> str:
    """``0.072 ± 0.028 ¹³``; an empty string for a method that was not run."""
    if mean is None or not np.isfinite(mean):
        return ""
    text = f"{mean:.{digits}f}"
    if std is not None and np.isfinite(std):
        text += f" ± {std:.{digits}f}"
    if isinstance(sig, str) and sig:
        text += " " + sig.translate(_SUPERSCRIPT_DIGITS)
    return text


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """Reader-facing strings: one ``ours`` and one ``paper`` column per metric, rows = the paper's."""
    metrics = [m for m in METRIC_LABELS if m in table.columns]
    shown = pd.DataFrame(index=pd.Index([f"{r}. {label}" for r, label in zip(table["row"], table["label"])],
                                        name="method"))
    if "group" in table.columns:
        shown["group"] = table["group"].to_numpy()
    for metric in metrics:
        label = METRIC_LABELS[metric]
        shown[f"{label} (ours)"] = [format_cell(m, s, g) for m, s, g in
                                    zip(table[metric], table[f"{metric}_std"], table[f"{metric}_sig"])]
        paper_std = table.get(f"{metric}_paper_std", pd.Series([np.nan] * len(table)))
        paper_sig = table.get(f"{metric}_paper_sig", pd.Series([""] * len(table)))
        shown[f"{label} (paper)"] = [format_cell(m, s, g) for m, s, g in
                                     zip(table[f"{metric}_paper"], paper_std, paper_sig)]
    return shown


def baselines_table(results) -> pd.DataFrame:
    """Random and most-popular recall beside the generative methods' best, one row per baseline."""
    means = results.means("baseline")
    rows = [b for b in BASELINES if b in means.index]
    shown = means.loc[rows].copy()
    shown.index = [BASELINE_LABELS[b] for b in rows]
    shown.columns = [METRIC_LABELS[c] for c in shown.columns]
    return shown


def ranking_lengths(results, kind: str = "generative") -> pd.DataFrame:
    """Mean ranking length per method and task, and the share of rankings shorter than ``k``.

    Recall@K is capped by what the decoder returns: a beam search that yields 10 distinct items
    cannot reach the recall of 30. Columns: method, task, mean_length, share_short.
    """
    rows = results.hits[results.hits["kind"] == kind]
    grouped = rows.groupby(["method", "task"], sort=False)["n_ranked"]
    table = pd.DataFrame({"mean_length": grouped.mean(),
                          "share_short": grouped.apply(lambda n: float((n < results.k).mean()))})
    return table.reset_index()


def save_tables(tables: dict[str, pd.DataFrame], folder: str | Path) -> list[Path]:
    """Write ``<table>.csv`` (numbers) and ``<table>_display.csv`` (formatted) for each table."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in tables.items():
        table.to_csv(folder / f"{name}.csv", index=False)
        display_table(table).to_csv(folder / f"{name}_display.csv")
        written += [folder / f"{name}.csv", folder / f"{name}_display.csv"]
    return written


def _finite_or_none(value):
    value = float(value)
    return value if np.isfinite(value) else None


def headline_record(results) -> dict:
    """The numbers a notebook records for tests and the study runner (NaN becomes None).

    Keys: k, seeds, ``<metric>_recall`` -> {construction: mean over seeds} for every metric,
    ``<metric>_std`` likewise, and ``baseline_<metric>`` -> {baseline: recall}.
    """
    means, stds, base = results.means("generative"), results.stds("generative"), results.means("baseline")
    record = {"k": int(results.k), "seeds": [int(s) for s in results.seeds],
              "constructions": list(results.constructions)}
    for metric in means.columns:
        record[f"{metric}_recall"] = {m: _finite_or_none(v) for m, v in means[metric].items()}
        record[f"{metric}_std"] = {m: _finite_or_none(v) for m, v in stds[metric].items()}
        record[f"baseline_{metric}"] = {m: _finite_or_none(v) for m, v in base[metric].items()}
    return record
