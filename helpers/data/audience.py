"""Audience facts: what the *train* interactions say about an item, as short phrases.

ml-100k has no plot or tag text, so besides title, year and genres an item is described by
crowd-derived facts, in the spirit of MovieLens' tag genome: how well it is rated, how widely it
is watched, and which raters (age, gender, occupation from ``ml-100k.user``) over-index on it.
Only ``split == "train"`` rows are used, so no valid/test interaction leaks into item text.

Each fact is ``(kind, value)``: ``("rating", "high"|"low")``, ``("popularity", "hit"|"obscure")``,
``("audience", <group>)`` where group is an age band, a gender or an occupation.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

#: Lift over the catalogue-wide share a group needs before an item counts as "popular with" it.
MIN_LIFT = 1.6
#: Fewer train raters than this and no audience or rating fact is claimed.
MIN_RATERS = 8

_AGE_BANDS = [(0, 25, "younger viewers"), (45, 200, "older viewers")]
_OCCUPATIONS = {
    "administrator": "administrators", "artist": "artists", "doctor": "doctors", "educator": "teachers",
    "engineer": "engineers", "entertainment": "people in show business", "executive": "executives",
    "healthcare": "healthcare workers", "homemaker": "homemakers", "lawyer": "lawyers",
    "librarian": "librarians", "marketing": "marketers", "programmer": "programmers",
    "retired": "retirees", "salesman": "salespeople", "scientist": "scientists",
    "student": "students", "technician": "technicians", "writer": "writers",
}


def audience_facts(n_items: int, train: pd.DataFrame, users: pd.DataFrame) -> list[list[tuple[str, str]]]:
    """Per item_id, a list of (kind, value) facts; ``train`` has user_id, item_id, rating.

    ``users`` is aligned to user_id (row i = user i) with age, gender, occupation (may be empty).
    """
    facts: list[list[tuple[str, str]]] = [[] for _ in range(n_items)]
    counts = np.bincount(train["item_id"], minlength=n_items)
    seen = counts[counts > 0]
    if len(seen) == 0:
        return facts
    hit_cut, obscure_cut = np.quantile(seen, 0.9), np.quantile(seen, 0.2)
    global_mean = float(train["rating"].mean())
    sums = np.bincount(train["item_id"], weights=train["rating"], minlength=n_items)
    shrunk = (sums + 10 * global_mean) / (counts + 10)  # Bayesian mean: few ratings stay near the mean
    groups = _user_groups(users)
    for item in range(n_items):
        if counts[item] >= hit_cut:
            facts[item].append(("popularity", "hit"))
        elif 0 < counts[item] <= obscure_cut:
            facts[item].append(("popularity", "obscure"))
        if counts[item] >= MIN_RATERS:
            if shrunk[item] >= global_mean + 0.45:
                facts[item].append(("rating", "high"))
            elif shrunk[item] <= global_mean - 0.6:
                facts[item].append(("rating", "low"))
    if groups is None:
        return facts
    per_rating = groups.iloc[train["user_id"].to_numpy()].reset_index(drop=True)
    base = per_rating.mean(axis=0)  # share of all train ratings given by each group
    item_share = per_rating.groupby(train["item_id"].to_numpy()).mean()
    for item, row in item_share.iterrows():
        if counts[item] < MIN_RATERS:
            continue
        lift = (row / base.replace(0, np.nan)).dropna()
        lift = lift[(lift >= MIN_LIFT) & (row[lift.index] * counts[item] >= 4)]
        for group in lift.sort_values(ascending=False).index[:2]:
            facts[item].append(("audience", group))
    return facts


def _user_groups(users: pd.DataFrame) -> pd.DataFrame | None:
    """One-hot audience groups per user (row = user_id), or None without demographics."""
    if users is None or users.empty or users["age"].isna().all():
        return None
    cols = {}
    for low, high, name in _AGE_BANDS:
        cols[name] = ((users["age"] >= low) & (users["age"] < high)).astype(float)
    cols["women"] = (users["gender"] == "F").astype(float)
    for occupation, name in _OCCUPATIONS.items():
        cols[name] = (users["occupation"] == occupation).astype(float)
    return pd.DataFrame(cols).reset_index(drop=True)


FACT_TEXT = {
    ("popularity", "hit"): "a widely watched hit",
    ("popularity", "obscure"): "a little-known title",
    ("rating", "high"): "rated highly by viewers",
    ("rating", "low"): "rated poorly by viewers",
}


def fact_sentences(facts: list[tuple[str, str]]) -> list[str]:
    """Canonical phrases for the item text (the query generator paraphrases them separately)."""
    out = []
    for kind, value in facts:
        out.append(FACT_TEXT.get((kind, value), f"popular with {value}" if kind == "audience" else f"{kind}: {value}"))
    return out
