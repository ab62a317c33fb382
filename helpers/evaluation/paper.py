"""The paper's published numbers (Tables 1, 2, 3) and its main claims, as data.

Everything here is transcribed from the paper, never computed: it is what our results are read
against. Our own numbers come from :mod:`helpers.evaluation.stage`.

Metric keys used across the evaluation package:
``search_all`` (search Recall@30 over all test queries), ``rec_all`` (recommendation Recall@30
over all test users), ``rec_head`` / ``rec_torso`` (users whose target is a head / torso item).

Each claim is a small function of a means table (index: method key, columns: metric keys) that
says whether the claim holds on those numbers and why; applied to the paper's own tables every
claim holds (a unit test checks this), applied to ours it tells the reader what reproduces.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from ..registry import CONSTRUCTION_NAMES, TOKENIZER_CONSTRUCTIONS

CITATION = (
    "Gustavo Penha, Edoardo D'Amico, Marco De Nadai, Enrico Palumbo, Alexandre Tamborrino, "
    "Ali Vardasbi, Max Lefarov, Shawn Lin, Timothy Heath, Francesco Fabbri, Hugues Bouchard. "
    "2025. Semantic IDs for Joint Generative Search and Recommendation. RecSys '25. "
    "https://doi.org/10.1145/3705328.3759300"
)

METRICS = ("search_all", "rec_all", "rec_head", "rec_torso")
METRIC_LABELS = {"search_all": "Search All", "rec_all": "Rec. All", "rec_head": "Rec. Head",
                 "rec_torso": "Rec. Torso"}

#: Display names of the methods, by snake_case key (one registry of names: ``helpers.registry``).
METHOD_LABELS = CONSTRUCTION_NAMES
#: In Table 3 the multitask construction is the RQ-KMeans row.
TOKENIZER_LABELS = TOKENIZER_CONSTRUCTIONS
TASK_SPECIFIC = ("content", "search", "rec")
CROSS_TASK = ("separate", "prefix_share", "fused_concat", "fused_svd", "multitask")

TABLE1_ROWS = ("content", "search", "rec")
TABLE2_ROWS = ("search", "rec", "separate", "prefix_share", "fused_concat", "fused_svd", "multitask")
TABLE3_ROWS = ("multitask", "multitask_dict", "multitask_rlfq", "multitask_rqvae")
TABLE_ROWS = {"table1": TABLE1_ROWS, "table2": TABLE2_ROWS, "table3": TABLE3_ROWS}
TABLE_METRICS = {"table1": ("search_all", "rec_all"), "table2": METRICS, "table3": ("search_all", "rec_all")}

# ---- the published numbers -------------------------------------------------------------------
# Table 1: mean (std over 5 seeds) and the paper's superscripts (rows it is significantly better than).
_TABLE1 = {
    "content": {"search_all": 0.013, "search_all_std": 0.009, "search_all_sig": "",
                "rec_all": 0.023, "rec_all_std": 0.017, "rec_all_sig": ""},
    "search": {"search_all": 0.072, "search_all_std": 0.028, "search_all_sig": "13",
               "rec_all": 0.026, "rec_all_std": 0.017, "rec_all_sig": ""},
    "rec": {"search_all": 0.004, "search_all_std": 0.001, "search_all_sig": "",
            "rec_all": 0.062, "rec_all_std": 0.015, "rec_all_sig": "12"},
}
# Table 2: means only (the paper prints no std or superscripts here).
_TABLE2 = {
    "search": (0.072, 0.026, 0.090, 0.070),
    "rec": (0.004, 0.062, 0.170, 0.035),
    "separate": (0.028, 0.032, 0.120, 0.051),
    "prefix_share": (0.007, 0.021, 0.058, 0.010),
    "fused_concat": (0.048, 0.018, 0.045, 0.041),
    "fused_svd": (0.033, 0.038, 0.105, 0.060),
    "multitask": (0.046, 0.049, 0.135, 0.024),
}
# Table 3: search and rec Recall@30 per tokenizer on the multitask embeddings.
_TABLE3 = {
    "multitask": (0.046, 0.049),
    "multitask_dict": (0.019, 0.029),
    "multitask_rlfq": (0.018, 0.023),
    "multitask_rqvae": (0.002, 0.024),
}


def paper_table(name: str) -> pd.DataFrame:
    """The paper's numbers for ``table1``/``table2``/``table3``: index = method key, metric columns.

    Table 1 also has ``<metric>_std`` and ``<metric>_sig`` (the paper's superscripts).
    """
    if name == "table1":
        frame = pd.DataFrame.from_dict(_TABLE1, orient="index")
    elif name == "table2":
        frame = pd.DataFrame.from_dict(_TABLE2, orient="index", columns=list(METRICS))
    elif name == "table3":
        frame = pd.DataFrame.from_dict(_TABLE3, orient="index", columns=["search_all", "rec_all"])
    else:
        raise ValueError(f"Unknown table {name!r}; choose one of {sorted(TABLE_ROWS)}.")
    frame.index.name = "method"
    return frame.loc[list(TABLE_ROWS[name])]


def paper_means() -> pd.DataFrame:
    """Every method's published means in one frame (Table 2, plus Table 1's content row and Table 3)."""
    means = paper_table("table2").copy()
    means.loc["content", ["search_all", "rec_all"]] = paper_table("table1").loc["content", ["search_all", "rec_all"]]
    for key, row in paper_table("table3").iterrows():
        if key not in means.index:
            means.loc[key, ["search_all", "rec_all"]] = row
    return means.astype(float)


# ---- the paper's claims, checkable on any means table ------------------------------------------
@dataclass(frozen=True)
class Claim:
    """A finding of the paper; ``check(means)`` -> (holds or None when not evaluable, evidence)."""

    key: str
    text: str
    where: str
    check: Callable[[pd.DataFrame], tuple[bool | None, str]]


def _value(means: pd.DataFrame, method: str, metric: str) -> float:
    if method not in means.index or metric not in means.columns:
        return np.nan
    return float(means.loc[method, metric])


def _need(means: pd.DataFrame, pairs) -> str | None:
    missing = [f"{METHOD_LABELS.get(m, m)} {METRIC_LABELS.get(c, c)}" for m, c in pairs
               if not np.isfinite(_value(means, m, c))]
    return "not evaluated here: missing " + ", ".join(missing) if missing else None


def _fmt(means, method, metric) -> str:
    return f"{METHOD_LABELS.get(method, method)} {_value(means, method, metric):.3f}"


def _best_of(methods, metric):
    def check(means):
        missing = _need(means, [(m, metric) for m in methods])
        if missing:
            return None, missing
        values = {m: _value(means, m, metric) for m in methods}
        best = methods[0]
        holds = all(values[best] > v for m, v in values.items() if m != best)
        return holds, ", ".join(_fmt(means, m, metric) for m in methods)
    return check


def _trade_off(means):
    pairs = [("search", "search_all"), ("rec", "search_all"), ("search", "rec_all"), ("rec", "rec_all")]
    missing = _need(means, pairs)
    if missing:
        return None, missing
    holds = (_value(means, "search", "search_all") > _value(means, "rec", "search_all")
             and _value(means, "rec", "rec_all") > _value(means, "search", "rec_all"))
    return holds, (f"search: {_fmt(means, 'search', 'search_all')} vs {_fmt(means, 'rec', 'search_all')}; "
                   f"rec: {_fmt(means, 'rec', 'rec_all')} vs {_fmt(means, 'search', 'rec_all')}")


def balance_scores(means: pd.DataFrame, methods=TABLE2_ROWS) -> pd.Series:
    """Per method, the worse of its two tasks relative to the best method on that task.

    1.0 means best on both tasks; the paper's Multi-task scores highest (0.64) because it keeps
    64% of the best search and 79% of the best rec recall, while every task-specific space
    collapses on its other task.
    """
    rows = [m for m in methods if m in means.index]
    table = means.loc[rows, ["search_all", "rec_all"]].astype(float)
    best = table.max()
    relative = table / best.replace(0, np.nan)
    return relative.min(axis=1).rename("balance")


def _multitask_balanced(means):
    missing = _need(means, [(m, c) for m in TABLE2_ROWS for c in ("search_all", "rec_all")])
    if missing:
        return None, missing
    scores = balance_scores(means)
    ranking = scores.sort_values(ascending=False)
    holds = ranking.index[0] == "multitask"
    shown = ", ".join(f"{METHOD_LABELS[m]} {s:.2f}" for m, s in ranking.head(3).items())
    return holds, f"worst-task share of the best (higher is better): {shown}"


def _fuse_first(means):
    combined, token_level = ("fused_concat", "fused_svd", "multitask"), ("separate", "prefix_share")
    missing = _need(means, [(m, c) for m in combined + token_level for c in ("search_all", "rec_all")])
    if missing:
        return None, missing
    average = {m: (_value(means, m, "search_all") + _value(means, m, "rec_all")) / 2 for m in combined + token_level}
    holds = max(average[m] for m in token_level) < min(average[m] for m in combined)
    return holds, "mean of search and rec: " + ", ".join(f"{METHOD_LABELS[m]} {v:.3f}" for m, v in average.items())


def _svd_vs_concat(means):
    pairs = [(m, c) for m in ("fused_svd", "fused_concat") for c in ("search_all", "rec_all")]
    missing = _need(means, pairs)
    if missing:
        return None, missing
    holds = (_value(means, "fused_svd", "rec_all") > _value(means, "fused_concat", "rec_all")
             and _value(means, "fused_svd", "search_all") < _value(means, "fused_concat", "search_all"))
    return holds, (f"rec: {_fmt(means, 'fused_svd', 'rec_all')} vs {_fmt(means, 'fused_concat', 'rec_all')}; "
                   f"search: {_fmt(means, 'fused_svd', 'search_all')} vs {_fmt(means, 'fused_concat', 'search_all')}")


def _head_torso(means):
    pairs = [(m, c) for m in ("search", "rec") for c in ("rec_head", "rec_torso")]
    missing = _need(means, pairs)
    if missing:
        return None, missing
    holds = (_value(means, "rec", "rec_head") > _value(means, "search", "rec_head")
             and _value(means, "search", "rec_torso") > _value(means, "rec", "rec_torso"))
    return holds, (f"head: {_fmt(means, 'rec', 'rec_head')} vs {_fmt(means, 'search', 'rec_head')}; "
                   f"torso: {_fmt(means, 'search', 'rec_torso')} vs {_fmt(means, 'rec', 'rec_torso')}")


def _rq_kmeans_best(means):
    missing = _need(means, [(m, c) for m in TABLE3_ROWS for c in ("search_all", "rec_all")])
    if missing:
        return None, missing
    holds = all(_value(means, "multitask", c) > _value(means, m, c)
                for m in TABLE3_ROWS[1:] for c in ("search_all", "rec_all"))
    return holds, "; ".join(
        f"{TOKENIZER_LABELS[m]} {_value(means, m, 'search_all'):.3f}/{_value(means, m, 'rec_all'):.3f}"
        for m in TABLE3_ROWS) + " (search/rec)"


CLAIMS = (
    Claim("search_space_best_search", "Search-tuned IDs give the best search among task-specific spaces.",
          "Table 1", _best_of(("search", "content", "rec"), "search_all")),
    Claim("rec_space_best_rec", "Rec-tuned IDs give the best recommendation among task-specific spaces.",
          "Table 1", _best_of(("rec", "content", "search"), "rec_all")),
    Claim("trade_off", "Optimising the IDs for one task sacrifices the other.", "Table 1", _trade_off),
    Claim("multitask_balanced", "Multi-task gives the best trade-off: the highest worst-task recall "
          "relative to the best method on each task.", "Table 2", _multitask_balanced),
    Claim("fuse_first", "Combining embeddings first (Fused concat, Fused SVD, Multi-task) beats "
          "task-separated tokens (Separate, Prefix-share).", "Table 2", _fuse_first),
    Claim("svd_vs_concat", "Fused SVD improves recommendation but degrades search compared to Fused concat.",
          "Table 2", _svd_vs_concat),
    Claim("head_torso", "Rec-based IDs win on head items; search-based IDs win on torso items.",
          "Table 2", _head_torso),
    Claim("rq_kmeans_best", "RQ-KMeans beats Dictionary encoding, ResidualLFQ and RQ-VAE on both tasks.",
          "Table 3", _rq_kmeans_best),
)


def check_claims(means: pd.DataFrame) -> pd.DataFrame:
    """Each claim with ``holds`` (True / False / None when not evaluable) and the evidence."""
    rows = []
    for claim in CLAIMS:
        holds, evidence = claim.check(means)
        rows.append({"claim": claim.key, "where": claim.where, "finding": claim.text,
                     "holds": holds, "evidence": evidence})
    return pd.DataFrame(rows)


def claims_markdown(checked: pd.DataFrame) -> str:
    """A Markdown list of :func:`check_claims` results for a notebook: verdict, finding, evidence."""
    verdicts = {True: "**holds**", False: "**does not hold**", None: "*not checked*"}
    lines = []
    for row in checked.itertuples(index=False):
        holds = None if row.holds is None or (isinstance(row.holds, float) and np.isnan(row.holds)) else bool(row.holds)
        lines.append(f"- {verdicts[holds]} ({row.where}): {row.finding} Here: {row.evidence}.")
    counted = [h for h in checked["holds"] if h is not None and not (isinstance(h, float) and np.isnan(h))]
    header = f"{sum(map(bool, counted))} of {len(counted)} checkable findings of the paper hold on these numbers."
    return header + "\n\n" + "\n".join(lines)
