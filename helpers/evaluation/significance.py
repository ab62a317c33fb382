"""Paired t-tests between methods over per-query hits, with Bonferroni correction.

The paper (section 4) compares methods with paired Student's t-tests over the same queries
(search) or users (recommendation) and corrects for the number of comparisons with Bonferroni;
its tables mark a number with superscript ``j`` when that method is significantly better than
the method in row ``j``. This module reproduces that:

* :func:`paired_ttest` tests two aligned hit vectors and never returns NaN: identical vectors
  (no variance in the differences) get t = 0, p = 1; a constant non-zero difference gets
  t = +-inf, p = 0 (every query moved the same way, which is as significant as it gets).
* :func:`pairwise_tests` runs every unordered pair of methods once, then corrects all those
  p-values together (``statsmodels.stats.multitest.multipletests``).
* :func:`superscripts` turns the corrected tests into the paper's per-row superscripts.

With several seeds, a method's vector holds each query's hit averaged over the seeds (a value in
[0, 1]), so the pairing stays over queries, as in the paper, and seed noise is averaged out.
"""
from __future__ import annotations

from itertools import combinations
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

TEST_COLUMNS = ["method_a", "method_b", "mean_a", "mean_b", "n", "t", "p", "p_adjusted",
                "significant", "better"]


def paired_ttest(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Two-sided paired t-test of ``a`` against ``b`` (aligned per query): ``(t, p)``.

    Degenerate cases return finite, meaningful values instead of scipy's NaN:
    fewer than two pairs or all differences zero -> (0.0, 1.0); all differences equal and
    non-zero -> (+-inf, 0.0).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired vectors must be 1-D and aligned, got shapes {a.shape} and {b.shape}.")
    diff = a - b
    if len(diff) < 2 or np.all(diff == 0):
        return 0.0, 1.0
    if np.all(diff == diff[0]):  # zero variance: scipy would warn and may return NaN
        return float(np.sign(diff[0]) * np.inf), 0.0
    result = stats.ttest_rel(a, b)
    return float(result.statistic), float(result.pvalue)


def pairwise_tests(hits: Mapping[str, np.ndarray] | pd.DataFrame, alpha: float = 0.05,
                   correction: str = "bonferroni") -> pd.DataFrame:
    """Test every pair of methods once and correct the p-values for the number of pairs.

    Args:
        hits: method -> per-query hit vector, all aligned on the same queries (or a DataFrame
            with one column per method and one row per query).
        alpha: family-wise significance level.
        correction: a ``statsmodels`` ``multipletests`` method (``bonferroni`` like the paper,
            or e.g. ``holm``); ``none`` keeps the raw p-values.

    Returns:
        One row per unordered pair with columns ``TEST_COLUMNS``; ``better`` names the method
        with the higher mean when the difference is significant, else is empty.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}.")
    table = pd.DataFrame({name: np.asarray(v, dtype=np.float64) for name, v in dict(hits).items()}) \
        if not isinstance(hits, pd.DataFrame) else hits.astype(np.float64)
    rows = []
    for name_a, name_b in combinations(table.columns, 2):
        a, b = table[name_a].to_numpy(), table[name_b].to_numpy()
        t, p = paired_ttest(a, b)
        rows.append({"method_a": name_a, "method_b": name_b, "mean_a": float(a.mean()) if len(a) else np.nan,
                     "mean_b": float(b.mean()) if len(b) else np.nan, "n": len(a), "t": t, "p": p})
    tests = pd.DataFrame(rows, columns=TEST_COLUMNS[:7])
    if tests.empty:
        return pd.DataFrame(columns=TEST_COLUMNS)
    if correction == "none":
        tests["p_adjusted"] = tests["p"]
    else:
        tests["p_adjusted"] = multipletests(tests["p"].to_numpy(), alpha=alpha, method=correction)[1]
    tests["significant"] = tests["p_adjusted"] < alpha
    winner = np.where(tests["mean_a"] > tests["mean_b"], tests["method_a"], tests["method_b"])
    tests["better"] = np.where(tests["significant"] & (tests["mean_a"] != tests["mean_b"]), winner, "")
    return tests[TEST_COLUMNS]


def superscripts(tests: pd.DataFrame, order: Sequence[str]) -> dict[str, str]:
    """The paper's superscripts: method -> the 1-based rows of ``order`` it significantly beats.

    ``{"search": "13"}`` means the Search based row is significantly better than rows 1 and 3.
    Methods absent from ``tests`` get an empty string.
    """
    row_of = {name: i for i, name in enumerate(order, start=1)}
    beaten: dict[str, set[int]] = {name: set() for name in order}
    for test in tests.itertuples(index=False):
        if not test.better:
            continue
        loser = test.method_b if test.better == test.method_a else test.method_a
        if test.better in beaten and loser in row_of:
            beaten[test.better].add(row_of[loser])
    return {name: "".join(str(r) for r in sorted(rows)) for name, rows in beaten.items()}


def seed_averaged_hits(hits: pd.DataFrame, methods: Sequence[str], task: str, subset: str = "all",
                       method_column: str = "method") -> pd.DataFrame:
    """One column per method: each query's hit averaged over seeds, on the queries all share.

    ``hits`` is the long frame of :mod:`helpers.evaluation.stage` (columns method, seed, task,
    query_key, segment, hit). ``subset`` is ``all``, ``head`` or ``torso``. Queries missing for
    any method are dropped, because a paired test needs the same queries on both sides.
    """
    rows = hits[(hits["task"] == task) & hits[method_column].isin(list(methods))]
    if subset != "all":
        rows = rows[rows["segment"] == subset]
    per_query = rows.groupby([method_column, "query_key"])["hit"].mean().unstack(method_column)
    present = [m for m in methods if m in per_query.columns]
    return per_query[present].dropna()
