"""Stage 01: loaders, chronological split, queries, bad input."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.config import load_profile
from helpers.data.movielens import display_title, load_movielens_csv, load_source, parse_year
from helpers.data.queries import contains_title, paraphrase_overlap, title_tokens
from helpers.data.stage import build_dataset, dataset_dir, load_dataset
from helpers.errors import DataError, MissingArtifactError, ProfileError


@pytest.fixture(scope="module")
def smoke_dataset():
    return build_dataset(load_profile("smoke"))


def write_movielens_csv(folder: Path, n_users: int = 12, n_movies: int = 9, with_tags: bool = True) -> Path:
    """A tiny MovieLens-25M-format folder: movies, ratings, tags, tag genome."""
    folder.mkdir(parents=True, exist_ok=True)
    genres = ["Comedy|Romance", "Action|Sci-Fi", "Drama", "Horror|Thriller", "Animation|Children", "Western",
              "Crime|Drama", "Documentary", "(no genres listed)"]
    movies = pd.DataFrame({"movieId": range(1, n_movies + 1),
                           "title": [f"Movie Number {i}, The ({1950 + 5 * i})" for i in range(1, n_movies + 1)],
                           "genres": [genres[i % len(genres)] for i in range(n_movies)]})
    movies.loc[0, "title"] = 'Toy Story "Special" (1995)'
    movies.to_csv(folder / "movies.csv", index=False)
    rng = np.random.default_rng(0)
    rows = [(u, int(m), float(rng.integers(1, 6)), 1_000_000 + 10 * u + k)
            for u in range(1, n_users + 1) for k, m in enumerate(rng.choice(np.arange(1, n_movies + 1), 6, replace=False))]
    pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"]).to_csv(folder / "ratings.csv", index=False)
    if with_tags:
        pd.DataFrame({"userId": [1, 2, 3], "movieId": [1, 1, 2], "tag": ["pixar", "pixar", "space"],
                      "timestamp": [1, 2, 3]}).to_csv(folder / "tags.csv", index=False)
        pd.DataFrame({"tagId": [1, 2], "tag": ["toys", "robots"]}).to_csv(folder / "genome-tags.csv", index=False)
        pd.DataFrame({"movieId": [1, 1, 2, 2], "tagId": [1, 2, 1, 2], "relevance": [0.9, 0.1, 0.2, 0.8]}).to_csv(
            folder / "genome-scores.csv", index=False)
    return folder


# ---- loaders ------------------------------------------------------------------------------------
def test_ml100k_loader_reads_the_recbole_files(smoke_dataset):
    cat, inter, users = load_source({"source": "recbole_ml100k"})
    assert len(cat) == 1682 and len(inter) == 100_000 and len(users) == 943
    assert cat.loc[cat.source_id == "1", "title"].item() == "Toy Story"
    assert smoke_dataset.items["text"].str.contains("Genres:").all()


def test_movielens_csv_loader(tmp_path):
    folder = write_movielens_csv(tmp_path / "ml")
    cat, inter, users = load_movielens_csv(folder)
    assert len(cat) == 9 and len(inter) == 12 * 6 and users.empty
    first = cat.iloc[0]
    assert first.year == 1995 and first.genres == ["Comedy", "Romance"]
    assert "pixar" in first.themes and "toys" in first.themes  # user tags and genome tags
    assert cat.iloc[1].title == "The Movie Number 2" and cat.iloc[8].genres == []


def test_movielens_csv_profile_builds_end_to_end(tmp_path):
    folder = write_movielens_csv(tmp_path / "ml")
    cfg = load_profile("smoke", {"name": "csvtest", "data": {"source": "movielens_csv", "path": str(folder),
                                                             "max_users": None, "max_items": None}})
    ds = build_dataset(cfg)
    assert ds.n_items == 9 and ds.n_users == 12
    assert (ds.queries.groupby(["item_id", "split"]).size() == cfg["data"]["queries"]["per_item"]).all()
    assert "pixar" in ds.items.loc[0, "text"]


@pytest.mark.parametrize("broken, message", [
    ("missing_folder", "does not exist"),
    ("missing_ratings", "ratings.csv"),
    ("bad_column", "lacks column"),
    ("non_numeric", "non-numeric"),
])
def test_movielens_csv_bad_input_says_what_to_fix(tmp_path, broken, message):
    folder = write_movielens_csv(tmp_path / "ml")
    if broken == "missing_folder":
        folder = tmp_path / "nowhere"
    elif broken == "missing_ratings":
        (folder / "ratings.csv").unlink()
    elif broken == "bad_column":
        pd.read_csv(folder / "ratings.csv").rename(columns={"rating": "stars"}).to_csv(folder / "ratings.csv", index=False)
    elif broken == "non_numeric":
        r = pd.read_csv(folder / "ratings.csv", dtype=str)
        r.loc[3, "rating"] = "five"
        r.to_csv(folder / "ratings.csv", index=False)
    with pytest.raises(DataError, match=message):
        load_movielens_csv(folder)


def test_unknown_source_and_empty_catalogue_are_refused(tmp_path):
    with pytest.raises(DataError, match="Unknown data.source"):
        load_source({"source": "imdb"})
    folder = write_movielens_csv(tmp_path / "ml")
    pd.DataFrame(columns=["movieId", "title", "genres"]).to_csv(folder / "movies.csv", index=False)
    cfg = load_profile("smoke", {"name": "empty", "data": {"source": "movielens_csv", "path": str(folder)}})
    with pytest.raises(DataError, match="empty"):
        build_dataset(cfg)
    assert not dataset_dir(cfg).exists(), "no partial artifact may be left behind"


def test_lenient_year_and_title_parsing():
    assert parse_year("unkonwn") is None and parse_year("V") is None and parse_year("1995") == 1995
    assert display_title("Shawshank Redemption, The") == "The Shawshank Redemption"


def test_load_before_build_names_notebook_01():
    cfg = load_profile("smoke", {"name": "never-built"})
    with pytest.raises(MissingArtifactError, match="01_data"):
        load_dataset(cfg)


# ---- split --------------------------------------------------------------------------------------
def test_split_is_chronological_with_one_valid_and_test_per_user(smoke_dataset):
    inter = smoke_dataset.interactions
    counts = inter.groupby(["user_id", "split"]).size().unstack(fill_value=0)
    assert (counts["test"] == 1).all() and (counts["valid"] == 1).all() and (counts["train"] >= 1).all()
    for _, rows in inter.groupby("user_id"):
        order = rows["split"].tolist()
        assert order[-1] == "test" and order[-2] == "valid" and set(order[:-2]) == {"train"}
        assert rows["timestamp"].is_monotonic_increasing


def test_split_is_deterministic_under_timestamp_ties():
    a = build_dataset(load_profile("smoke"))
    b = build_dataset(load_profile("smoke"), force=True)
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    pd.testing.assert_frame_equal(a.queries, b.queries)


def test_histories_and_targets_never_include_test_in_train(smoke_dataset):
    ds = smoke_dataset
    test = ds.targets("test")
    train_rows = ds.interactions[ds.interactions.split == "train"]
    test_rows = ds.interactions[ds.interactions.split == "test"]
    merged = train_rows.merge(test_rows, on=["user_id", "item_id", "timestamp"])
    assert merged.empty
    assert len(test) == ds.n_users and len(ds.histories()) == ds.n_users


# ---- queries ------------------------------------------------------------------------------------
def test_queries_follow_the_papers_rules(smoke_dataset):
    ds, per_item = smoke_dataset, load_profile("smoke")["data"]["queries"]["per_item"]
    counts = ds.queries.groupby(["item_id", "split"]).size().unstack()
    assert len(counts) == ds.n_items and (counts["train"] == per_item).all() and (counts["test"] == per_item).all()
    title = dict(zip(ds.items.item_id, ds.items.title))
    assert not any(contains_title(q, title[i]) for q, i in zip(ds.queries.text, ds.queries.item_id))
    train = ds.queries[ds.queries.split == "train"].set_index(["item_id", "pair"]).text
    test = ds.queries[ds.queries.split == "test"].set_index(["item_id", "pair"]).text
    assert (train != test.reindex(train.index)).all(), "a paraphrase must differ from its train query"
    assert train.groupby(level=0).nunique().mean() > 0.9 * per_item, "train queries of an item should vary"


def test_paraphrases_reword_queries_and_name_genres_only_by_default():
    ds = build_dataset(load_profile("ml100k"))
    reworded = build_dataset(load_profile("ml100k", {"data": {"queries": {"paraphrase_genres": "synonym"}}}))
    named, synonyms = paraphrase_overlap(ds.queries), paraphrase_overlap(reworded.queries)
    # naming the genre leaves some words in common; paraphrasing it too leaves almost none
    assert synonyms < named < 0.35, (synonyms, named)
    assert synonyms < 0.1
    assert ds.interactions.equals(reworded.interactions)
    train = ds.queries[ds.queries.split == "train"].text.to_numpy()
    # only paraphrases change (an item whose title clashes with a paraphrase redraws its queries)
    assert (train == reworded.queries[reworded.queries.split == "train"].text.to_numpy()).mean() > 0.95
    # generic queries ("wholesome comedy movie") fit many films, as real ambiguous searches do;
    # measured 36% distinct strings on ml-100k: guard against a collapse of the generator
    assert ds.queries.text.nunique() > 0.25 * len(ds.queries)


def test_unknown_paraphrase_setting_is_refused_before_work():
    with pytest.raises(ProfileError, match="paraphrase_genres"):
        load_profile("smoke", {"data": {"queries": {"paraphrase_genres": "names"}}})


def test_template_queries_are_deterministic_per_seed(smoke_dataset):
    other = build_dataset(load_profile("smoke", {"data": {"queries": {"seed": 1}}}))
    assert (other.queries.text != smoke_dataset.queries.text).mean() > 0.3
    assert other.interactions.equals(smoke_dataset.interactions)


def test_title_tokens_ignore_stop_words():
    assert title_tokens("The Lord of the Rings") == {"lord", "rings"}
    assert contains_title("a film about rings", "The Lord of the Rings")
    assert not contains_title("a fantasy film", "The Lord of the Rings")


def test_item_text_uses_train_interactions_only(monkeypatch):
    """The stage derives audience facts (item text, queries) from train rows alone."""
    import helpers.data.audience as audience

    received = []
    real = audience.audience_facts

    def spy(n_items, rows, users):
        received.append(rows.copy())
        return real(n_items, rows, users)

    monkeypatch.setattr(audience, "audience_facts", spy)
    ds = build_dataset(load_profile("smoke", {"name": "leak-check"}), force=True)
    assert len(received) == 1
    rows = received[0]
    assert set(rows["split"]) == {"train"}
    assert len(rows) == int((ds.interactions["split"] == "train").sum())
