"""Unit tests of stage 03 (Semantic IDs) on small synthetic matrices; seconds in total.

Following FAISS's own tests, they assert relations (error falls as levels are added, codes equal a
numpy reference) rather than pinned numbers.
"""
from __future__ import annotations

import numpy as np
import pytest

from helpers.errors import MissingArtifactError, StudyError
from helpers.semantic_ids import collisions, diagnostics, tokens
from helpers.semantic_ids.ids import SemanticIds, split_tokens
from helpers.semantic_ids.quantizers import (
    QUANTIZERS,
    EmbeddingMatrixError,
    SemanticIdConfigError,
    get_quantizer,
)
from helpers.semantic_ids.schemes import build_ids

FAST_TRAIN = {"epochs": 5, "batch_size": 64, "lr": 1e-3, "hidden_dim": 32, "latent_dim": 8,
              "commitment_weight": 0.25}
FAST_KWARGS = {
    "rq_kmeans": {"beam_size": 1, "threads": 1},
    "dict": {"max_iter": 2},
    "rlfq": FAST_TRAIN,
    "rqvae": FAST_TRAIN,
}


def params(**changes) -> dict:
    """A ``semantic_ids`` section sized for unit tests."""
    base = {"n_levels": 2, "codebook_size": 8, "seed": 0, "rq_beam_size": 1, "rq_train_type": "progressive_dim",
            "rq_niter": 10, "rq_train_sample": None, "rq_threads": 1, "dict_max_iter": 2, "dict_alpha": 1.0, "rlfq_entropy_weight": 0.1, "rlfq_lr": 1e-2,
            "prefix_share_shared_levels": 1, "train": dict(FAST_TRAIN)}
    base.update(changes)
    return base


def mixture(n: int = 240, dim: int = 16, n_clusters: int = 6, seed: int = 0, spread: float = 0.3):
    """Gaussian mixture and each point's cluster (used as its 'genre')."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim)) * 3
    labels = rng.integers(0, n_clusters, n)
    X = centres[labels] + spread * rng.standard_normal((n, dim))
    return X.astype(np.float32), labels


# ---- quantizers -------------------------------------------------------------------------------
def test_rq_kmeans_error_falls_as_levels_are_added():
    X, _ = mixture(n=400, dim=16, n_clusters=12)
    errors = []
    for levels in (1, 2, 3):
        q = get_quantizer("rq_kmeans", levels, 16, seed=0, beam_size=1, threads=1)
        errors.append(diagnostics.relative_reconstruction_error(X, q.decode(q.fit_encode(X))))
    assert errors[0] > errors[1] > errors[2]
    assert errors[0] < 1.0  # better than the mean vector


@pytest.mark.parametrize("codebook_size", [8, 64, 256, 512])
def test_rq_kmeans_unpacks_bit_packed_codes(codebook_size):
    """With nbits != 8 FAISS packs several levels into a byte; the unpacked codes must equal a numpy
    greedy residual assignment against FAISS's own centroids, and decode must add those centroids."""
    import faiss

    X, _ = mixture(n=max(2 * codebook_size, 200), dim=8, n_clusters=10)
    q = get_quantizer("rq_kmeans", 2, codebook_size, seed=0, beam_size=1, threads=1).fit(X)
    codes = q.encode(X)
    assert codes.shape == (len(X), 2) and codes.min() >= 0 and codes.max() < codebook_size
    assert codes[:, 0].max() >= 128 or codebook_size <= 128  # large codebooks really use the high bits
    centroids = q.codebooks()
    residual = X.astype(np.float64)
    for level in range(2):
        dist = ((residual[:, None, :] - centroids[level][None]) ** 2).sum(-1)
        reference = dist.argmin(1)
        # equal up to float ties: where they differ, both centroids are equally close
        differs = reference != codes[:, level]
        assert differs.mean() < 0.01
        residual = residual - centroids[level][codes[:, level]]
    expected = centroids[0][codes[:, 0]] + centroids[1][codes[:, 1]]
    np.testing.assert_allclose(q.decode(codes), expected, rtol=1e-4, atol=1e-4)
    # packing the unpacked codes again gives FAISS's bytes back
    packed = faiss.pack_bitstrings(codes.astype(np.int32), int(np.log2(codebook_size)))
    np.testing.assert_array_equal(packed, q.packed_codes(X))


def test_rq_kmeans_trained_on_a_sample_still_encodes_every_item():
    X, _ = mixture(n=400, dim=8, n_clusters=10)
    full = get_quantizer("rq_kmeans", 2, 8, seed=0, beam_size=1, threads=1)
    sampled = get_quantizer("rq_kmeans", 2, 8, seed=0, beam_size=1, threads=1, train_sample=100)
    codes = sampled.fit_encode(X)
    assert codes.shape == (400, 2)
    full_error = diagnostics.relative_reconstruction_error(X, full.decode(full.fit_encode(X)))
    sampled_error = diagnostics.relative_reconstruction_error(X, sampled.decode(codes))
    assert sampled_error < 1.5 * full_error  # a sample learns the codebooks nearly as well
    with pytest.raises(SemanticIdConfigError, match="at least the codebook size"):
        get_quantizer("rq_kmeans", 2, 8, train_sample=4)


def test_rq_kmeans_handles_fewer_items_than_dimensions():
    """FAISS's progressive-dim PCA needs n >= d; the quantizer rotates into the items' span instead."""
    X, _ = mixture(n=60, dim=100, n_clusters=5)
    q = get_quantizer("rq_kmeans", 2, 8, seed=0, beam_size=1, threads=1).fit(X)
    codes = q.encode(X)
    X_hat = q.decode(codes)
    assert X_hat.shape == X.shape
    assert diagnostics.relative_reconstruction_error(X, X_hat) < 1.0
    centroids = q.codebooks()
    np.testing.assert_allclose(X_hat, centroids[0][codes[:, 0]] + centroids[1][codes[:, 1]], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", sorted(QUANTIZERS))
def test_codes_reproduce_for_a_fixed_seed(name):
    X, _ = mixture(n=160, dim=12)
    first = get_quantizer(name, 2, 8, seed=3, **FAST_KWARGS[name]).fit_encode(X)
    second = get_quantizer(name, 2, 8, seed=3, **FAST_KWARGS[name]).fit_encode(X)
    assert first.shape == (len(X), 2) and first.dtype == np.int64
    assert first.min() >= 0 and first.max() < 8
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("name", sorted(QUANTIZERS))
def test_every_quantizer_decodes_to_the_input_space(name):
    X, _ = mixture(n=160, dim=12)
    q = get_quantizer(name, 2, 8, seed=0, **FAST_KWARGS[name])
    X_hat = q.decode(q.fit_encode(X))
    assert X_hat.shape == X.shape and np.isfinite(X_hat).all()


def test_rqvae_and_rq_kmeans_beat_the_mean_vector():
    X, _ = mixture(n=300, dim=12)
    for name in ("rq_kmeans", "rqvae"):
        kwargs = {**FAST_KWARGS[name], **({"epochs": 30} if name == "rqvae" else {})}
        q = get_quantizer(name, 2, 8, seed=0, **kwargs)
        assert diagnostics.relative_reconstruction_error(X, q.decode(q.fit_encode(X))) < 1.0


def test_dictionary_codes_rank_atoms_by_coefficient():
    X, _ = mixture(n=200, dim=12)
    q = get_quantizer("dict", 3, 16, seed=0, max_iter=2).fit(X)
    codes = q.encode(X)
    coefs = np.abs(q.sparse_codes(X))
    assert all(len(set(row)) == 3 for row in codes.tolist())  # an item never repeats an atom
    picked = np.take_along_axis(coefs, codes, axis=1)
    assert (np.diff(picked, axis=1) <= 1e-12).all()  # level 0 holds the largest |coefficient|
    np.testing.assert_array_equal(codes[:, 0], coefs.argmax(1))


# ---- collisions and tokens ----------------------------------------------------------------------
def test_disambiguation_makes_every_id_unique_and_equally_long():
    codes = np.array([[1, 2], [1, 2], [3, 4], [1, 2], [3, 4], [0, 0]])
    unique = collisions.disambiguate(codes)
    assert unique.shape == (6, 3)
    assert len({tuple(r) for r in unique}) == 6
    np.testing.assert_array_equal(unique[:, :2], codes)  # the codes themselves are kept
    np.testing.assert_array_equal(unique[:, 2], [0, 1, 0, 2, 1, 0])  # rank in item order
    stats = collisions.collision_stats(codes)
    assert stats["n_unique_codes"] == 3 and stats["max_items_per_code"] == 3
    assert stats["collision_rate"] == pytest.approx(5 / 6)
    assert stats["collision_rate"] >= stats["items_over_unique"]
    no_collision = np.array([[0, 1], [1, 0]])
    assert collisions.disambiguate(no_collision).shape == (2, 2)
    assert collisions.collision_stats(no_collision)["collision_rate"] == 0.0


def test_tokens_are_level_prefixed_and_round_trip():
    rows = tokens.codes_to_tokens(np.array([[12, 34, 3]]))
    assert "".join(rows[0]) == "<a_12><b_34><c_3>"
    assert split_tokens("<a_12><b_34><c_3>") == rows[0]
    assert tokens.codes_to_tokens(np.array([[12, 3]]), ["", "s_"])[0] == ["<a_12>", "<s_b_3>"]
    assert tokens.level_vocabulary(1, 3, "r_") == ["<r_b_0>", "<r_b_1>", "<r_b_2>"]


# ---- schemes ------------------------------------------------------------------------------------
def test_shared_scheme_ids_are_unique_fixed_length_and_in_the_vocabulary():
    X, labels = mixture(n=200, dim=12)
    ids = build_ids("toy", "shared", "rq_kmeans", {"shared": X}, params(codebook_size=4),
                    genres=[f"g{c}" for c in labels])
    assert ids.diagnostics["collision_rate"] > 0  # 200 items on 16 slots must collide
    assert ids.id_length("search") == 3  # two levels plus the disambiguation token
    assert ids.search_tokens == ids.rec_tokens
    assert len({tuple(t) for t in ids.search_tokens}) == ids.n_items
    assert {t for seq in ids.search_tokens for t in seq} <= set(ids.vocabulary)
    assert all(ids.item_of("rec", "".join(t)) == i for i, t in enumerate(ids.rec_tokens))
    assert ids.item_of("search", "<a_0><b_0><c_99999>") is None
    # whole codebooks are in the vocabulary, plus as many disambiguation tokens as the largest group
    largest = ids.diagnostics["tasks"]["search"]["max_items_per_code"]
    assert len(ids.vocabulary) == 2 * 4 + largest


def test_separate_scheme_never_mixes_vocabularies():
    Xs, labels = mixture(n=150, dim=12, seed=1)
    Xr, _ = mixture(n=150, dim=6, seed=2)
    ids = build_ids("sep", "separate", "rq_kmeans", {"search": Xs, "rec": Xr}, params(codebook_size=4))
    search_vocab = {t for seq in ids.search_tokens for t in seq}
    rec_vocab = {t for seq in ids.rec_tokens for t in seq}
    assert all(t.startswith("<s_") for t in search_vocab)
    assert all(t.startswith("<r_") for t in rec_vocab)
    assert not search_vocab & rec_vocab
    vocabulary = set(ids.vocabulary)
    assert {t for t in vocabulary if t.startswith("<s_")} >= search_vocab
    assert all(t.startswith(("<s_", "<r_")) for t in vocabulary)
    assert set(ids.codes) == {"search", "rec"}
    for task in ("search", "rec"):
        assert len({tuple(t) for t in ids.tokens(task)}) == ids.n_items


def test_prefix_share_yields_shared_then_task_tokens():
    Xs, labels = mixture(n=150, dim=12, seed=1)
    Xr, _ = mixture(n=150, dim=6, seed=2)
    ids = build_ids("ps", "prefix_share", "rqvae", {"search": Xs, "rec": Xr}, params(codebook_size=4),
                    genres=[f"g{c}" for c in labels])
    assert set(ids.codes) == {"shared", "search", "rec"}
    for s_tokens, r_tokens, shared_code in zip(ids.search_tokens, ids.rec_tokens, ids.codes["shared"][:, 0]):
        assert s_tokens[0] == r_tokens[0] == f"<a_{shared_code}>"  # one shared, untagged prefix
        assert all(t.startswith("<s_") for t in s_tokens[1:])
        assert all(t.startswith("<r_") for t in r_tokens[1:])
    assert ids.id_length("search") >= 2 and ids.id_length("rec") >= 2
    assert {t for t in ids.vocabulary if not t.startswith(("<s_", "<r_"))} == {f"<a_{c}>" for c in range(4)}
    assert "relative_reconstruction_error" in ids.diagnostics["parts"]["search"]


def test_semantic_ids_save_and_load_round_trip(tmp_path):
    X, labels = mixture(n=120, dim=8)
    ids = build_ids("toy", "shared", "dict", {"shared": X}, params(), genres=[f"g{c}" for c in labels])
    ids.save(tmp_path)
    back = SemanticIds.load(tmp_path)
    assert back.search_tokens == ids.search_tokens and back.vocabulary == ids.vocabulary
    np.testing.assert_array_equal(back.codes["shared"], ids.codes["shared"])
    assert back.diagnostics["parts"]["shared"]["utilisation"] == ids.diagnostics["parts"]["shared"]["utilisation"]


# ---- diagnostics --------------------------------------------------------------------------------
def test_genre_agreement_is_higher_within_first_token_when_clusters_follow_genres():
    X, labels = mixture(n=300, dim=12, n_clusters=6, spread=0.2)
    genres = [f"g{c}|common" if c % 2 else f"g{c}" for c in labels]
    codes = get_quantizer("rq_kmeans", 2, 8, seed=0, beam_size=1, threads=1).fit_encode(X)
    agreement = diagnostics.genre_agreement(codes[:, 0], genres)
    assert agreement["same_first_token"] > agreement["random_pairs"]
    shuffled = diagnostics.genre_agreement(np.random.default_rng(0).permutation(codes[:, 0]), genres)
    assert shuffled["lift"] < agreement["lift"]


def test_utilisation_and_perplexity_bounds():
    uniform = np.arange(64).reshape(-1, 1) % 8
    collapsed = np.zeros((64, 1), dtype=int)
    assert diagnostics.level_perplexity(uniform, 8)[0] == pytest.approx(8.0)
    assert diagnostics.level_perplexity(collapsed, 8)[0] == pytest.approx(1.0)
    assert diagnostics.level_utilisation(uniform, 8)[0] == 1.0
    assert diagnostics.level_utilisation(collapsed, 8)[0] == pytest.approx(1 / 8)


# ---- bad input ----------------------------------------------------------------------------------
def test_bad_embeddings_raise_study_errors_that_say_what_to_do():
    X, _ = mixture(n=50, dim=4)
    X_nan = X.copy()
    X_nan[3, 1] = np.nan
    with pytest.raises(EmbeddingMatrixError, match="NaN"):
        get_quantizer("rq_kmeans", 2, 4).fit(X_nan)
    with pytest.raises(EmbeddingMatrixError, match="2-D"):
        get_quantizer("rq_kmeans", 2, 4).fit(X[:, 0])
    with pytest.raises(EmbeddingMatrixError, match="rows"):  # search and rec of different catalogues
        build_ids("sep", "separate", "rq_kmeans", {"search": X, "rec": X[:40]}, params(codebook_size=4))
    with pytest.raises(SemanticIdConfigError, match="codebook_size <= 50"):
        get_quantizer("rq_kmeans", 2, 64).fit(X)
    assert issubclass(EmbeddingMatrixError, StudyError) and issubclass(SemanticIdConfigError, StudyError)


def test_unknown_quantizer_or_scheme_lists_the_valid_ones():
    X, _ = mixture(n=50, dim=4)
    with pytest.raises(SemanticIdConfigError, match="rq_kmeans, dict, rlfq, rqvae"):
        get_quantizer("kmeans++", 2, 4)
    with pytest.raises(SemanticIdConfigError, match="shared, separate, prefix_share"):
        build_ids("x", "interleaved", "rq_kmeans", {"shared": X}, params())
    with pytest.raises(SemanticIdConfigError, match="quantizer: rqvae"):
        build_ids("x", "prefix_share", "dict", {"search": X, "rec": X}, params())
    with pytest.raises(SemanticIdConfigError, match="power-of-two"):
        get_quantizer("rq_kmeans", 2, 12)


# ---- stage: caching and the missing-artifact message --------------------------------------------
@pytest.fixture
def toy_stage(monkeypatch, tmp_path, synthetic_dataset):
    """The smoke profile with its upstream stages replaced by the synthetic dataset and matrices."""
    from helpers.config import load_profile
    from helpers.data import stage as data_stage
    from helpers.embeddings import stage as embedding_stage

    monkeypatch.setenv("SID_DATA_ROOT", str(tmp_path / "data"))
    rng = np.random.default_rng(0)
    n = synthetic_dataset.n_items
    spaces = {"search": rng.standard_normal((n, 8)), "rec": rng.standard_normal((n, 5)),
              "multitask": rng.standard_normal((n, 8))}
    calls = []

    def fake_build_embedding(cfg, space, force=False):
        calls.append(space)
        return spaces[space].astype(np.float32)

    monkeypatch.setattr(embedding_stage, "build_embedding", fake_build_embedding)
    monkeypatch.setattr(data_stage, "build_dataset", lambda cfg, force=False: synthetic_dataset)
    cfg = load_profile("smoke", {"semantic_ids": {
        "codebook_size": 4, "dict_max_iter": 2, "train": dict(FAST_TRAIN),
        "constructions": {
            "multitask": {"space": "multitask", "quantizer": "rq_kmeans", "scheme": "shared"},
            "separate": {"space": ["search", "rec"], "quantizer": "rq_kmeans", "scheme": "separate"},
            "bad_space": {"space": "multitask", "quantizer": "rq_kmeans", "scheme": "separate"},
        }}})
    return cfg, calls


def test_stage_caches_and_names_the_notebook_when_missing(toy_stage):
    from helpers.semantic_ids.stage import build_semantic_ids, load_semantic_ids, semantic_ids_dir

    cfg, calls = toy_stage
    with pytest.raises(MissingArtifactError, match="03_semantic_ids.ipynb"):
        load_semantic_ids(cfg, "multitask")
    built = build_semantic_ids(cfg, "multitask")
    assert (semantic_ids_dir(cfg, "multitask") / "manifest.json").is_file()
    assert built.diagnostics["spaces"] == {"shared": "multitask"}
    n_calls = len(calls)
    again = build_semantic_ids(cfg, "multitask")  # from the cache: no embedding is read
    assert len(calls) == n_calls and again.search_tokens == built.search_tokens
    assert load_semantic_ids(cfg, "multitask").vocabulary == built.vocabulary
    assert semantic_ids_dir(cfg, "multitask") != semantic_ids_dir(cfg, "separate")


def test_stage_refuses_bad_construction_specs(toy_stage):
    from helpers.semantic_ids.stage import construction_spec

    cfg, _ = toy_stage
    with pytest.raises(SemanticIdConfigError, match=r"\[search_space, rec_space\]"):
        construction_spec(cfg, "bad_space")
    with pytest.raises(SemanticIdConfigError, match="This profile defines"):
        construction_spec(cfg, "nonexistent")
    assert construction_spec(cfg, "separate")["spaces"] == {"search": "search", "rec": "rec"}


def test_faiss_thread_setting_is_restored():
    import faiss

    before = faiss.omp_get_max_threads()
    X, _ = mixture(n=100, dim=8)
    get_quantizer("rq_kmeans", 2, 8, threads=1).fit_encode(X)
    assert faiss.omp_get_max_threads() == before
