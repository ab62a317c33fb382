"""Tests of helpers.explore (notebook 07): typed queries, users, the ID space, side-by-side
comparisons and their errors. The smoke tests train two tiny smoke-profile models (cached for the
test session); the unit tests need no trained model."""
from __future__ import annotations

import shlex

import numpy as np
import pandas as pd
import pytest
import torch

from helpers.errors import DataError, MissingArtifactError, ProfileError
from helpers.explore import Explorer, id_log_probs, study_command

CONSTRUCTIONS = ("content", "rec")  # the two cheapest to build upstream; two IDs spaces to compare
QUERY = "a dark crime thriller from the nineties"


# ---- unit tests -------------------------------------------------------------------------------------
def test_study_command_renders_overrides_as_set_flags():
    assert study_command("smoke") == "bash run.sh study --profile smoke --only 04"
    command = study_command("ml100k", {"generative": {"epochs": 99, "backbone": "t5-config"},
                                       "decoding": {"exclude_history": False}},
                            extra={"generative.seeds": [3]})
    assert command.startswith("bash run.sh study --profile ml100k --only 04 ")
    assert "--set generative.epochs=99" in command and "--set generative.backbone=t5-config" in command
    assert "--set decoding.exclude_history=false" in command
    assert "--set 'generative.seeds=[3]'" in command
    # the flags parse back to the same overrides
    from helpers.config import parse_assignments

    words = shlex.split(command)
    flags = [words[i + 1] for i, word in enumerate(words) if word == "--set"]
    assert parse_assignments(flags) == {
        "generative": {"epochs": 99, "backbone": "t5-config", "seeds": [3]}, "decoding": {"exclude_history": False}}


def test_id_log_probs_equal_the_exact_decoder_scores(synthetic_dataset):
    from transformers import set_seed

    from helpers.generative.backbone import build_backbone, id_table
    from helpers.generative.decoding import IdTrie, exact_scores
    from helpers.generative.examples import ExampleBuilder, training_corpus
    from helpers.semantic_ids.ids import SemanticIds

    n = synthetic_dataset.n_items
    tokens = [[f"<a_{i % 5}>", f"<b_{i // 5}>"] for i in range(n)]
    vocabulary = sorted({t for seq in tokens for t in seq})
    ids = SemanticIds("toy", "shared", tokens, tokens, vocabulary)
    gen = dict(backbone="t5-config", vocabulary="corpus", d_model=32, num_layers=1, num_heads=2, d_ff=64,
               max_input_tokens=48, history_window=4, dropout=0.0)
    set_seed(0)
    model, tokenizer = build_backbone(gen, ids, training_corpus(synthetic_dataset))
    model.eval()
    builder = ExampleBuilder(synthetic_dataset, ids, tokenizer, gen)
    prompt = builder.search_inputs(["a funny comedy"])[0]
    table = id_table(tokenizer, ids, "search")
    exact = exact_scores(model, [prompt], IdTrie(table))[0].double().numpy()
    ours = id_log_probs(model, prompt, table)
    np.testing.assert_allclose(ours, exact, atol=1e-4)
    assert (ours < 0).all()
    assert id_log_probs(model, prompt, table[:0]).shape == (0,)


# ---- on the smoke profile, with two trained models ------------------------------------------------------------
@pytest.fixture(scope="module")
def explorer(smoke_cfg):
    from helpers.data.stage import build_dataset
    from helpers.generative.stage import train_model
    from helpers.semantic_ids.stage import build_semantic_ids

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads on a shared 2-core CPU spin-wait
    build_dataset(smoke_cfg)
    for construction in CONSTRUCTIONS:
        build_semantic_ids(smoke_cfg, construction)
        train_model(smoke_cfg, construction, smoke_cfg["generative"]["seeds"][0])
    yield Explorer(smoke_cfg)
    torch.set_num_threads(threads)


def _check_ranking(ex: Explorer, frame: pd.DataFrame, construction: str, task: str, k: int) -> None:
    rows = frame[frame["construction"] == construction]
    assert 0 < len(rows) <= k
    assert rows["rank"].tolist() == list(range(1, len(rows) + 1))
    items = rows["item_id"].to_numpy()
    assert ((items >= 0) & (items < ex.ds.n_items)).all() and len(set(items)) == len(items)
    assert rows["title"].tolist() == ex.ds.items["title"].iloc[items].tolist()
    ids = ex.semantic_ids(construction)
    assert rows["semantic_id"].tolist() == ["".join(ids.tokens(task)[i]) for i in items]
    scores = rows["score"].to_numpy()
    assert np.isfinite(scores).all() and (scores <= 0).all()
    assert (np.diff(scores) <= 1e-4).all(), "rankings are best first: scores never increase"


@pytest.mark.smoke
def test_search_returns_catalogue_items_with_sorted_log_probs(explorer):
    frame = explorer.search(QUERY, list(CONSTRUCTIONS), k=7)
    assert list(frame["construction"].unique()) == list(CONSTRUCTIONS)
    for construction in CONSTRUCTIONS:
        _check_ranking(explorer, frame, construction, "search", 7)
    one = explorer.search(QUERY, "content")
    assert len(one) <= explorer.k and set(one["construction"]) == {"content"}


@pytest.mark.smoke
def test_prompts_are_built_as_the_test_prompts(explorer, smoke_cfg):
    from helpers.generative.examples import ExampleBuilder

    loaded = explorer.model("content")
    test = ExampleBuilder(explorer.ds, loaded.ids, loaded.tokenizer, smoke_cfg["generative"]).build("test")
    queries = explorer.ds.query_split("test").set_index("query_id")["text"]
    search = test[test["task"] == "search"].iloc[3]
    assert explorer.input_ids("content", query=queries[search["query_key"]]) == list(search["input_ids"])
    rec = test[test["task"] == "rec"].iloc[5]
    user = int(rec["query_key"])
    assert explorer.input_ids("content", user=user) == list(rec["input_ids"])
    # the decoder's ranking of that prompt, seen items excluded as the profile says
    ranked = loaded.decoder.rank("rec", [list(rec["input_ids"])], explorer.k, seen=[list(rec["seen"])])[0]
    assert explorer.recommend(user, "content")["item_id"].tolist() == ranked
    shown = explorer.prompt("content", query="  Gritty CRIME thriller ")
    assert shown["prompt"].iat[0] == "search : gritty crime thriller" and shown["task"].iat[0] == "search"


@pytest.mark.smoke
def test_recommend_marks_the_test_item_and_leaves_out_the_history(explorer):
    user = 7
    target = int(explorer.ds.targets("test")[user])
    frame = explorer.recommend(user, list(CONSTRUCTIONS))
    for construction in CONSTRUCTIONS:
        _check_ranking(explorer, frame, construction, "rec", explorer.k)
    seen = set(explorer.ds.histories(("train", "valid"))[user].tolist())
    assert not seen & set(frame["item_id"])
    assert (frame["test_item"] == (frame["item_id"] == target)).all()
    history = explorer.history(user)
    assert history["split"].iat[-1] == "test" and history["item_id"].iat[-1] == target
    assert len(history) == explorer.cfg["generative"]["history_window"] + 1
    assert history["step"].is_monotonic_increasing
    assert history["title"].tolist() == explorer.ds.items["title"].iloc[history["item_id"]].tolist()
    held = explorer.held_out(user, list(CONSTRUCTIONS))
    assert held["item_id"].eq(target).all() and (held["score"] < 0).all()
    for row in held.itertuples():
        in_list = frame[(frame["construction"] == row.construction) & frame["test_item"]]
        assert pd.isna(row.rank) if in_list.empty else row.rank == in_list["rank"].iat[0]
    users = explorer.users()
    assert len(users) == explorer.ds.n_users and users["test_item_id"].iat[user] == target


@pytest.mark.smoke
def test_compare_two_constructions_side_by_side(explorer):
    side = explorer.compare(list(CONSTRUCTIONS), query=QUERY, k=5)
    assert list(side.columns.get_level_values("construction").unique()) == list(CONSTRUCTIONS)
    assert set(side.columns.get_level_values("field")) == {"item_id", "title", "score", "shared"}
    assert side.index.name == "rank" and side.index.min() == 1 and side.index.max() <= 5
    search = explorer.search(QUERY, list(CONSTRUCTIONS), k=5)
    for construction in CONSTRUCTIONS:
        column = side[(construction, "item_id")].dropna().astype(int).tolist()
        assert column == search[search["construction"] == construction]["item_id"].tolist()
    both = set(side[("content", "item_id")].dropna()) & set(side[("rec", "item_id")].dropna())
    assert set(side.loc[side[("content", "shared")] == True, ("content", "item_id")]) == both  # noqa: E712
    by_user = explorer.compare(list(CONSTRUCTIONS), user=3)
    assert ("rec", "test_item") in by_user.columns
    with pytest.raises(DataError, match="exactly one"):
        explorer.compare(list(CONSTRUCTIONS), query=QUERY, user=3)


@pytest.mark.smoke
def test_id_space_groups_items_by_leading_tokens(explorer):
    n = explorer.ds.n_items
    for construction in CONSTRUCTIONS:
        groups = explorer.id_space(construction)
        assert groups["items"].sum() == n and groups["prefix"].is_unique
        assert groups["top_genre_share"].between(0, 1).all() and (groups["lift"] > 0).all()
        first = groups["prefix"].iat[0]
        inner = explorer.id_space(construction, prefix=first)
        assert inner["items"].sum() == groups["items"].iat[0]
        assert all(p.startswith(first) for p in inner["prefix"])
        members = explorer.items_with_prefix(construction, first)
        assert len(members) == groups["items"].iat[0]
        assert all(s.startswith(first) for s in members["semantic_id"])
        item = int(members["item_id"].iat[0])
        near = explorer.neighbours(item, construction)
        assert near["is_item"].sum() == 1 and set(near["item_id"]) == set(members["item_id"])
    title = explorer.ds.items["title"].iat[0]
    assert explorer.item(title) == 0 and explorer.item(title.upper()) == 0
    coherence = explorer.coherence(list(CONSTRUCTIONS))
    assert list(coherence["construction"]) == list(CONSTRUCTIONS)
    for column in ("same_genre", "same_genre_catalogue"):
        assert coherence[column].between(0, 1).all()
    assert set(explorer.built_constructions()) >= set(CONSTRUCTIONS)


@pytest.mark.smoke
def test_clear_errors(explorer):
    with pytest.raises(ProfileError, match="Unknown construction 'nope'.*content"):
        explorer.search(QUERY, "nope")
    with pytest.raises(ProfileError, match="Unknown construction"):
        explorer.id_space("nope")
    with pytest.raises(DataError, match="Unknown user 100000.*0 \\.\\. 119"):
        explorer.recommend(100_000, "content")
    with pytest.raises(DataError, match="Unknown user"):
        explorer.history(-1)
    with pytest.raises(DataError, match="Unknown item 99999"):
        explorer.neighbours(99_999, "content")
    with pytest.raises(DataError, match="Unknown item 'no such film at all'"):
        explorer.neighbours("no such film at all", "content")
    for empty in ("", "   ", None):
        with pytest.raises(DataError, match="Type a query"):
            explorer.search(empty, "content")
    with pytest.raises(DataError, match="starts with"):
        explorer.items_with_prefix("content", "<zz_1>")
    with pytest.raises(DataError, match="prefix is a run of tokens"):
        explorer.id_space("content", prefix="a_1")


@pytest.mark.smoke
def test_untrained_model_names_the_command_that_trains_it(explorer):
    other = Explorer("smoke", overrides={"generative": {"epochs": 99}})
    assert other.trained_constructions() == []
    with pytest.raises(MissingArtifactError) as caught:
        other.search(QUERY, "content")
    message = str(caught.value)
    assert "bash run.sh study --profile smoke --only 04 --set generative.epochs=99" in message
    assert "04_generative_training" in message
    with pytest.raises(MissingArtifactError, match="--set 'generative.seeds=\\[5\\]'"):
        explorer.recommend(0, "content", seed=5)
    with pytest.raises(MissingArtifactError, match="No model is trained"):
        other.featured()


@pytest.mark.smoke
def test_a_query_answers_well_under_a_second(explorer):
    timing = explorer.timing(list(CONSTRUCTIONS), QUERY, user=0, repeats=3)
    assert set(timing["task"]) == {"search", "rec"}
    assert (timing["seconds"] < 1.0).all(), timing
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        explorer.search(QUERY, "content")  # answers on one thread, then gives torch its setting back
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    status = explorer.status()
    assert status.set_index("construction").loc[list(CONSTRUCTIONS), "loaded"].all()


@pytest.mark.smoke
def test_widgets_build_headless(explorer):
    pytest.importorskip("ipywidgets")
    from helpers.explore import id_space_box, search_box, user_box

    box = search_box(explorer, QUERY, list(CONSTRUCTIONS))
    text, view = box.children[0].children[0], box.children[-1]
    assert "side by side" in view.value and "<table" in view.value
    text.value = "a funny comedy"  # re-renders without a front end
    assert "a funny comedy" in view.value
    text.value = "   "  # a mistake shows the message, the widget keeps working
    assert "Type a query" in view.value
    users = user_box(explorer, 3, ["content"])
    picker, view = users.children[0], users.children[-1]
    title = explorer.ds.items["title"].iat[int(explorer.ds.targets("test")[3])]
    assert title in view.value
    picker.value = 4
    assert explorer.ds.items["title"].iat[int(explorer.ds.targets("test")[4])] in view.value
    space = id_space_box(explorer, "content")
    prefix, view = space.children[1], space.children[-1]
    first = explorer.id_space("content")["prefix"].iat[0]
    prefix.value = first
    assert "the items under" in view.value
