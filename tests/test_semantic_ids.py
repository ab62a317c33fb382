"""Unit tests of stage 03 (Semantic IDs) on small synthetic matrices; seconds in total.

Following FAISS's own tests, they assert relations (error falls as levels are added, codes equal a
numpy reference) rather than pinned numbers.
"""
from __future__ import annotations

import numpy as np
import pytest

from helpers import registry
from helpers.errors import MissingArtifactError, ProfileError, StudyError
from helpers.semantic_ids import collisions, diagnostics, quantizers, schemes, tokens
from helpers.semantic_ids.ids import SemanticIds, split_tokens
from helpers.semantic_ids.quantizers import (
    QUANTIZERS,
    EmbeddingMatrixError,
    LfqAutoencoder,
    PrefixShareVae,
    RqVae,
    SemanticIdConfigError,
    get_quantizer,
    quantizer_settings,
)
from helpers.semantic_ids.schemes import build_ids, used_params

#: Each quantizer's settings for unit tests: the keys of the profile's semantic_ids.quantizers.<name>.
FAST_KWARGS = {
    "rq_kmeans": {"beam_size": 1, "train_type": "progressive_dim", "niter": 10, "train_sample": None, "threads": 1},
    "dict": {"max_iter": 2, "alpha": 1.0},
    "rlfq": {"epochs": 5, "batch_size": 64, "lr": 1e-2, "entropy_loss_weight": 0.1, "commitment_weight": 0.25},
    "rqvae": {"epochs": 5, "batch_size": 64, "lr": 1e-3, "hidden_dim": 32, "latent_dim": 8,
              "commitment_weight": 0.25},
}
#: Enough epochs for the neural quantizers to learn the small mixtures below (seconds each).
TRAINED = {"rlfq": {"epochs": 30}, "rqvae": {"epochs": 30}}


def _params(codebook_size: int = 8, n_levels: int = 2, seed: int = 0, shared_levels: int = 1,
           **quantizer_changes) -> dict:
    """A ``semantic_ids`` section in the profile layout, sized for unit tests.

    ``quantizer_changes`` update one quantizer's section, e.g. ``_params(rqvae={"epochs": 2})``.
    """
    unknown = set(quantizer_changes) - set(FAST_KWARGS)
    assert not unknown, unknown
    return {"n_levels": n_levels, "codebook_size": codebook_size, "seed": seed,
            "quantizers": {name: {**kwargs, **quantizer_changes.get(name, {})} for name, kwargs in FAST_KWARGS.items()},
            "schemes": {"prefix_share": {"shared_levels": shared_levels}}}


@pytest.fixture
def sid_params():
    """The factory of ``semantic_ids`` sections in the profile layout (see :func:`_params`)."""
    return _params


def mixture(n: int = 240, dim: int = 16, n_clusters: int = 6, seed: int = 0, spread: float = 0.3):
    """Gaussian mixture and each point's cluster (used as its 'genre')."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim)) * 3
    labels = rng.integers(0, n_clusters, n)
    X = centres[labels] + spread * rng.standard_normal((n, dim))
    return X.astype(np.float32), labels


def relative_error(X, q, codes) -> float:
    return diagnostics.relative_reconstruction_error(X, q.decode(codes))


# ---- names and settings -----------------------------------------------------------------------
def test_quantizers_and_schemes_are_the_registry_s():
    assert tuple(QUANTIZERS) == registry.QUANTIZERS
    assert schemes.SCHEMES == registry.SCHEMES and tuple(schemes.SCHEME_INPUTS) == registry.SCHEMES
    assert not hasattr(quantizers, "DISPLAY_NAMES")  # display names live in the registry
    assert all(name in registry.QUANTIZER_NAMES for name in QUANTIZERS)
    assert all(QUANTIZERS[name].name == name for name in QUANTIZERS)


@pytest.mark.parametrize("profile", ["ml100k", "smoke", "paper"])
def test_profile_quantizer_sections_are_the_quantizers_keyword_arguments(profile):
    from helpers.config import load_profile

    section = load_profile(profile)["semantic_ids"]
    assert tuple(section["quantizers"]) == registry.QUANTIZERS
    for name, kwargs in section["quantizers"].items():
        assert set(kwargs) <= set(quantizer_settings(name)), (name, sorted(kwargs))
        get_quantizer(name, section["n_levels"], section["codebook_size"], section["seed"], **kwargs)
    assert set(section["schemes"]["prefix_share"]) == {"shared_levels"}


def test_rlfq_takes_no_architecture_it_does_not_have():
    assert {"hidden_dim", "latent_dim"} <= set(quantizer_settings("rqvae"))
    assert not {"hidden_dim", "latent_dim"} & set(quantizer_settings("rlfq"))
    with pytest.raises(SemanticIdConfigError, match="no setting hidden_dim.*semantic_ids.quantizers.rlfq"):
        get_quantizer("rlfq", 2, 8, hidden_dim=32)
    with pytest.raises(SemanticIdConfigError, match="no setting rq_beam_size"):
        get_quantizer("rq_kmeans", 2, 8, rq_beam_size=1)


def test_flat_profile_layout_is_refused_with_the_new_key_names(sid_params):
    flat = {"n_levels": 2, "codebook_size": 8, "seed": 0, "rq_beam_size": 1, "train": {"epochs": 5}}
    X, _ = mixture(n=60, dim=4)
    with pytest.raises(SemanticIdConfigError, match="semantic_ids.quantizers.rq_kmeans"):
        build_ids("x", "shared", "rq_kmeans", {"shared": X}, flat)
    no_scheme = sid_params()
    del no_scheme["schemes"]
    with pytest.raises(SemanticIdConfigError, match="schemes.prefix_share.shared_levels"):
        build_ids("x", "prefix_share", "rqvae", {"search": X, "rec": X}, no_scheme)


def test_a_construction_uses_only_its_own_quantizer_s_settings(sid_params):
    X, _ = mixture(n=120, dim=8)
    full = sid_params(dict={"max_iter": 3}, rqvae={"epochs": 2})
    used = used_params(full, "shared", "rq_kmeans")
    assert used == {"n_levels": 2, "codebook_size": 8, "seed": 0, "quantizers": {"rq_kmeans": FAST_KWARGS["rq_kmeans"]}}
    # another quantizer's settings do not reach it; its own do
    assert used_params(sid_params(dict={"max_iter": 9}), "shared", "rq_kmeans") == used
    assert used_params(sid_params(rq_kmeans={"niter": 11}), "shared", "rq_kmeans") != used
    prefix = used_params(full, "prefix_share", "rqvae")
    assert set(prefix["quantizers"]) == {"rqvae"} and prefix["schemes"] == {"prefix_share": {"shared_levels": 1}}
    assert used_params(full, "separate", "dict")["quantizers"] == {"dict": {**FAST_KWARGS["dict"], "max_iter": 3}}
    # the subset gives the same IDs as the whole section
    a = build_ids("x", "shared", "rq_kmeans", {"shared": X}, full)
    b = build_ids("x", "shared", "rq_kmeans", {"shared": X}, used)
    np.testing.assert_array_equal(a.codes["shared"], b.codes["shared"])


def test_docstring_examples_run():
    import doctest

    for module in (quantizers, schemes):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, (module.__name__, result)


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


def test_rq_kmeans_larger_beam_encodes_with_lower_error():
    """FAISS's beam search keeps the greedy path among its candidates, so on the same codebooks a wider
    beam can only lower each item's error (two levels), and lowers the mean on unstructured data."""
    X = np.random.default_rng(0).standard_normal((1000, 16)).astype(np.float32)
    q = get_quantizer("rq_kmeans", 2, 16, seed=0, beam_size=1, threads=1).fit(X)
    greedy = q.encode(X)
    q.beam_size = 8
    beam = q.encode(X)
    per_item = {name: ((X - q.decode(codes)) ** 2).sum(1) for name, codes in (("greedy", greedy), ("beam", beam))}
    assert (per_item["beam"] <= per_item["greedy"] + 1e-4).all()
    assert per_item["beam"].mean() < 0.995 * per_item["greedy"].mean()
    assert (beam != greedy).any(axis=1).mean() > 0.05


@pytest.mark.parametrize("name", sorted(QUANTIZERS))
def test_codes_reproduce_for_a_fixed_seed(name):
    X, _ = mixture(n=160, dim=12)
    first = get_quantizer(name, 2, 8, seed=3, **FAST_KWARGS[name]).fit_encode(X)
    second = get_quantizer(name, 2, 8, seed=3, **FAST_KWARGS[name]).fit_encode(X)
    other_seed = get_quantizer(name, 2, 8, seed=4, **FAST_KWARGS[name]).fit_encode(X)
    assert first.shape == (len(X), 2) and first.dtype == np.int64
    assert first.min() >= 0 and first.max() < 8
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other_seed)  # the seed is really used


@pytest.mark.parametrize("name", sorted(QUANTIZERS))
def test_every_quantizer_s_codes_carry_its_items(name):
    """Decoding an item's own codes must beat the mean vector and beat decoding another item's codes."""
    X, _ = mixture(n=320, dim=12, n_clusters=16)
    q = get_quantizer(name, 2, 8, seed=0, **{**FAST_KWARGS[name], **TRAINED.get(name, {})})
    codes = q.fit_encode(X)
    X_hat = q.decode(codes)
    assert X_hat.shape == X.shape and X_hat.dtype == np.float32 and np.isfinite(X_hat).all()
    own = diagnostics.relative_reconstruction_error(X, X_hat)
    shuffled = relative_error(X, q, codes[np.random.default_rng(0).permutation(len(X))])
    assert own < 0.8  # the mean vector scores 1.0
    assert own < 0.5 * shuffled


@pytest.mark.parametrize("name", sorted(QUANTIZERS))
def test_codebooks_are_used_on_clustered_data(name):
    """16 well-separated clusters onto 8 codes: no quantizer may collapse onto a few codes."""
    X, _ = mixture(n=320, dim=12, n_clusters=16)
    codes = get_quantizer(name, 2, 8, seed=0, **FAST_KWARGS[name]).fit_encode(X)
    utilisation = diagnostics.level_utilisation(codes, 8)
    assert min(utilisation) >= 0.75, utilisation
    assert diagnostics.level_perplexity(codes, 8)[0] > 4  # not one dominant code


def test_rq_kmeans_reconstructs_clustered_data_best():
    """K-means centroids are the optimum for clustered data at a given code budget: RQ-KMeans's error
    is below every other quantizer's, even trained ones."""
    X, _ = mixture(n=320, dim=12, n_clusters=16)
    errors = {}
    for name in QUANTIZERS:
        q = get_quantizer(name, 2, 8, seed=0, **{**FAST_KWARGS[name], **TRAINED.get(name, {})})
        errors[name] = relative_error(X, q, q.fit_encode(X))
    assert all(errors["rq_kmeans"] < 0.6 * errors[name] for name in ("dict", "rlfq", "rqvae")), errors


@pytest.mark.parametrize("name", ["rlfq", "rqvae"])
def test_neural_quantizers_learn_with_training(name):
    X, _ = mixture(n=320, dim=12, n_clusters=16)
    short = get_quantizer(name, 2, 8, seed=0, **{**FAST_KWARGS[name], "epochs": 2})
    long = get_quantizer(name, 2, 8, seed=0, **{**FAST_KWARGS[name], "epochs": 30})
    short_error = relative_error(X, short, short.fit_encode(X))
    long_error = relative_error(X, long, long.fit_encode(X))
    assert long_error < 0.8 * short_error
    history = long.settings.history
    assert len(history) == 30 and history[-1] < 0.5 * history[0]


# ---- the neural models as nn.Modules --------------------------------------------------------------
def _value(tensor) -> float:
    return float(tensor.detach())


def _grad_size(module) -> float:
    """Sum of |gradient| of the first Linear layer inside ``module`` (0 when no gradient reached it)."""
    import torch

    linear = module if isinstance(module, torch.nn.Linear) else next(
        m for m in module.modules() if isinstance(m, torch.nn.Linear))
    return 0.0 if linear.weight.grad is None else float(linear.weight.grad.abs().sum())


def test_rqvae_module_forward_shapes_ranges_and_gradients():
    import torch

    torch.manual_seed(0)
    model = RqVae(input_dim=12, n_levels=3, codebook_size=8, hidden_dim=16, latent_dim=4)
    x = torch.randn(50, 12)
    out = model(x)
    assert out.codes.shape == (50, 3) and out.codes.dtype == torch.int64
    assert 0 <= int(out.codes.min()) and int(out.codes.max()) < 8
    assert out.reconstruction.shape == x.shape
    losses = out.losses
    assert all(t.ndim == 0 and torch.isfinite(t) and _value(t) >= 0 for t in losses)
    assert _value(losses.reconstruction) == pytest.approx(_value(((out.reconstruction - x) ** 2).mean()), rel=1e-5)
    assert _value(losses.total) == pytest.approx(_value(losses.reconstruction + losses.commitment), rel=1e-6)
    assert _value(losses.commitment) > 0
    losses.total.backward()
    for part in (model.encoder, model.decoder):
        assert _grad_size(part) > 0  # the straight-through estimator reaches the encoder
    model.zero_grad()
    model(x).losses.commitment.backward()  # the commitment loss alone trains the encoder
    assert _grad_size(model.encoder) > 0
    with torch.no_grad():
        model.eval()
        decoded = model.decode(out.codes)
    assert decoded.shape == x.shape


def test_lfq_module_forward_shapes_ranges_and_gradients():
    import torch

    torch.manual_seed(0)
    model = LfqAutoencoder(input_dim=12, n_levels=2, codebook_size=16)
    x = torch.randn(50, 12)
    out = model(x)
    assert out.codes.shape == (50, 2) and out.codes.dtype == torch.int64
    assert 0 <= int(out.codes.min()) and int(out.codes.max()) < 16
    assert out.reconstruction.shape == x.shape
    assert all(t.ndim == 0 and torch.isfinite(t) for t in out.losses)
    assert _value(out.losses.reconstruction) >= 0
    assert _value(out.losses.total) == pytest.approx(_value(out.losses.reconstruction + out.losses.aux), rel=1e-6)
    out.losses.total.backward()
    project_in = model.quantizer.project_in
    assert project_in.weight.shape == (4, 12)  # log2(16) bits per level
    assert _grad_size(project_in) > 0 and _grad_size(model.quantizer.project_out) > 0
    with torch.no_grad():
        model.eval()
        np.testing.assert_allclose(model.decode(out.codes).numpy(), model(x).reconstruction.numpy(),
                                   rtol=1e-5, atol=1e-5)


def test_prefix_share_module_forward_shapes_ranges_and_gradients():
    import torch

    torch.manual_seed(0)
    model = PrefixShareVae(search_dim=12, rec_dim=5, shared_levels=1, task_levels=2, codebook_size=8,
                           hidden_dim=16, latent_dim=4)
    xs, xr = torch.randn(50, 12), torch.randn(50, 5)
    out = model(xs, xr)
    assert {p: tuple(c.shape) for p, c in out.codes.items()} == {"shared": (50, 1), "search": (50, 2), "rec": (50, 2)}
    assert all(c.dtype == torch.int64 and 0 <= int(c.min()) and int(c.max()) < 8 for c in out.codes.values())
    assert out.reconstruction["search"].shape == xs.shape and out.reconstruction["rec"].shape == xr.shape
    losses = out.losses
    assert all(t.ndim == 0 and torch.isfinite(t) and _value(t) >= 0 for t in losses)
    assert _value(losses.total) == pytest.approx(
        _value(losses.commitment + losses.search_reconstruction + losses.rec_reconstruction), rel=1e-6)
    losses.total.backward()
    assert _grad_size(model.trunk) > 0
    assert all(_grad_size(model.heads[p]) > 0 for p in ("shared", "search", "rec"))
    # the search loss reaches the shared and search heads but not the rec head
    model.zero_grad()
    model(xs, xr).losses.search_reconstruction.backward()
    assert _grad_size(model.heads["shared"]) > 0 and _grad_size(model.heads["search"]) > 0
    assert _grad_size(model.heads["rec"]) == 0


@pytest.mark.parametrize("name", ["rlfq", "rqvae"])
def test_neural_quantizers_wrap_their_modules(name):
    X, _ = mixture(n=160, dim=12)
    q = get_quantizer(name, 2, 8, seed=0, **FAST_KWARGS[name]).fit(X)
    assert isinstance(q.model, {"rlfq": LfqAutoencoder, "rqvae": RqVae}[name])
    assert not q.model.training  # left in eval mode after training


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
    assert stats["items_over_unique"] == pytest.approx(1 - 3 / 6)
    assert stats["collision_rate"] > stats["items_over_unique"]  # 5 items collide, 3 codes fewer than items
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
def test_shared_scheme_ids_are_unique_fixed_length_and_in_the_vocabulary(sid_params):
    X, labels = mixture(n=200, dim=12)
    ids = build_ids("toy", "shared", "rq_kmeans", {"shared": X}, sid_params(codebook_size=4),
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


def test_separate_scheme_never_mixes_vocabularies(sid_params):
    Xs, labels = mixture(n=150, dim=12, seed=1)
    Xr, _ = mixture(n=150, dim=6, seed=2)
    ids = build_ids("sep", "separate", "rq_kmeans", {"search": Xs, "rec": Xr}, sid_params(codebook_size=4))
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


def test_prefix_share_yields_shared_then_task_tokens(sid_params):
    Xs, labels = mixture(n=150, dim=12, seed=1)
    Xr, _ = mixture(n=150, dim=6, seed=2)
    ids = build_ids("ps", "prefix_share", "rqvae", {"search": Xs, "rec": Xr},
                    sid_params(codebook_size=4, rqvae=TRAINED["rqvae"]), genres=[f"g{c}" for c in labels])
    assert set(ids.codes) == {"shared", "search", "rec"}
    for s_tokens, r_tokens, shared_code in zip(ids.search_tokens, ids.rec_tokens, ids.codes["shared"][:, 0]):
        assert s_tokens[0] == r_tokens[0] == f"<a_{shared_code}>"  # one shared, untagged prefix
        assert all(t.startswith("<s_") for t in s_tokens[1:])
        assert all(t.startswith("<r_") for t in r_tokens[1:])
    # 150 items on 4 x 4 code tuples must collide: shared + task level + a disambiguation token
    assert ids.id_length("search") == ids.id_length("rec") == 3
    for task in ("search", "rec"):
        assert len({tuple(t) for t in ids.tokens(task)}) == ids.n_items
    assert {t for t in ids.vocabulary if not t.startswith(("<s_", "<r_"))} == {f"<a_{c}>" for c in range(4)}
    parts = ids.diagnostics["parts"]
    assert min(parts["shared"]["utilisation"]) == 1.0  # every shared code is someone's prefix
    for task in ("search", "rec"):  # both decoders beat the mean vector from the codes alone
        assert parts[task]["relative_reconstruction_error"] < 0.9, parts[task]


def test_prefix_share_trains_with_the_rqvae_settings(sid_params):
    Xs, _ = mixture(n=120, dim=8, seed=1)
    Xr, _ = mixture(n=120, dim=5, seed=2)

    def final_loss(section):
        ids = build_ids("ps", "prefix_share", "rqvae", {"search": Xs, "rec": Xr}, section)
        return ids.diagnostics["parts"]["shared"]["final_train_loss"]

    base = final_loss(sid_params(codebook_size=4))
    assert final_loss(sid_params(codebook_size=4, rlfq={"epochs": 1}, dict={"max_iter": 1})) == base
    assert final_loss(sid_params(codebook_size=4, rqvae={"epochs": 15})) < base  # more epochs: lower loss
    with pytest.raises(SemanticIdConfigError, match="shared_levels < n_levels"):
        build_ids("ps", "prefix_share", "rqvae", {"search": Xs, "rec": Xr}, sid_params(shared_levels=2))


def test_semantic_ids_save_and_load_round_trip(tmp_path, sid_params):
    X, labels = mixture(n=120, dim=8)
    ids = build_ids("toy", "shared", "dict", {"shared": X}, sid_params(), genres=[f"g{c}" for c in labels])
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
def test_bad_embeddings_raise_study_errors_that_say_what_to_do(sid_params):
    X, _ = mixture(n=50, dim=4)
    X_nan = X.copy()
    X_nan[3, 1] = np.nan
    with pytest.raises(EmbeddingMatrixError, match="NaN"):
        get_quantizer("rq_kmeans", 2, 4).fit(X_nan)
    with pytest.raises(EmbeddingMatrixError, match="2-D"):
        get_quantizer("rq_kmeans", 2, 4).fit(X[:, 0])
    with pytest.raises(EmbeddingMatrixError, match="rows"):  # search and rec of different catalogues
        build_ids("sep", "separate", "rq_kmeans", {"search": X, "rec": X[:40]}, sid_params(codebook_size=4))
    with pytest.raises(SemanticIdConfigError, match="codebook_size <= 50"):
        get_quantizer("rq_kmeans", 2, 64).fit(X)
    assert issubclass(EmbeddingMatrixError, StudyError) and issubclass(SemanticIdConfigError, StudyError)


def test_unknown_quantizer_or_scheme_lists_the_valid_ones(sid_params):
    X, _ = mixture(n=50, dim=4)
    with pytest.raises(SemanticIdConfigError, match="rq_kmeans, dict, rlfq, rqvae"):
        get_quantizer("kmeans++", 2, 4)
    with pytest.raises(SemanticIdConfigError, match="shared, separate, prefix_share"):
        build_ids("x", "interleaved", "rq_kmeans", {"shared": X}, sid_params())
    with pytest.raises(SemanticIdConfigError, match="quantizer: rqvae"):
        build_ids("x", "prefix_share", "dict", {"search": X, "rec": X}, sid_params())
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
        "codebook_size": 4, "quantizers": {name: dict(kwargs) for name, kwargs in FAST_KWARGS.items()},
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
    with pytest.raises(ProfileError, match="This profile defines"):  # the registry's check
        construction_spec(cfg, "nonexistent")
    assert construction_spec(cfg, "separate")["spaces"] == {"search": "search", "rec": "rec"}


def test_stage_cache_key_covers_only_the_construction_s_own_quantizer(toy_stage):
    from helpers.config import load_profile
    from helpers.semantic_ids.stage import semantic_ids_dir

    cfg, _ = toy_stage
    other_dict = load_profile("smoke", {"semantic_ids": {**{k: cfg["semantic_ids"][k] for k in
                                                            ("codebook_size", "constructions", "quantizers")},
                                                         "quantizers": {**cfg["semantic_ids"]["quantizers"],
                                                                        "dict": {"max_iter": 5}}}})
    other_rq = load_profile("smoke", {"semantic_ids": {
        "codebook_size": 4, "constructions": cfg["semantic_ids"]["constructions"],
        "quantizers": {**cfg["semantic_ids"]["quantizers"], "rq_kmeans": {**FAST_KWARGS["rq_kmeans"], "niter": 11}}}})
    assert semantic_ids_dir(other_dict, "multitask") == semantic_ids_dir(cfg, "multitask")  # dict is not its
    assert semantic_ids_dir(other_rq, "multitask") != semantic_ids_dir(cfg, "multitask")


def test_faiss_thread_setting_is_used_inside_and_restored_after(monkeypatch):
    import faiss

    original = faiss.omp_get_max_threads()
    seen = []
    fit = quantizers.RQKMeansQuantizer._fit
    monkeypatch.setattr(quantizers.RQKMeansQuantizer, "_fit",
                        lambda self, X: (seen.append(faiss.omp_get_max_threads()), fit(self, X)))
    X, _ = mixture(n=100, dim=8)
    try:
        faiss.omp_set_num_threads(3)  # a setting that differs from the quantizer's
        get_quantizer("rq_kmeans", 2, 8, threads=1).fit_encode(X)
        assert seen == [1] and faiss.omp_get_max_threads() == 3
        get_quantizer("rq_kmeans", 2, 8, threads=None).fit(X)  # None leaves FAISS's setting
        assert seen == [1, 3] and faiss.omp_get_max_threads() == 3
    finally:
        faiss.omp_set_num_threads(original)


def test_neural_quantizers_run_torch_on_one_thread_and_restore_it(monkeypatch):
    import torch

    original = torch.get_num_threads()
    seen = []
    fit = quantizers.RQVAEQuantizer._fit
    monkeypatch.setattr(quantizers.RQVAEQuantizer, "_fit",
                        lambda self, X: (seen.append(torch.get_num_threads()), fit(self, X)))
    X, _ = mixture(n=100, dim=8)
    try:
        torch.set_num_threads(2)
        get_quantizer("rqvae", 2, 8, **{**FAST_KWARGS["rqvae"], "epochs": 1}).fit(X)
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(original)
