"""The synthetic MovieLens-25M-shaped source (helpers.data.scale): loads as MovieLens, has the shape."""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from helpers.config import load_profile
from helpers.data.movielens import load_movielens_csv, load_source
from helpers.data.scale import FILES, GENRES, ML25M, NO_GENRES, make_movielens_scale, write_movielens_scale
from helpers.data.stage import build_dataset


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scale") / "ml-300"
    summary = write_movielens_scale(folder, 300, seed=0)
    return folder, summary


def test_files_load_through_the_movielens_csv_loader(tiny_folder):
    folder, summary = tiny_folder
    assert all((folder / name).is_file() for name in FILES)
    catalogue, interactions, users = load_movielens_csv(folder)
    assert len(catalogue) == 300 and len(interactions) == summary["ratings"] and users.empty
    assert interactions["source_user"].nunique() == summary["users"] == round(300 * ML25M["users"] / ML25M["items"])
    assert set(g for genres in catalogue["genres"] for g in genres) <= set(GENRES)
    assert catalogue["year"].notna().mean() > 0.9
    assert catalogue["themes"].map(len).gt(0).mean() > 0.5  # user tags and genome tags became themes
    assert interactions["rating"].between(0.5, 5.0).all()
    same, *_ = load_source({"source": "movielens_csv", "path": str(folder)})
    pd.testing.assert_frame_equal(same, catalogue)


def test_files_go_through_the_data_stage_with_template_queries(tiny_folder):
    folder, summary = tiny_folder
    cfg = load_profile("ml100k", {"data": {"source": "movielens_csv", "path": str(folder),
                                           "queries": {"generator": "template"}}})
    ds = build_dataset(cfg)
    assert ds.n_items == 300 and ds.n_users == summary["users"]
    assert len(ds.interactions) == summary["ratings"]  # every user has >= 20 ratings: none is dropped
    assert (ds.interactions["split"] == "test").sum() == ds.n_users
    assert len(ds.queries) == 300 * 2 * cfg["data"]["queries"]["per_item"]
    assert ds.items["text"].str.contains("About ").mean() > 0.5


def test_popularity_is_heavy_tailed_and_users_are_shaped_like_movielens():
    n_items = 4000
    data = make_movielens_scale(n_items, seed=0)
    per_item = np.sort(np.bincount(data.ratings["movieId"] - 1, minlength=n_items))[::-1]
    top = per_item[: n_items // 100].sum() / per_item.sum()
    assert top >= 0.10, f"top 1% of items hold only {top:.3f} of the ratings"
    per_user = data.ratings.groupby("userId").size()
    assert per_user.min() >= 20 and 60 <= per_user.median() <= 80 and 130 <= per_user.mean() <= 175
    assert per_user.max() > 5 * per_user.mean()  # a heavy right tail
    assert len(per_user) == round(n_items * ML25M["users"] / ML25M["items"])
    assert not data.ratings.duplicated(["userId", "movieId"]).any()  # one rating per (user, movie)
    assert (data.movies["genres"] == NO_GENRES).mean() < 0.15
    genome_items = data.genome_scores["movieId"].nunique()
    assert genome_items == round(n_items * ML25M["genome_items"] / ML25M["items"])
    assert len(data.genome_scores) == genome_items * ML25M["genome_tags"]
    # the genome covers the most popular items
    popular = set(np.argsort(-np.bincount(data.ratings["movieId"] - 1, minlength=n_items))[:100] + 1)
    assert popular <= set(data.genome_scores["movieId"])


def _digest(folder) -> dict[str, str]:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in FILES}


def test_seeded_determinism(tmp_path, tiny_folder):
    folder, _ = tiny_folder
    again = tmp_path / "again"
    write_movielens_scale(again, 300, seed=0)
    assert _digest(again) == _digest(folder)
    other = make_movielens_scale(300, seed=1)
    first = make_movielens_scale(300, seed=0)
    assert not other.ratings.equals(first.ratings)
    assert not other.movies["title"].equals(first.movies["title"])
