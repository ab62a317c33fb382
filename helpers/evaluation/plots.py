"""Figures of notebook 06: the search-vs-rec Pareto plot, the tokenizer trade-off, a summary figure.

Every function takes means (and optionally stds) tables, index = method key, columns = metric
keys (``EvaluationResults.means()`` / ``.stds()``, or ``paper.paper_means()`` for the paper's
numbers), returns a matplotlib Figure, and never decides where files go: ``save_figure`` writes
PNG and SVG side by side.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .paper import CROSS_TASK, METHOD_LABELS, TABLE2_ROWS, TABLE3_ROWS, TASK_SPECIFIC, TOKENIZER_LABELS
from .pareto import pareto_frontier

PARETO_METHODS = TASK_SPECIFIC + CROSS_TASK
#: One colour per method, the same in every figure. Multi-task (the paper's answer) gets a dark
#: red that no other method comes close to; grey is left for the frontier and the baselines.
_CB, _DARK = sns.color_palette("colorblind", 10), sns.color_palette("dark", 10)
METHOD_COLOURS = {
    "content": _CB[0], "search": _CB[1], "rec": _CB[2], "multitask": _DARK[3], "separate": _CB[4],
    "prefix_share": _CB[5], "fused_concat": _CB[6], "fused_svd": _CB[8],
    "multitask_dict": _CB[9], "multitask_rlfq": _DARK[4], "multitask_rqvae": _DARK[0],
}
_MARKERS = {"task-specific": "o", "cross-task": "s", "tokenizer": "D"}


def _family(method: str) -> str:
    if method in TASK_SPECIFIC:
        return "task-specific"
    return "cross-task" if method in CROSS_TASK else "tokenizer"


def save_figure(fig: plt.Figure, folder: str | Path, stem: str, dpi: int = 150) -> list[Path]:
    """Write ``<stem>.png`` and ``<stem>.svg`` into ``folder``; returns both paths.

    The same figure gives the same bytes on every run: the SVG carries no date and its element ids
    come from a fixed salt (matplotlib draws them at random otherwise), so two runs of the study can
    be compared file by file (``python -m helpers.artifact_diff``).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.png", folder / f"{stem}.svg"]
    fig.savefig(paths[0], dpi=dpi, bbox_inches="tight")
    with plt.rc_context({"svg.hashsalt": stem}):
        fig.savefig(paths[1], bbox_inches="tight", metadata={"Date": None})
    return paths


def draw_tradeoff(ax: plt.Axes, means: pd.DataFrame, stds: pd.DataFrame | None = None,
                  methods: Sequence[str] = PARETO_METHODS, labels: dict | None = None,
                  x: str = "search_all", y: str = "rec_all", frontier: bool = True,
                  marker: str | None = None, at_least: tuple[float, float] = (0.0, 0.0)) -> pd.DataFrame:
    """Scatter ``methods`` on (x, y) with std error bars and their Pareto frontier; returns the frontier.

    The marker says the family (circle: task-specific, square: cross-task) unless ``marker`` is given;
    the axes reach at least ``at_least`` (x, y), e.g. to keep baseline lines in view.
    """
    labels = labels or METHOD_LABELS
    present = [m for m in methods if m in means.index and np.isfinite(means.loc[m, [x, y]].astype(float)).all()]
    points = means.loc[present, [x, y]].astype(float)
    for method in present:
        xerr = yerr = None
        if stds is not None and method in stds.index:
            xerr = np.nan_to_num(float(stds.loc[method, x])) or None
            yerr = np.nan_to_num(float(stds.loc[method, y])) or None
        ax.errorbar(points.loc[method, x], points.loc[method, y], xerr=xerr, yerr=yerr,
                    fmt=marker or _MARKERS[_family(method)], color=METHOD_COLOURS.get(method), markersize=8,
                    capsize=3, label=labels.get(method, method), zorder=3)
    front = pareto_frontier(points, x, y) if len(points) else points
    if frontier and len(front):
        ax.plot(front[x], front[y], "--", color="grey", linewidth=1, zorder=2, label="Pareto frontier")
        ax.scatter(front[x], front[y], s=180, facecolors="none", edgecolors="grey", zorder=2)
    ax.set_xlabel("Search Recall@K")
    ax.set_ylabel("Recommendation Recall@K")
    # headroom on the right and top so the labels of the best points stay inside the axes
    top = points.max() if len(points) else pd.Series({x: 1.0, y: 1.0})
    ax.set_xlim(0, max(float(top[x]) * 1.25, at_least[0] * 1.1, 1e-3))
    ax.set_ylim(0, max(float(top[y]) * 1.15, at_least[1] * 1.1, 1e-3))
    ax.grid(True, alpha=0.3)
    _place_labels(ax, points, [labels.get(m, m) for m in points.index], x, y)
    return front


#: Where a label may go relative to its point (offset in points, horizontal alignment).
_LABEL_SPOTS = [((6, 4), "left"), ((6, -11), "left"), ((-6, 4), "right"), ((-6, -11), "right"),
                ((6, 14), "left"), ((-6, 14), "right"), ((6, -21), "left"), ((-6, -21), "right")]


def _place_labels(ax: plt.Axes, points: pd.DataFrame, texts: list[str], x: str, y: str) -> None:
    """Annotate each point at the first candidate spot whose box does not overlap a placed label.

    Boxes are estimated from the font size (about 0.6 em per character), which is enough to keep
    neighbouring method names legible without an extra dependency such as adjustText.
    """
    fig = ax.figure
    scale = fig.dpi / 72.0
    fontsize = 8
    # every marker is an obstacle too, so a label never covers a neighbouring point
    marker = 5 * scale
    placed: list[tuple[float, float, float, float]] = [
        (px - marker, py - marker, px + marker, py + marker)
        for px, py in (ax.transData.transform((r[x], r[y])) for _, r in points.iterrows())]
    for (_, row), text in zip(points.iterrows(), texts):
        px, py = ax.transData.transform((row[x], row[y]))
        width, height = 0.6 * fontsize * len(text) * scale, fontsize * scale
        choice = _LABEL_SPOTS[0]
        for (dx, dy), align in _LABEL_SPOTS:
            left = px + dx * scale - (width if align == "right" else 0)
            bottom = py + dy * scale
            box = (left, bottom, left + width, bottom + height)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                choice = ((dx, dy), align)
                placed.append(box)
                break
        else:
            (dx, dy), align = choice
            left = px + dx * scale - (width if align == "right" else 0)
            placed.append((left, py + dy * scale, left + width, py + dy * scale + height))
        (dx, dy), align = choice
        ax.annotate(text, (row[x], row[y]), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                    ha=align)


def pareto_plot(means: pd.DataFrame, stds: pd.DataFrame | None = None, baselines: pd.DataFrame | None = None,
                k: int = 30, title: str | None = None) -> plt.Figure:
    """Search vs recommendation Recall@K per construction, frontier drawn, marker = family.

    ``baselines`` (``EvaluationResults.means("baseline")``) adds the random, most-popular and
    lexical levels as reference lines, so a reader sees whether a point beats them. A lexical
    level far right of every point is written at the right edge instead of stretching the axis.
    """
    fig, ax = plt.subplots(figsize=(7, 5.5))
    at_least = (0.0, 0.0)
    if baselines is not None:  # keep every reference line in view, even one beyond all generative points
        levels = baselines.reindex(["random", "most_popular"]).astype(float)
        at_least = (float(np.nan_to_num(levels.loc["random", "search_all"])),
                    float(np.nan_to_num(levels["rec_all"].max())))
    draw_tradeoff(ax, means, stds, at_least=at_least)
    if baselines is not None:
        if "most_popular" in baselines.index and np.isfinite(baselines.loc["most_popular", "rec_all"]):
            ax.axhline(baselines.loc["most_popular", "rec_all"], color="black", linestyle=":", linewidth=1,
                       label="Most popular (rec)")
        if "random" in baselines.index:
            ax.axhline(baselines.loc["random", "rec_all"], color="red", linestyle=":", linewidth=1, label="Random (rec)")
            ax.axvline(baselines.loc["random", "search_all"], color="red", linestyle="-.", linewidth=1,
                       label="Random (search)")
        if "lexical" in baselines.index and np.isfinite(baselines.loc["lexical", "search_all"]):
            lexical = float(baselines.loc["lexical", "search_all"])
            if lexical <= ax.get_xlim()[1]:
                ax.axvline(lexical, color="black", linestyle="-.", linewidth=1, label="Lexical (search)")
            else:
                ax.annotate(f"Lexical search: {lexical:.3f} \u2192", xy=(0.99, 0.02), xycoords="axes fraction",
                            ha="right", va="bottom", fontsize=8)
    ax.set_xlabel(f"Search Recall@{k}")
    ax.set_ylabel(f"Recommendation Recall@{k}")
    handles = [plt.Line2D([], [], marker=_MARKERS[f], linestyle="", color="dimgrey", label=f.capitalize())
               for f in ("task-specific", "cross-task")]
    ax.legend(handles=handles + [h for h, l in zip(*ax.get_legend_handles_labels())
                                 if l in ("Pareto frontier", "Most popular (rec)", "Random (rec)", "Random (search)",
                                          "Lexical (search)")],
              loc="best", fontsize=8)
    ax.set_title(title or f"Search vs recommendation Recall@{k}, one joint generative model per Semantic ID construction",
                 fontsize=10, wrap=True)
    fig.tight_layout()
    return fig


def tokenizer_plot(means: pd.DataFrame, stds: pd.DataFrame | None = None, paper_means: pd.DataFrame | None = None,
                   k: int = 30) -> plt.Figure:
    """The trade-off across tokenizers on the Multi-task space: ours and, if given, the paper's."""
    panels = [("This study", means, stds)] + ([("Paper (MovieLens-25M)", paper_means, None)]
                                              if paper_means is not None else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 5), squeeze=False)
    for ax, (name, table, spread) in zip(axes[0], panels):
        draw_tradeoff(ax, table, spread, methods=TABLE3_ROWS, labels=TOKENIZER_LABELS, marker="D")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(f"Search Recall@{k}")
        ax.set_ylabel(f"Recommendation Recall@{k}")
    fig.suptitle("Tokenizers on the Multi-task embeddings: search vs recommendation", fontsize=11)
    fig.tight_layout()
    return fig


def relative_to_best(means: pd.DataFrame, methods: Sequence[str], metrics=("search_all", "rec_all")) -> pd.DataFrame:
    """Each method's recall divided by the best method's recall on that metric (1.0 = best)."""
    rows = [m for m in methods if m in means.index]
    table = means.loc[rows, list(metrics)].astype(float)
    return table / table.max().replace(0, np.nan)


def summary_figure(means: pd.DataFrame, paper_means: pd.DataFrame, methods: Sequence[str] = ("content",) + TABLE2_ROWS,
                   k: int = 30) -> plt.Figure:
    """One picture for readers: per task, each construction's share of the best, ours beside the paper's.

    Shares make a 1,682-item study and the paper's 62k-item one comparable: a method that keeps
    a high share on *both* panels is a good joint construction.
    """
    ours = relative_to_best(means, methods)
    theirs = relative_to_best(paper_means, methods)
    order = [m for m in methods if m in ours.index or m in theirs.index]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.5 * len(order) + 2), sharey=True)
    positions = np.arange(len(order))[::-1]
    for ax, metric, task in zip(axes, ("search_all", "rec_all"), ("Search", "Recommendation")):
        ours_values = ours[metric].reindex(order).to_numpy(float)
        paper_values = theirs[metric].reindex(order).to_numpy(float)
        for y_pos, a, b in zip(positions, ours_values, paper_values):
            if np.isfinite(a) and np.isfinite(b):
                ax.plot([a, b], [y_pos, y_pos], color="lightgrey", zorder=1)
        ax.scatter(ours_values, positions, color=[METHOD_COLOURS.get(m) for m in order], s=70, zorder=3,
                   label="This study")
        ax.scatter(paper_values, positions, facecolors="none", edgecolors="black", marker="D", s=50, zorder=2,
                   label="Paper")
        ax.set_title(f"{task}: share of the best construction's Recall@{k}", fontsize=10)
        ax.set_xlim(-0.02, 1.08)
        ax.axvline(1.0, color="grey", linewidth=0.8, linestyle=":")
        ax.grid(True, axis="x", alpha=0.3)
    axes[0].set_yticks(positions)
    axes[0].set_yticklabels([METHOD_LABELS.get(m, m) for m in order])
    proxies = [plt.Line2D([], [], marker="o", linestyle="", color="dimgrey", markersize=8, label="This study (colour = method)"),
               plt.Line2D([], [], marker="D", linestyle="", markerfacecolor="none", markeredgecolor="black",
                          label="Paper (MovieLens-25M)")]
    fig.legend(handles=proxies, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle("Which Semantic IDs serve both tasks? A construction near 1.0 on both panels is a good joint choice.",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 1))  # room for the legend below the panels
    return fig
