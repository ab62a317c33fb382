"""Why the ml-100k knowledge graph is not used: measure whether its links carry signal.

    python -m helpers.data.kg_check

If the item -> Freebase linking were right, films sharing a director would agree on genre more
than random pairs, and award winners would be rated higher than films without awards.
"""
from __future__ import annotations

import itertools
from collections import Counter, defaultdict

import numpy as np
import pandas as pd

from .movielens import _read, recbole_ml100k_path


def kg_signal_report(seed: int = 0) -> dict:
    folder = recbole_ml100k_path()
    link = _read(folder / "ml-100k.link", ["item_id:token", "entity_id:token"], "\t")
    item_of = dict(zip(link["entity_id:token"], link["item_id:token"]))
    items = _read(folder / "ml-100k.item", ["item_id:token", "movie_title:token_seq", "class:token_seq"], "\t")
    genres = {i: set(g.split()) for i, g in zip(items["item_id:token"], items["class:token_seq"])}
    title = dict(zip(items["item_id:token"], items["movie_title:token_seq"]))
    kg = _read(folder / "ml-100k.kg", ["head_id:token", "relation_id:token", "tail_id:token"], "\t")
    kg = kg[kg["head_id:token"].isin(item_of)]
    holders, tails = defaultdict(set), defaultdict(lambda: defaultdict(set))
    for h, r, t in zip(kg["head_id:token"], kg["relation_id:token"], kg["tail_id:token"]):
        holders[(r, t)].add(item_of[h])
        tails[r][item_of[h]].add(t)

    def jaccard(a, b):
        return len(genres[a] & genres[b]) / max(1, len(genres[a] | genres[b]))

    rng = np.random.default_rng(seed)
    ids = list(genres)
    report = {"random_pairs_genre_jaccard": float(np.mean([jaccard(*rng.choice(ids, 2, replace=False)) for _ in range(5000)]))}
    for rel in ("film.film.directed_by", "film.film.written_by", "film.film.actor"):
        pairs = [p for (r, _), hs in holders.items() if r == rel and len(hs) <= 12 for p in itertools.combinations(sorted(hs), 2)]
        report[f"{rel}_pairs_genre_jaccard"] = float(np.mean([jaccard(a, b) for a, b in pairs]))
    inter = _read(folder / "ml-100k.inter", ["item_id:token", "rating:float"], "\t")
    mean_rating = inter.assign(r=pd.to_numeric(inter["rating:float"])).groupby("item_id:token")["r"].mean()
    won = set(tails["film.film.award_won"])
    report["award_winners_mean_rating"] = float(mean_rating[mean_rating.index.isin(won)].mean())
    report["no_award_mean_rating"] = float(mean_rating[~mean_rating.index.isin(won | set(tails["film.film.award_nomination"]))].mean())
    langs = tails["film.film.language"]
    majority = Counter(t for v in langs.values() for t in v).most_common(1)[0][0]
    report["foreign_language_examples"] = sorted(title[i] for i, v in langs.items() if majority not in v)[:10]
    return report


if __name__ == "__main__":
    for key, value in kg_signal_report().items():
        print(f"{key}: {value}")
