"""SparseENMF (helpers/embeddings/enmf.py) against RecBole 1.2.1's ENMF: same loss, same gradients.

The data: 30 users with train histories of 2 to 19 of 40 items (random), so RecBole's padded
history matrix has padding in most rows; RecBole's ENMF batches are user ids, each once per
epoch, the padding user 0 included.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("recbole")

from helpers.data.dataset import Dataset  # noqa: E402
from helpers.data.synthetic import make_synthetic_dataset  # noqa: E402
from helpers.embeddings.enmf import (  # noqa: E402
    build_enmf,
    prepare_recbole,
    quiet_recbole,
    sparse_enmf_class,
    train_enmf,
)

N_USERS, N_ITEMS, DIM = 30, 40, 8
PARAMS = {"epochs": 2, "batch_size": 8, "dim": DIM, "lr": 0.01}
RTOL = 1e-5


def _random_dataset(n_users: int = N_USERS, n_items: int = N_ITEMS, seed: int = 0) -> Dataset:
    """Users with 4 to 21 random distinct items each; the last two are valid and test."""
    base = make_synthetic_dataset(n_items=n_items, n_users=n_users)
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        chosen = rng.choice(n_items, size=int(rng.integers(4, 22)), replace=False)
        rows += [(user, int(item), 4.0, 1_000_000 + user * 1000 + pos) for pos, item in enumerate(chosen)]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    inter["rating"] = inter["rating"].astype(np.float32)
    last = inter.groupby("user_id").cumcount(ascending=False)
    inter["split"] = np.where(last == 0, "test", np.where(last == 1, "valid", "train"))
    ds = Dataset(items=base.items, interactions=inter, queries=base.queries)
    ds.check()
    return ds


@pytest.fixture(scope="module")
def recbole_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("enmf")
    with quiet_recbole(folder):
        config, _rb_dataset, train_data = prepare_recbole(_random_dataset(), PARAMS, folder, 0, "cpu")
    return config, train_data


def _models(recbole_data, implementation: str):
    """RecBole's ENMF and ``implementation``, both built right after seeding with the same seed."""
    from recbole.utils import init_seed

    config, train_data = recbole_data
    init_seed(0, True)
    theirs = build_enmf(config, train_data._dataset, "recbole")
    init_seed(0, True)
    ours = build_enmf(config, train_data._dataset, implementation)
    return theirs, ours


def _batches(train_data):
    return list(train_data)


def _loss_and_grads(model, interaction, seed: int):
    model.train()
    model.zero_grad()
    torch.manual_seed(seed)  # the same dropout mask for both models
    loss = model.calculate_loss(interaction)
    loss.backward()
    return loss.detach(), {name: p.grad.detach().clone() for name, p in model.named_parameters()}


def _assert_close(ours: torch.Tensor, theirs: torch.Tensor, what: str) -> None:
    """Relative to the size of RecBole's value: |ours - theirs| <= 1e-5 |theirs| (norms for tensors)."""
    diff, scale = float((ours - theirs).norm()), float(theirs.norm())
    assert diff <= RTOL * scale, f"{what}: |diff| {diff:.3g} vs |recbole| {scale:.3g}"


def _assert_same_loss(theirs, ours, train_data) -> int:
    checked = 0
    for step, interaction in enumerate(_batches(train_data)):
        loss_t, grads_t = _loss_and_grads(theirs, interaction, seed=step)
        loss_o, grads_o = _loss_and_grads(ours, interaction, seed=step)
        _assert_close(loss_o, loss_t, f"loss, batch {step}")
        for name in grads_t:
            _assert_close(grads_o[name], grads_t[name], f"grad {name}, batch {step}")
        checked += 1
    return checked


def test_data_has_padding_and_batches_of_users(recbole_data):
    _config, train_data = recbole_data
    matrix, _values, lengths = train_data._dataset.history_item_matrix()
    real = lengths[1:]
    assert real.min() < real.max(), "every history as long as the longest: no padding to test"
    users = torch.cat([batch["user_id"] for batch in _batches(train_data)])
    assert torch.equal(torch.sort(users).values, torch.arange(N_USERS + 1)), "each user id once, 0 too"
    assert len(_batches(train_data)) >= 2


def test_same_seed_same_initial_weights(recbole_data):
    theirs, ours = _models(recbole_data, "sparse-recbole-padding")
    for (name, p_t), (_, p_o) in zip(theirs.named_parameters(), ours.named_parameters()):
        assert torch.equal(p_t, p_o), name
    theirs, ours = _models(recbole_data, "sparse")
    assert torch.equal(ours.item_embedding.weight[1:], theirs.item_embedding.weight[1:])
    assert torch.equal(ours.user_embedding.weight[1:], theirs.user_embedding.weight[1:])
    assert torch.equal(ours.H_i.weight, theirs.H_i.weight)
    assert not ours.item_embedding.weight[0].any(), "our padding item starts at zero"
    assert not ours.user_embedding.weight[0].any(), "our padding user starts at zero"


def test_recbole_padding_row_is_a_random_positive(recbole_data):
    """RecBole re-initialises the padding rows after nn.Embedding zeroed them, and scores item 0."""
    theirs, _ours = _models(recbole_data, "sparse")
    assert theirs.item_embedding.weight[0].abs().min() > 0
    assert theirs.user_embedding.weight[0].abs().min() > 0
    user = _batches(recbole_data[1])[0]["user_id"]
    theirs.eval()
    padded = theirs.history_item_matrix[user] == 0
    assert padded.any()
    assert (theirs.forward(user)[padded] != 0).all(), "padded slots score h . (u * e_0), not 0"


def test_batch_history_is_the_unpadded_history_matrix(recbole_data):
    theirs, ours = _models(recbole_data, "sparse")
    assert not hasattr(ours, "history_item_matrix"), "no dense users x longest-history matrix"
    matrix = theirs.history_item_matrix  # same seed: same shuffle, so the same order in each row
    for interaction in _batches(recbole_data[1]):
        user = interaction["user_id"]
        rows, items = ours.batch_history(user)
        dense = matrix[user]
        expected_rows, cols = torch.nonzero(dense, as_tuple=True)
        assert torch.equal(rows, expected_rows)
        assert torch.equal(items, dense[expected_rows, cols])


def test_recbole_padding_mode_equals_recbole(recbole_data):
    """Loss and every gradient equal RecBole's, padding row random as RecBole leaves it."""
    theirs, ours = _models(recbole_data, "sparse-recbole-padding")
    assert _assert_same_loss(theirs, ours, recbole_data[1]) >= 2


def test_sparse_equals_recbole_when_the_padding_rows_are_zero(recbole_data):
    """With e_0 = u_0 = 0 RecBole's padding adds nothing: our default then equals RecBole."""
    theirs, ours = _models(recbole_data, "sparse")
    with torch.no_grad():
        theirs.item_embedding.weight[0].zero_()
        theirs.user_embedding.weight[0].zero_()
    ours.load_state_dict(theirs.state_dict())
    assert _assert_same_loss(theirs, ours, recbole_data[1]) >= 2


def test_sparse_differs_from_recbole_by_the_padding_terms(recbole_data):
    """With RecBole's random padding rows the difference is exactly: item 0 as a positive of every
    padded slot, item 0 as an item and user 0 as a user in the all-pairs term."""
    theirs, ours = _models(recbole_data, "sparse")
    ours.load_state_dict(theirs.state_dict())  # our rows 0 become RecBole's random ones, unused
    w = theirs.negative_weight
    e0, h = theirs.item_embedding.weight[0].detach(), theirs.H_i.weight.detach()[0]
    items = theirs.item_embedding.weight.detach()[1:]
    padding = torch.as_tensor(theirs.history_item_matrix.shape[1] - theirs.history_lens, dtype=torch.float32)
    theirs.eval(), ours.eval()  # no dropout: p_b = q_b
    hh = torch.outer(h, h)
    with torch.no_grad():
        for interaction in _batches(recbole_data[1]):
            user = interaction["user_id"]
            q = theirs.user_embedding(user)
            s0 = (q * h) @ e0
            as_positive = torch.sum(padding[user] * ((1 - w) * s0**2 - 2 * s0))
            as_item = w * torch.sum(torch.outer(e0, e0) * (q.t() @ q) * hh)
            q0 = q[user == 0]
            as_user = w * torch.sum((items.t() @ items) * (q0.t() @ q0) * hh)
            diff = theirs.calculate_loss(interaction) - ours.calculate_loss(interaction)
            assert abs(float(as_positive)) > 1e-3
            _assert_close(diff, as_positive + as_item + as_user, "RecBole - ours")


def test_our_padding_rows_stay_zero_under_adam(recbole_data):
    _theirs, ours = _models(recbole_data, "sparse")
    optimiser = torch.optim.Adam(ours.parameters(), lr=0.01)
    for step, interaction in enumerate(_batches(recbole_data[1]) * 3):
        _loss_and_grads(ours, interaction, seed=step)
        optimiser.step()
    assert ours.item_embedding.weight[1:].abs().sum() > 0
    assert not ours.item_embedding.weight[0].any() and not ours.user_embedding.weight[0].any()


def test_trainer_recbole_padding_mode_matches_recbole():
    """Through RecBole's trainer (2 epochs): the RecBole-padding mode gives RecBole's vectors and
    losses; the padding fix changes them."""
    ds = _random_dataset()
    runs = {impl: train_enmf(ds, {**PARAMS, "implementation": impl}, seed=0, device="cpu")
            for impl in ("recbole", "sparse-recbole-padding", "sparse")}
    ref, same = runs["recbole"], runs["sparse-recbole-padding"]
    np.testing.assert_allclose(same.train_loss, ref.train_loss, rtol=RTOL)
    for field in ("item_vectors", "user_vectors", "h_weights"):
        a, b = getattr(same, field), getattr(ref, field)
        assert np.linalg.norm(a - b) <= RTOL * np.linalg.norm(b), field
    assert not np.allclose(runs["sparse"].item_vectors, ref.item_vectors), "padding fix changes training"


def test_default_is_sparse(recbole_data):
    from helpers.embeddings import enmf

    config, train_data = recbole_data
    assert enmf.DEFAULT_IMPLEMENTATION == "sparse"
    assert isinstance(build_enmf(config, train_data._dataset), sparse_enmf_class())
    assert enmf.SparseENMF is sparse_enmf_class()
