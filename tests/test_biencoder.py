"""Stage 02's bi-encoder training settings for the paper's scale: the cached (GradCache) loss,
bf16 only where it helps, and the profile keys that choose them.

Everything runs on a tiny randomly initialised BERT (one layer, 32 dims) with MiniLM's tokenizer,
so a training run takes seconds on CPU.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import embeddings  # noqa: F401  (sets OMP_WAIT_POLICY before torch does work)
from helpers.config import documented_types, load_profile
from helpers.embeddings import biencoder
from helpers.errors import ProfileError

WORDS = ["apple", "river", "castle", "winter", "garden", "pirate", "rocket", "violin", "desert", "forest",
         "island", "dragon", "mirror", "engine", "candle", "bridge", "harbor", "jungle", "planet", "thunder",
         "silver", "shadow", "circus", "meadow", "canyon", "glacier", "lantern", "compass", "orchard", "volcano",
         "tunnel", "falcon"]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A one-layer BERT with MiniLM's tokenizer, saved as a Hugging Face folder."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from helpers.embeddings.models import resolve_model_path

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("minilm"))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_model(folder):
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    model = SentenceTransformer(str(folder), device="cpu")  # a plain HF folder: mean pooling is added
    model.max_seq_length = 16
    return model


def pairs(n: int = len(WORDS)) -> pd.DataFrame:
    return pd.DataFrame({"anchor": [f"find the {w}" for w in WORDS[:n]],
                         "positive": [f"a story of the {w}" for w in WORDS[:n]]})


def _loss_and_grads(model, loss, batch: pd.DataFrame):
    model.zero_grad()
    features = [model.tokenize(batch["anchor"].tolist()), model.tokenize(batch["positive"].tolist())]
    value = loss(features, None)
    value.backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    return float(value.detach()), grads


def test_cached_loss_equals_the_plain_loss_and_its_gradients_on_one_batch(tiny_model_dir):
    model = tiny_model(tiny_model_dir)
    model.eval()  # no dropout, so both losses see the same embeddings
    batch = pairs(12)
    plain = biencoder.make_loss(model, {"loss": "mnrl"})
    cached = biencoder.make_loss(model, {"loss": "cached_mnrl", "mini_batch_size": 5})  # 5 + 5 + 2 texts
    assert type(plain).__name__ == "MultipleNegativesRankingLoss"
    assert type(cached).__name__ == "CachedMultipleNegativesRankingLoss" and cached.mini_batch_size == 5
    plain_value, plain_grads = _loss_and_grads(model, plain, batch)
    cached_value, cached_grads = _loss_and_grads(model, cached, batch)
    assert plain_value > 0
    assert cached_value == pytest.approx(plain_value, rel=1e-5)
    assert set(cached_grads) == set(plain_grads) and plain_grads
    for name, grad in plain_grads.items():
        torch.testing.assert_close(cached_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def _train(folder, sets: dict, **params):
    model = tiny_model(folder)
    base = {"epochs": 6, "batch_size": 8, "lr": 2e-3, "warmup": 0.0}
    return biencoder.fine_tune(model, sets, {**base, **params}, seed=0)


def test_cached_loss_trains_the_loss_down_in_fp32_on_cpu(tiny_model_dir):
    card = _train(tiny_model_dir, {"search": pairs()}, loss="cached_mnrl", mini_batch_size=3)
    losses = card["step_losses"]
    assert card["steps"] == len(losses) == 6 * len(WORDS) // 8
    assert np.mean(losses[-4:]) < 0.8 * np.mean(losses[:4]), losses
    assert card["loss"] == "CachedMultipleNegativesRankingLoss" and card["mini_batch_size"] == 3
    assert card["bf16"] is (torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def test_cached_loss_serves_both_multitask_datasets(tiny_model_dir):
    items = pairs()
    cooccurring = pd.DataFrame({"anchor": items["positive"], "positive": items["positive"].iloc[::-1].to_numpy()})
    card = _train(tiny_model_dir, {"search": items, "cooccurrence": cooccurring}, epochs=1, loss="cached_mnrl",
                  mini_batch_size=4)
    assert card["loss"].startswith("CachedMultipleNegativesRankingLoss per task")
    assert card["pairs"] == {"search": len(WORDS), "cooccurrence": len(WORDS)} and card["steps"] == 8


def test_plain_loss_is_the_default_and_records_no_mini_batch(tiny_model_dir):
    card = _train(tiny_model_dir, {"search": pairs(16)}, epochs=1)
    assert card["loss"] == "MultipleNegativesRankingLoss" and card["mini_batch_size"] is None


def test_bf16_is_off_on_cpu_and_on_gpus_without_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert biencoder.resolve_bf16("auto") is False
    assert biencoder.resolve_bf16(False) is False
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert biencoder.resolve_bf16("auto") is False  # e.g. a V100
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert biencoder.resolve_bf16("auto") is True
    assert biencoder.resolve_bf16(False) is False
    with pytest.raises(ProfileError, match="bf16 must be auto, true or false"):
        biencoder.resolve_bf16("yes")


def test_profiles_choose_the_loss_and_validate():
    types = documented_types()
    for space in ("search", "multitask"):
        assert types[f"embeddings.{space}.loss"] == "str"
        assert types[f"embeddings.{space}.mini_batch_size"] == "int"
        assert types[f"embeddings.{space}.bf16"] == "str|bool"
    for name in ("ml100k", "smoke"):  # the default keeps the loss the committed results were built with
        emb = load_profile(name)["embeddings"]
        assert emb["search"]["loss"] == emb["multitask"]["loss"] == "mnrl"
    paper = load_profile("paper")["embeddings"]
    for space in ("search", "multitask"):
        params = paper[space]
        assert params["loss"] == "cached_mnrl" and params["batch_size"] == 512 and params["bf16"] == "auto"
        assert 1 <= params["mini_batch_size"] < params["batch_size"]
        biencoder.check_training_params(params)
    assert paper["search"]["max_pairs"] is None
    assert paper["multitask"]["max_pairs"] == 10 * 62_423  # every query pair, as many co-occurrence pairs
    with pytest.raises(ProfileError, match="mini_batch_size must be of type int"):
        load_profile("smoke", {"embeddings": {"search": {"mini_batch_size": "many"}}})
    with pytest.raises(ProfileError, match="bf16 must be of type str or bool"):
        load_profile("smoke", {"embeddings": {"multitask": {"bf16": 1}}})


@pytest.mark.parametrize("params, message", [
    ({"loss": "infonce"}, "loss must be one of mnrl, cached_mnrl"),
    ({"loss": "cached_mnrl", "mini_batch_size": 0}, "mini_batch_size must be an integer >= 1"),
    ({"bf16": "maybe"}, "bf16 must be auto, true or false"),
])
def test_bad_training_settings_are_refused_before_training(params, message):
    with pytest.raises(ProfileError, match=message):
        biencoder.check_training_params(params)
