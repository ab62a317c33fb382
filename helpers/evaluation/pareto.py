"""The Pareto frontier of (search recall, rec recall) points: the constructions no other beats on both.

A point dominates another when it is at least as good on both tasks and strictly better on one.
The frontier is every non-dominated point; identical points do not dominate each other, so both
stay on it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of an ``(n, 2)`` array (both columns maximised).

    Rows with a NaN coordinate are never on the frontier and never dominate.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (n, 2), got {points.shape}.")
    valid = np.isfinite(points).all(axis=1)
    on_frontier = valid.copy()
    for i in np.flatnonzero(valid):
        others = points[valid]
        dominated = np.any(np.all(others >= points[i], axis=1) & np.any(others > points[i], axis=1))
        on_frontier[i] = not dominated
    return on_frontier


def pareto_frontier(table: pd.DataFrame, x: str = "search_all", y: str = "rec_all") -> pd.DataFrame:
    """The rows of ``table`` on the frontier of columns ``x`` and ``y``, sorted by ``x`` ascending.

    Sorted this way, consecutive rows are the frontier's corners, ready to be drawn as a staircase
    (``plt.step(..., where="post")`` after reversing, or as a polyline).
    """
    mask = pareto_mask(table[[x, y]].to_numpy())
    return table[mask].sort_values([x, y], ascending=[True, False])


def staircase(frontier: pd.DataFrame, x: str = "search_all", y: str = "rec_all") -> tuple[np.ndarray, np.ndarray]:
    """x, y coordinates of the frontier's staircase: the region it encloses is what is achievable."""
    xs, ys = frontier[x].to_numpy(float), frontier[y].to_numpy(float)
    if len(xs) == 0:
        return xs, ys
    step_x, step_y = [0.0], [ys[0]]
    for i in range(len(xs)):
        step_x += [xs[i], xs[i]]
        step_y += [ys[i], ys[i + 1] if i + 1 < len(xs) else 0.0]
    return np.array(step_x), np.array(step_y)
