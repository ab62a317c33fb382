"""Unit tests of the joint generative model (helpers.generative): examples, backbone, training,
decoders and the stage contract. Tiny models on the synthetic dataset: seconds, not minutes. The
stage gets its upstream (dataset, Semantic IDs) as ``ModelInputs``; nothing is patched."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from helpers.errors import MissingArtifactError, ProfileError
from helpers.generative.backbone import build_backbone, id_table, load_backbone
from helpers.generative.decoding import (METHODS, DecodingSettings, IdTrie, InvalidIdError, ItemDecoder,
                                         beam_search, exact_scores, exact_top_k, hf_beam_search)
from helpers.generative.example_columns import ExampleColumns
from helpers.generative.examples import ExampleBuilder, training_corpus
from helpers.generative.frozen_text import is_frozen_text
from helpers.generative.train import train_seq2seq
from helpers.metrics import recall_at_k
from helpers.semantic_ids.ids import SemanticIds

TINY = dict(backbone="t5-config", vocabulary="corpus", d_model=32, num_layers=1, num_heads=2, d_ff=64,
            max_input_tokens=48, history_window=4, rec_targets_per_user=2, epochs=2, batch_size=32,
            lr=3.0e-3, weight_decay=0.01, bf16="auto", seeds=[0])
#: the backbone reading frozen MiniLM token states (helpers.generative.frozen_text), same tiny sizes
#: (one encoder layer, two decoder layers: the default's shape, which HF generate must size its cache for)
FROZEN = {**TINY, "backbone": "minilm-frozen", "text_encoder": "minilm", "num_layers": 2, "encoder_layers": 1}
BACKBONES = ("t5-config", "minilm-frozen")
#: one in-memory store of frozen states for the whole module: MiniLM loads once, each text runs once
_STATES: dict = {}


def frozen_states():
    from helpers.generative.text_states import TextStates

    if "store" not in _STATES:
        _STATES["store"] = TextStates("minilm")
    return _STATES["store"]


@pytest.fixture(autouse=True)
def one_thread():
    """Two threads on a CPU shared with other jobs spin-wait and run many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def shared_ids(n_items: int, collide: bool = False) -> SemanticIds:
    """Two-level IDs ``<a_i><b_j>``; with ``collide``, a third disambiguation level on every ID."""
    tokens = []
    for item in range(n_items):
        seq = [f"<a_{item % 5}>", f"<b_{item // 5}>"]
        if collide:  # pairs of items share (a, b) and differ only in the disambiguation token
            seq = [f"<a_{(item // 2) % 5}>", f"<b_{item // 10}>", f"<d_{item % 2}>"]
        tokens.append(seq)
    return SemanticIds("toy", "shared", tokens, [list(s) for s in tokens], sorted({t for s in tokens for t in s}))


def separate_ids(n_items: int) -> SemanticIds:
    search = [[f"<s_a_{i % 6}>", f"<s_b_{i // 6}>"] for i in range(n_items)]
    rec = [[f"<r_a_{i % 4}>", f"<r_b_{i // 4}>"] for i in range(n_items)]
    vocab = sorted({t for s in search + rec for t in s})
    return SemanticIds("toy_sep", "separate", search, rec, vocab)


def tiny_model(ds, ids, seed: int = 0, **overrides):
    from transformers import set_seed

    set_seed(seed)
    base = FROZEN if overrides.get("backbone") == "minilm-frozen" else TINY
    model, tokenizer = build_backbone({**base, **overrides}, ids, training_corpus(ds))
    if is_frozen_text(model):
        model.attach_text_states(frozen_states())
    return model, tokenizer


def overfit_examples(examples: pd.DataFrame, per_task: int = 4, copies: int = 16) -> pd.DataFrame:
    """A handful of examples with distinct prompts and distinct targets, repeated ``copies`` times."""
    picked = []
    for task in ("search", "rec"):
        rows = examples[examples["task"] == task]
        rows = rows[~rows["input_ids"].map(tuple).duplicated()].drop_duplicates("target")
        picked.append(rows.head(per_task))
    handful = pd.concat(picked, ignore_index=True)
    return pd.concat([handful] * copies, ignore_index=True), handful


# ---- examples ----------------------------------------------------------------------------------------
def test_examples_follow_the_splits(synthetic_dataset):
    ds, ids = synthetic_dataset, shared_ids(synthetic_dataset.n_items)
    model, tokenizer = tiny_model(ds, ids)
    builder = ExampleBuilder(ds, ids, tokenizer, TINY)
    train, valid, test = builder.build("train"), builder.build("valid"), builder.build("test")
    assert (train["task"] == "search").sum() == len(ds.query_split("train"))
    assert (test["task"] == "search").sum() == len(ds.query_split("test"))
    assert (valid["task"] == "search").sum() == 0  # no validation queries exist
    train_hist, full_hist = ds.histories(("train",)), ds.histories(("train", "valid"))
    per_user = train[train["task"] == "rec"].groupby("query_key").size()
    assert (per_user <= TINY["rec_targets_per_user"]).all()
    rec_ids = id_table(tokenizer, ids, "rec")
    for _, row in train[train["task"] == "rec"].iterrows():
        history = train_hist[row["query_key"]]
        position = int(np.flatnonzero(history == row["target"])[0])
        assert position >= len(history) - TINY["rec_targets_per_user"]  # the most recent positions
        recent = history[:position][-TINY["history_window"]:]
        assert row["input_ids"] == builder.rec_head + rec_ids[recent].reshape(-1).tolist() + builder.rec_tail
        assert row["labels"] == rec_ids[row["target"]].tolist()
    assert train["seen"].map(len).sum() == 0, "train rows are never decoded: no history prefix is kept"
    test_rec = test[test["task"] == "rec"].set_index("query_key")
    test_targets = ds.targets("test")
    for user in range(ds.n_users):
        assert test_rec.loc[user, "target"] == test_targets[user]
        assert test_rec.loc[user, "seen"] == full_hist[user].tolist()  # train + valid history
        assert test_targets[user] not in full_hist[user]
    assert all(len(x) <= TINY["max_input_tokens"] for x in pd.concat([train, test])["input_ids"])
    fewer = builder.build("test", test_queries_per_item=1)
    assert (fewer["task"] == "search").sum() == ds.n_items and (fewer["task"] == "rec").sum() == ds.n_users
    # the evaluation scores its search baselines on exactly these queries
    from helpers.evaluation.baselines import decoded_test_queries

    for per_item in (1, 2, None):
        decoded = builder.build("test", test_queries_per_item=per_item)
        assert decoded.loc[decoded["task"] == "search", "query_key"].tolist() == \
            decoded_test_queries(ds, per_item)["query_id"].tolist()


def test_separate_scheme_prompts_and_targets_use_their_task_tokens(synthetic_dataset):
    ds, ids = synthetic_dataset, separate_ids(synthetic_dataset.n_items)
    model, tokenizer = tiny_model(ds, ids)
    examples = ExampleBuilder(ds, ids, tokenizer, TINY).build("train")
    search_vocab = set(tokenizer.convert_tokens_to_ids(sorted({t for s in ids.search_tokens for t in s})))
    rec_vocab = set(tokenizer.convert_tokens_to_ids(sorted({t for s in ids.rec_tokens for t in s})))
    for _, row in examples.iterrows():
        own, other = (search_vocab, rec_vocab) if row["task"] == "search" else (rec_vocab, search_vocab)
        assert set(row["labels"]) <= own
        assert not set(row["input_ids"]) & other


@pytest.mark.parametrize("scheme,settings", [
    ("shared", {}),
    ("shared", {"rec_targets_per_user": None, "history_window": 3}),  # every position; windows cut short
    ("shared", {"rec_targets_per_user": 0}),  # no rec rows
    ("shared", {"history_window": 1}),
    ("separate", {"rec_targets_per_user": None}),
])
def test_train_columns_hold_the_rows_of_build(synthetic_dataset, scheme, settings):
    """The columnar train examples (what training reads) are row for row ``build("train")``."""
    ds = synthetic_dataset
    ids = shared_ids(ds.n_items, collide=True) if scheme == "shared" else separate_ids(ds.n_items)
    model, tokenizer = tiny_model(ds, ids)
    builder = ExampleBuilder(ds, ids, tokenizer, {**TINY, **settings})
    expected = builder.build("train")[["task", "query_key", "target", "input_ids", "labels"]]
    for chunk_rows in (1 << 20, 7):  # one chunk, and many (7 rows each, the last one short)
        columns = builder.train_columns(chunk_rows=chunk_rows)
        pd.testing.assert_frame_equal(columns.frame(), expected, check_dtype=False)
        assert columns.task_counts() == expected["task"].value_counts().to_dict()
    only_rec = builder.train_columns(tasks=("rec",)).frame()
    pd.testing.assert_frame_equal(only_rec, expected[expected["task"] == "rec"].reset_index(drop=True),
                                  check_dtype=False)


def test_train_columns_are_smaller_and_feed_the_trainer_the_same_rows(synthetic_dataset):
    from helpers.generative.train import to_hf_dataset

    ds, ids = synthetic_dataset, shared_ids(synthetic_dataset.n_items)
    model, tokenizer = tiny_model(ds, ids)
    builder = ExampleBuilder(ds, ids, tokenizer, {**TINY, "rec_targets_per_user": None})
    frame, columns = builder.build("train"), builder.train_columns()
    from_frame, from_columns = to_hf_dataset(frame), to_hf_dataset(columns)
    assert from_frame["input_ids"] == frame["input_ids"].tolist() == from_columns["input_ids"]
    assert from_frame["labels"] == frame["labels"].tolist() == from_columns["labels"]
    tokens = frame["input_ids"].map(len).sum() + frame["labels"].map(len).sum()
    assert columns.nbytes() <= 4 * tokens + 8 * 2 * (len(frame) + 1) + (8 + 8 + 1) * len(frame)


def test_example_columns_concat_and_reject_unknown_tasks(synthetic_dataset):
    ds, ids = synthetic_dataset, shared_ids(synthetic_dataset.n_items)
    model, tokenizer = tiny_model(ds, ids)
    builder = ExampleBuilder(ds, ids, tokenizer, TINY)
    search, rec = builder.train_columns(tasks=("search",)), builder.train_columns(tasks=("rec",))
    pd.testing.assert_frame_equal(ExampleColumns.concat([search, rec]).frame(), builder.train_columns().frame())
    assert len(ExampleColumns.concat([])) == 0 and ExampleColumns.empty().frame().empty
    with pytest.raises(ValueError, match="Unknown task"):
        ExampleColumns.from_frame(builder.build("train").assign(task="browse"))


def test_example_columns_save_and_map_back(synthetic_dataset, tmp_path):
    ds, ids = synthetic_dataset, shared_ids(synthetic_dataset.n_items)
    model, tokenizer = tiny_model(ds, ids)
    columns = ExampleBuilder(ds, ids, tokenizer, TINY).train_columns()
    for name, saved in (("rows", columns), ("none", ExampleColumns.empty())):
        (tmp_path / name).mkdir()
        saved.save(tmp_path / name)
        mapped = ExampleColumns.load(tmp_path / name)
        assert isinstance(mapped.input_values, np.memmap) and not mapped.input_values.flags.writeable
        pd.testing.assert_frame_equal(mapped.frame(), saved.frame())
    with pytest.raises(FileNotFoundError, match="no saved examples"):
        ExampleColumns.load(tmp_path / "elsewhere")


def test_tokenizer_digest_is_stable_and_tells_vocabularies_apart(synthetic_dataset):
    from helpers.generative.example_cache import tokenizer_digest

    ds = synthetic_dataset
    ids = shared_ids(ds.n_items)
    tokenizer = tiny_model(ds, ids)[1]
    digest = tokenizer_digest(tokenizer)
    ExampleBuilder(ds, ids, tokenizer, TINY).train_columns()  # a call that truncates
    assert tokenizer_digest(tokenizer) == digest
    assert tokenizer_digest(tiny_model(ds, ids, seed=5)[1]) == digest  # rebuilt: the same definition
    assert tokenizer_digest(tiny_model(ds, ids, vocabulary="full")[1]) != digest
    assert tokenizer_digest(tiny_model(ds, separate_ids(ds.n_items))[1]) != digest  # other ID tokens


def test_length_grouped_trainer_batches_as_the_trainer_s_own_sampler(synthetic_dataset, tmp_path):
    """Handing the sampler the lengths we know gives the batches the trainer would measure itself."""
    from transformers import Seq2SeqTrainer

    from helpers.generative.train import length_grouped_trainer, to_hf_dataset, training_arguments

    ds, ids = synthetic_dataset, shared_ids(synthetic_dataset.n_items)
    model, tokenizer = tiny_model(ds, ids)
    builder = ExampleBuilder(ds, ids, tokenizer, {**TINY, "rec_targets_per_user": None})
    train, valid = builder.train_columns(), ExampleColumns.from_frame(builder.build("valid"))
    args = training_arguments(TINY, tmp_path, 0, True, len(train))
    common = dict(model=model, args=args, train_dataset=to_hf_dataset(train), eval_dataset=to_hf_dataset(valid))
    ours = length_grouped_trainer(train_examples=train, eval_examples=valid, **common)
    theirs = Seq2SeqTrainer(**common)
    orders = []
    for trainer in (ours, theirs):
        torch.manual_seed(7)  # the train sampler draws from torch's global generator
        orders.append((list(trainer._get_train_sampler()), list(trainer._get_eval_sampler(trainer.eval_dataset))))
    assert orders[0] == orders[1]
    assert sorted(orders[0][0]) == list(range(len(train))) and orders[0][0] != sorted(orders[0][0])


# ---- decoders on an untrained tiny model ---------------------------------------------------------------
@pytest.fixture(params=BACKBONES)
def toy(synthetic_dataset, request):
    """An untrained tiny model of each backbone: every decoder test runs on both."""
    ds = synthetic_dataset
    ids = shared_ids(ds.n_items, collide=True)
    model, tokenizer = tiny_model(ds, ids, backbone=request.param)
    examples = ExampleBuilder(ds, ids, tokenizer, TINY).build("test")
    prompts = list(examples["input_ids"].iloc[::23])[:6]
    return ds, ids, model.eval(), tokenizer, prompts


def test_trie_holds_exactly_the_ids():
    table = np.array([[5, 7, 9], [5, 7, 10], [6, 7, 9], [6, 8, 9]])
    trie = IdTrie(table)
    assert trie.n_nodes == [1, 2, 3, 4]
    assert trie.allowed_next() == {(): [5, 6], (5,): [7], (6,): [7, 8], (5, 7): [9, 10], (6, 7): [9], (6, 8): [9]}
    trie.check(np.array([[0, 3]]), table[[0, 3]][None])
    with pytest.raises(InvalidIdError):
        trie.check(np.array([[0]]), np.array([[[5, 7, 11]]]))
    with pytest.raises(ValueError):
        IdTrie(np.array([[1, 2], [1, 2]]))


def test_reachable_prunes_prefixes_whose_items_are_all_excluded():
    trie = IdTrie(np.array([[5, 7, 9], [5, 7, 10], [6, 7, 9], [6, 8, 9]]))
    exclude = torch.tensor([[True, True, False, False], [False, False, False, True]])
    reachable = trie.reachable(exclude)
    assert reachable[0].all()
    assert reachable[1].tolist() == [[False, True], [True, True]]  # prefix (5,) holds only items 0, 1
    assert reachable[3].tolist() == (~exclude).tolist()


def test_exact_scores_equal_teacher_forced_log_probabilities(toy):
    ds, ids, model, tokenizer, prompts = toy
    trie = IdTrie(id_table(tokenizer, ids, "search"))
    scores = exact_scores(model, prompts, trie, tokenizer.pad_token_id)
    labels = torch.as_tensor(trie.table)
    with torch.no_grad():
        for row, prompt in enumerate(prompts):
            logits = model(input_ids=torch.tensor([prompt] * trie.n_items), labels=labels).logits
            teacher = torch.log_softmax(logits, -1).gather(2, labels[..., None]).squeeze(-1).sum(1)
            torch.testing.assert_close(scores[row], teacher, atol=1e-4, rtol=1e-4)


def test_beam_decoders_agree_with_exact_top_k(toy):
    ds, ids, model, tokenizer, prompts = toy
    trie = IdTrie(id_table(tokenizer, ids, "rec"))
    pad = tokenizer.pad_token_id
    exact_items, exact_values, _ = exact_top_k(model, prompts, trie, trie.n_items, pad)
    # a beam as wide as the catalogue keeps every prefix: it is exhaustive, hence exact
    items, scores, _ = beam_search(model, prompts, trie, num_beams=trie.n_items, pad_id=pad)
    np.testing.assert_array_equal(items, exact_items)
    np.testing.assert_allclose(scores, exact_values, atol=1e-5)
    # diverse beam search with one group and no penalty is plain beam search
    narrow, narrow_scores, _ = beam_search(model, prompts, trie, num_beams=8, pad_id=pad)
    same, _, _ = beam_search(model, prompts, trie, num_beams=8, num_groups=1, diversity_penalty=0.0, pad_id=pad)
    np.testing.assert_array_equal(narrow, same)
    # HF generate with prefix_allowed_tokens_fn finds the same beams as our trie beam search
    hf_items, hf_scores, _ = hf_beam_search(model, prompts, trie, num_beams=8, pad_id=pad)
    np.testing.assert_array_equal(hf_items, narrow)
    np.testing.assert_allclose(hf_scores, narrow_scores, atol=1e-4)  # length_penalty 0: summed log-probs
    # every beam result is among the exact scores, at its exact value
    for row in range(len(prompts)):
        exact_of = dict(zip(exact_items[row], exact_values[row]))
        for item, score in zip(narrow[row], narrow_scores[row]):
            assert score == pytest.approx(exact_of[item], abs=1e-4)


def reference_diverse_beam(model, prompt, trie, beams, groups, penalty, start):
    """Diverse beam search written plainly, one beam and one group at a time (Vijayakumar et al.)."""
    allowed = trie.allowed_next()
    width = beams // groups

    def log_probs(prefix):
        with torch.no_grad():
            out = model(input_ids=torch.tensor([prompt]), decoder_input_ids=torch.tensor([[start, *prefix]]))
        return torch.log_softmax(out.logits[0, -1], -1)

    group_beams = [[((), 0.0)] for _ in range(groups)]
    for _ in range(trie.depth):
        used: dict[int, int] = {}
        for g in range(groups):
            candidates = []
            for prefix, score in group_beams[g]:
                lp = log_probs(prefix)
                for token in allowed[prefix]:
                    total = score + float(lp[token])
                    candidates.append((total - penalty * used.get(token, 0), total, prefix + (token,)))
            candidates.sort(key=lambda c: -c[0])
            group_beams[g] = [(seq, total) for _, total, seq in candidates[:width]]
            for seq, _ in group_beams[g]:
                used[seq[-1]] = used.get(seq[-1], 0) + 1
    index = {tuple(row): item for item, row in enumerate(trie.table.tolist())}
    finished = sorted(((total, index[seq]) for beams_of_group in group_beams for seq, total in beams_of_group),
                      key=lambda c: -c[0])
    return list(dict.fromkeys(item for _, item in finished))


def test_vectorised_diverse_beam_search_matches_the_plain_algorithm(toy):
    ds, ids, model, tokenizer, prompts = toy
    trie = IdTrie(id_table(tokenizer, ids, "search"))
    for beams, groups, penalty in ((12, 4, 0.25), (8, 8, 2.0), (6, 1, 0.0)):
        decoder = ItemDecoder(model, tokenizer, ids, DecodingSettings(num_beams=beams, num_groups=groups,
                                                                      diversity_penalty=penalty))
        ranked = decoder.rank("search", prompts, k=beams, method="diverse_beam" if groups > 1 else "trie_beam")
        for prompt, got in zip(prompts, ranked):
            expected = reference_diverse_beam(model, prompt, trie, beams, groups, penalty,
                                              model.config.decoder_start_token_id)
            assert got == expected


def test_diverse_beam_search_spreads_over_groups(toy):
    ds, ids, model, tokenizer, prompts = toy
    trie = IdTrie(id_table(tokenizer, ids, "search"))
    favourite = int(trie.table[0, 0])  # first code <a_0>, shared by 12 of the 60 items
    assert (trie.table[:, 0] == favourite).sum() >= 12
    # make the model all but certain of that first code: every plain beam then ends below it
    bias = torch.zeros(model.lm_head.out_features)
    bias[favourite] = 100.0
    hook = model.lm_head.register_forward_hook(lambda module, args, out: out + bias)
    try:
        plain, _, _ = beam_search(model, prompts, trie, num_beams=12, pad_id=tokenizer.pad_token_id)
        diverse, _, sequences = beam_search(model, prompts, trie, num_beams=12, num_groups=6,
                                            diversity_penalty=1000.0, pad_id=tokenizer.pad_token_id)
    finally:
        hook.remove()
    trie.check(diverse, sequences)
    first_tokens_plain = [len(set(trie.table[r][:, 0])) for r in plain]
    first_tokens_diverse = [len(set(s[:, 0])) for s in sequences]
    assert first_tokens_plain == [1] * len(prompts)  # plain beam search stays in the favourite subtree
    # a penalty far above the bias keeps every later group off the favourite code at the first step, so
    # each prompt's beams start with more than one code (a group may later pour both beams into one)
    assert all(d > p for d, p in zip(first_tokens_diverse, first_tokens_plain)), first_tokens_diverse


@pytest.mark.parametrize("method", METHODS)
def test_every_decoded_item_is_real_distinct_and_unseen(toy, method):
    ds, ids, model, tokenizer, prompts = toy
    settings = DecodingSettings(method=method, num_beams=12, num_groups=4, batch_size=4, exact_rows=64)
    decoder = ItemDecoder(model, tokenizer, ids, settings)
    seen = [[0, 1, 2, 3, 4, 5, 6, 7]] * len(prompts)
    for task in ("search", "rec"):
        ranked = decoder.rank(task, prompts, k=10, seen=seen)
        assert len(ranked) == len(prompts)
        for items in ranked:
            assert 0 < len(items) <= 10 and len(set(items)) == len(items)
            assert all(0 <= i < ids.n_items for i in items)
            assert not set(items) & set(seen[0])
            for item in items:  # the ID the decoder scored maps back to this very item
                assert ids.item_of(task, ids.tokens(task)[item]) == item


def test_disambiguation_tokens_never_become_items(toy):
    ds, ids, model, tokenizer, prompts = toy
    trie = IdTrie(id_table(tokenizer, ids, "search"))
    items, _, sequences = beam_search(model, prompts, trie, num_beams=16, pad_id=tokenizer.pad_token_id)
    for per_input_items, per_input_seqs in zip(items, sequences):
        for item, seq in zip(per_input_items, per_input_seqs):
            tokens = tokenizer.convert_ids_to_tokens(seq.tolist())
            assert len(tokens) == 3 and tokens[-1].startswith("<d_")
            assert ids.item_of("search", tokens) == item


def test_separate_scheme_search_outputs_use_only_search_tokens(synthetic_dataset):
    ds, ids = synthetic_dataset, separate_ids(synthetic_dataset.n_items)
    model, tokenizer = tiny_model(ds, ids)
    decoder = ItemDecoder(model.eval(), tokenizer, ids, DecodingSettings(num_beams=10, num_groups=5))
    prompts = list(ExampleBuilder(ds, ids, tokenizer, TINY).build("test")["input_ids"][:5])
    search_tokens = {t for s in ids.search_tokens for t in s}
    rec_tokens = {t for s in ids.rec_tokens for t in s}
    for task, allowed in (("search", search_tokens), ("rec", rec_tokens)):
        trie = decoder.tries[task]
        _, _, sequences = beam_search(model, prompts, trie, num_beams=10, num_groups=5, diversity_penalty=0.25,
                                      pad_id=tokenizer.pad_token_id)
        produced = set(tokenizer.convert_ids_to_tokens(sequences.reshape(-1).tolist()))
        assert produced <= allowed


def test_bad_decoding_settings_are_refused(toy):
    ds, ids, model, tokenizer, prompts = toy
    with pytest.raises(ProfileError, match="Unknown decoding method"):
        DecodingSettings.from_cfg({"method": "greedy"})
    with pytest.raises(ProfileError, match="multiple of"):
        DecodingSettings.from_cfg({"method": "diverse_beam", "num_beams": 10, "num_groups": 3})
    decoder = ItemDecoder(model, tokenizer, ids, DecodingSettings(num_beams=4, num_groups=2))
    with pytest.raises(ProfileError, match="Unknown decoding method"):
        decoder.rank("search", prompts, k=3, method="nucleus")


# ---- backbones -----------------------------------------------------------------------------------------
def test_unknown_backbone_path_is_a_clear_error(synthetic_dataset, tmp_path):
    ids = shared_ids(synthetic_dataset.n_items)
    with pytest.raises(ProfileError, match="neither 't5-config' nor a seq2seq model"):
        build_backbone({**TINY, "backbone": str(tmp_path / "no-such-model")}, ids)


def test_pretrained_folder_backbone_gets_the_id_tokens(synthetic_dataset, tmp_path):
    """What a user with google/flan-t5-base on disk gets: from_pretrained + the ID tokens added."""
    ds = synthetic_dataset
    plain = SemanticIds("none", "shared", [["<z_0>"]], [["<z_0>"]], ["<z_0>"])
    model, tokenizer = tiny_model(ds, plain, vocabulary="full")
    model.save_pretrained(tmp_path / "t5")
    tokenizer.save_pretrained(tmp_path / "t5")
    ids = shared_ids(ds.n_items)
    loaded, loaded_tokenizer = build_backbone({**TINY, "backbone": str(tmp_path / "t5")}, ids)
    assert len(loaded_tokenizer) == len(tokenizer) + len(ids.vocabulary)
    assert loaded.get_input_embeddings().weight.shape[0] >= len(loaded_tokenizer)
    assert loaded_tokenizer.tokenize("<a_1><b_2>") == ["<a_1>", "<b_2>"]


def test_corpus_vocabulary_is_smaller_and_tokenizes_unseen_words(synthetic_dataset):
    ds, ids = synthetic_dataset, shared_ids(synthetic_dataset.n_items)
    _, full = tiny_model(ds, ids, vocabulary="full")
    _, small = tiny_model(ds, ids, vocabulary="corpus")
    assert len(small) < len(full) / 10
    unseen = "spiesrobotsdetective"  # a word no prompt holds, made of characters they do hold
    pieces = small.tokenize(f"search: {unseen}")
    assert small.unk_token not in pieces and "".join(p.removeprefix("##") for p in pieces[2:]) == unseen


# ---- the minilm-frozen backbone -----------------------------------------------------------------------
def test_frozen_text_tokenizer_reads_words_as_minilm_does(synthetic_dataset):
    from transformers import AutoTokenizer

    from helpers.generative.text_states import encoder_path

    ds, ids = synthetic_dataset, shared_ids(synthetic_dataset.n_items, collide=True)
    model, tokenizer = tiny_model(ds, ids, backbone="minilm-frozen")
    minilm = AutoTokenizer.from_pretrained(str(encoder_path("minilm")))
    text_ids = model.encoder.embed_tokens.text_token_ids.numpy()
    texts = ["search: Amélie, a whimsical café romance (2001)!", "naïve 東京 crème brûlée", "recommend:"]
    for text in texts + ds.queries["text"].head(20).tolist():  # a word piece maps back to MiniLM's own id
        assert text_ids[tokenizer(text)["input_ids"]].tolist() == minilm(text)["input_ids"]
    # the decoder emits only the five BERT specials and the ID tokens; ID tokens are not words
    table = np.concatenate([id_table(tokenizer, ids, task) for task in ("search", "rec")])
    assert model.lm_head.out_features == model.config.vocab_size == 5 + len(ids.vocabulary)
    assert table.max() < model.config.vocab_size and (text_ids[table] == -1).all()
    assert tokenizer.tokenize("<a_1><b_2> crime") == ["<a_1>", "<b_2>", "crime"]


def test_frozen_states_are_computed_once_per_text_and_on_the_fly_for_new_ones(synthetic_dataset, tmp_path):
    from helpers.generative.text_states import TextStates

    ds, ids = synthetic_dataset, shared_ids(synthetic_dataset.n_items, collide=True)
    model, tokenizer = tiny_model(ds, ids, backbone="minilm-frozen")
    store = TextStates("minilm")
    model.attach_text_states(store)
    builder = ExampleBuilder(ds, ids, tokenizer, FROZEN)
    decoder = ItemDecoder(model.eval(), tokenizer, ids, DecodingSettings(method="trie_beam", num_beams=8))
    queries = builder.search_inputs(["space pirates in a haunted lighthouse", "a quiet film about bees"])
    first = decoder.rank("search", queries, 5)
    assert store.computed == 2 and all(0 <= i < ids.n_items for r in first for i in r)
    assert decoder.rank("search", queries, 5) == first and store.computed == 2 and store.hits >= 2
    users = [builder.rec_input(h) for h in ds.histories(("train",))[:5]]
    decoder.rank("rec", users, 5)
    assert store.computed == 3  # every recommendation prompt shares one text: [CLS] recommend : [SEP]
    # the states of a word depend on its context: the same piece reads differently in two texts
    crime = tokenizer.convert_tokens_to_ids("crime")
    a, b = builder.search_inputs(["crime", "a funny crime caper"])
    with torch.no_grad():
        embedded = model.get_encoder().embed_tokens(torch.tensor([a + [0] * (len(b) - len(a)), b]))
    assert not torch.allclose(embedded[0, a.index(crime)], embedded[1, b.index(crime)])
    # saved as an artifact and read back (memory-mapped): the same states, nothing recomputed
    store.save(tmp_path)
    reread = TextStates("minilm", tmp_path)
    assert len(reread) == len(store) == 5  # two queries, the rec text, two texts holding "crime"
    for prompt in queries:
        key = model.encoder.embed_tokens.text_token_ids.numpy()[prompt]
        np.testing.assert_array_equal(reread.get([key])[0], store.get([key])[0])
    assert reread.computed == 0


def test_frozen_model_trains_saves_reloads_and_ranks_identically(synthetic_dataset, tmp_path):
    from helpers.generative.stage import check_predictions

    ds, ids = synthetic_dataset, shared_ids(synthetic_dataset.n_items, collide=True)
    model, tokenizer = tiny_model(ds, ids, backbone="minilm-frozen")
    builder = ExampleBuilder(ds, ids, tokenizer, FROZEN)
    untrained = {k: v.clone() for k, v in model.state_dict().items()}
    card = train_seq2seq(model, tokenizer, builder.build("train"), builder.build("valid"), {**FROZEN, "epochs": 1}, 0,
                         tmp_path / "ckpt")
    assert card["steps"] > 0 and card["final_valid_loss"] is not None
    assert not torch.equal(untrained["encoder.embed_tokens.proj.weight"], model.encoder.embed_tokens.proj.weight)
    model.eval().save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    reloaded, reloaded_tokenizer = load_backbone(tmp_path / "model", text_states=model.text_states)
    assert reloaded.text_states is model.text_states
    test = builder.build("test")
    sample = pd.concat([rows.head(8) for _, rows in test.groupby("task")], ignore_index=True)
    settings = DecodingSettings(num_beams=8, num_groups=4)
    for method in METHODS:
        before = ItemDecoder(model, tokenizer, ids, settings).rank_examples(sample, 5, method)
        after = ItemDecoder(reloaded, reloaded_tokenizer, ids, settings).rank_examples(sample, 5, method)
        pd.testing.assert_frame_equal(before, after)
        check_predictions(before, ids.n_items, 5)


# ---- training ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backbone", BACKBONES)
def test_model_overfits_a_handful_of_examples(synthetic_dataset, tmp_path, backbone):
    """Learning works end to end: a handful of prompts is memorised to 100% recall@1."""
    ds, ids = synthetic_dataset, shared_ids(synthetic_dataset.n_items)
    model, tokenizer = tiny_model(ds, ids, d_model=64, d_ff=128, backbone=backbone)
    repeated, handful = overfit_examples(ExampleBuilder(ds, ids, tokenizer, TINY).build("train"), copies=32)
    settings = {**TINY, "epochs": 20, "batch_size": 16, "lr": 1e-2}
    card = train_seq2seq(model, tokenizer, repeated, None, settings, 0, tmp_path / "ckpt")
    first_loss = next(h["loss"] for h in card["log_history"] if "loss" in h)
    assert card["final_train_loss"] < first_loss / 10
    decoder = ItemDecoder(model.eval(), tokenizer, ids, DecodingSettings(num_beams=4, num_groups=2))
    for method in ("exact", "trie_beam", "diverse_beam"):
        predictions = decoder.rank_examples(handful, k=1, method=method)
        assert recall_at_k(list(predictions["ranked"]), predictions["target"].to_numpy(), 1) == 1.0


@pytest.mark.parametrize("backbone", BACKBONES)
def test_same_seed_gives_the_same_model(synthetic_dataset, tmp_path, backbone):
    """Same seed, same model, whether the examples come as a frame or as columns (what the stage uses)."""
    ds, ids = synthetic_dataset, shared_ids(synthetic_dataset.n_items)
    weights = []
    for run, (seed, form) in enumerate(((3, "frame"), (3, "columns"), (4, "frame"))):
        model, tokenizer = tiny_model(ds, ids, seed=seed, backbone=backbone)
        builder = ExampleBuilder(ds, ids, tokenizer, TINY)
        examples = builder.build("train") if form == "frame" else builder.train_columns()
        train_seq2seq(model, tokenizer, examples, None, {**TINY, "epochs": 1}, seed, tmp_path / f"run{run}")
        weights.append({k: v.clone() for k, v in model.state_dict().items()})
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])


def test_saved_model_reloads_and_decodes_identically(toy, tmp_path):
    ds, ids, model, tokenizer, prompts = toy
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    # a minilm-frozen model reads the same frozen states (the stage attaches the built artifact)
    reloaded, reloaded_tokenizer = load_backbone(tmp_path, text_states=getattr(model, "text_states", None))
    assert type(reloaded) is type(model)
    settings = DecodingSettings(num_beams=8, num_groups=4)
    for method in ("diverse_beam", "exact"):
        before = ItemDecoder(model, tokenizer, ids, settings).rank("rec", prompts, 5, method=method)
        after = ItemDecoder(reloaded, reloaded_tokenizer, ids, settings).rank("rec", prompts, 5, method=method)
        assert before == after


# ---- the stage contract --------------------------------------------------------------------------------
@pytest.fixture
def stage_cfg(synthetic_dataset):
    """The smoke profile with a tiny model, and synthetic upstream inputs passed to the stage."""
    from helpers.config import load_profile
    from helpers.generative.stage import ModelInputs

    ids = shared_ids(synthetic_dataset.n_items, collide=True)
    inputs = ModelInputs(dataset=synthetic_dataset, semantic_ids=ids, upstream={"semantic_ids": "toy", "data": "synthetic"})
    generative = {k: v for k, v in TINY.items()}
    cfg = load_profile("smoke", {"generative": generative,
                                 "decoding": {"method": "trie_beam", "num_beams": 12, "num_groups": 6}})
    return cfg, ids, inputs


def test_stage_trains_once_predicts_and_loads(stage_cfg, synthetic_dataset):
    from helpers import artifacts
    from helpers.generative import cards, stage

    cfg, ids, inputs = stage_cfg
    with pytest.raises(MissingArtifactError, match="04_generative_training.ipynb"):
        stage.load_model(cfg, "multitask", 0, inputs)
    with pytest.raises(MissingArtifactError, match="04_generative_training.ipynb"):
        stage.load_predictions(cfg, "multitask", 0, inputs=inputs)
    folder = stage.train_model(cfg, "multitask", 0, inputs=inputs)
    manifest = artifacts.read_manifest(folder)
    assert manifest["train_examples_per_second"] > 0 and manifest["peak_rss_mib"] > 0
    assert manifest["upstream"] == inputs.upstream
    assert stage.train_model(cfg, "multitask", 0, inputs=inputs) == folder  # cached
    assert artifacts.read_manifest(folder)["created"] == manifest["created"]
    assert stage.model_dir(cfg, "multitask", 1, inputs) != folder
    other = stage.ModelInputs(synthetic_dataset, ids, {"semantic_ids": "other", "data": "synthetic"})
    assert stage.model_dir(cfg, "multitask", 0, other) != folder  # other upstream, other folder
    assert stage.load_model(cfg, "multitask", 0, inputs).path == folder
    predictions = stage.predict(cfg, "multitask", 0, "test", inputs=inputs)
    assert list(predictions.columns) == stage.PREDICTION_COLUMNS
    per_item = cfg["decoding"]["test_queries_per_item"]
    test_queries = synthetic_dataset.query_split("test")
    assert (predictions["task"] == "search").sum() == (test_queries["pair"] < per_item).sum()
    assert (predictions["task"] == "rec").sum() == synthetic_dataset.n_users
    k = cfg["evaluation"]["k"]
    stage.check_predictions(predictions, ids.n_items, k)
    assert predictions["ranked"].map(len).max() <= k
    loaded = stage.load_predictions(cfg, "multitask", 0, "test", inputs)
    pd.testing.assert_frame_equal(loaded, predictions)
    timing = artifacts.read_manifest(stage.predictions_dir(cfg, "multitask", 0, "test", inputs))
    assert timing["decoding_seconds"] > 0 and timing["decoding"]["method"] == "trie_beam"
    assert stage.predictions_dir(cfg, "multitask", 0, "valid", inputs) != stage.predictions_dir(cfg, "multitask", 0, "test", inputs)
    valid = stage.predict(cfg, "multitask", 0, "valid", inputs=inputs)
    assert set(valid["task"]) == {"rec"}
    model_cards = cards.model_cards(cfg, {"multitask": inputs})
    assert list(model_cards["construction"]) == ["multitask"] and model_cards["steps"].item() > 0
    assert cards.model_cards(cfg).empty  # the profile's own upstream was never trained
    summary = cards.prediction_summary(cfg, "test", {"multitask": inputs}).set_index("task")
    search = predictions[predictions["task"] == "search"]
    assert summary.loc["search", f"recall@{k}"] == pytest.approx(
        recall_at_k(list(search["ranked"]), search["target"].to_numpy(), k))
    curves = cards.training_curves(cfg, {"multitask": inputs})
    assert set(curves["split"]) == {"train", "valid"} and curves["epoch"].max() == pytest.approx(TINY["epochs"])


def test_train_examples_are_built_once_per_construction_and_shared_by_its_seeds(stage_cfg):
    import copy

    from helpers import artifacts
    from helpers.generative import stage
    from helpers.generative.example_cache import examples_dir

    cfg, ids, inputs = stage_cfg
    first = stage.train_model(cfg, "multitask", 0, inputs=inputs)
    folders = list((Path(artifacts.data_root()) / "runs" / cfg["name"] / "examples" / "multitask").iterdir())
    folder = next(f for f in folders if artifacts.is_complete(f))
    assert [f.name for f in folders if not f.name.startswith(".lock-")] == [folder.name]  # no temp folder left
    manifest = artifacts.read_manifest(folder)
    model, tokenizer = tiny_model(inputs.dataset, ids)
    builder = ExampleBuilder(inputs.dataset, ids, tokenizer, cfg["generative"])
    built = builder.train_columns()
    pd.testing.assert_frame_equal(ExampleColumns.load(folder).frame(), built.frame())
    assert manifest["rows"] == len(built) and manifest["upstream"] == inputs.upstream

    built_once = folder.stat().st_ino  # a rebuild would rename a new folder into place
    longer = copy.deepcopy(cfg)
    longer["generative"]["epochs"] = 1  # other training settings, the same rows
    for seed, profile in ((1, cfg), (0, longer)):
        trained = stage.train_model(profile, "multitask", seed, inputs=inputs)
        assert artifacts.read_manifest(trained)["n_train_examples"] == manifest["rows"]
        assert folder.stat().st_ino == built_once and artifacts.read_manifest(folder) == manifest
        # the saved tokenizer is the same whether the examples were built (seed 0) or mapped
        assert (trained / "tokenizer.json").read_bytes() == (first / "tokenizer.json").read_bytes()
    assert examples_dir(cfg, "multitask", builder, inputs.upstream) == folder
    wider = ExampleBuilder(inputs.dataset, ids, tokenizer, {**cfg["generative"], "history_window": 2})
    assert examples_dir(cfg, "multitask", wider, inputs.upstream) != folder
    assert examples_dir(cfg, "multitask", builder, {**inputs.upstream, "semantic_ids": "other"}) != folder


def test_decoder_comparison_is_cached_per_model_settings_and_sample(stage_cfg):
    from helpers import artifacts
    from helpers.generative import stage

    cfg, ids, inputs = stage_cfg
    # beams as wide as the catalogue: trie beam search is exhaustive, so it must find the exact top-K
    cfg["decoding"].update(num_beams=ids.n_items, num_groups=ids.n_items // 2)
    stage.train_model(cfg, "multitask", 0, inputs=inputs)
    first = stage.compare_decoders(cfg, "multitask", 0, per_task=6, inputs=inputs)
    folder = stage.decoder_comparison_dir(cfg, "multitask", 0, per_task=6, inputs=inputs)
    manifest = artifacts.read_manifest(folder)
    assert folder.parts[-3:-1] == ("decoder_comparison", "multitask-seed0")
    assert set(first["method"]) == set(METHODS) and set(first["task"]) == {"search", "rec"}
    assert (first["n"] == 6).all() and manifest["n_prompts"] == {"search": 6, "rec": 6}
    overlap = first.set_index(["method", "task"])["overlap_with_exact"]
    assert (overlap.loc["exact"] == 1.0).all() and (overlap.loc["trie_beam"] == 1.0).all()
    again = stage.compare_decoders(cfg, "multitask", 0, per_task=6, inputs=inputs)
    pd.testing.assert_frame_equal(again, first)  # read back: the timings of the run that measured them
    assert artifacts.read_manifest(folder)["created"] == manifest["created"]
    # the key: the model, the decoding settings and the sample, but not the profile's own method
    key = lambda c, **kw: stage.decoder_comparison_dir(c, "multitask", 0, inputs=inputs, **{"per_task": 6, **kw})  # noqa: E731
    assert key(cfg, per_task=7) != folder and key(cfg, sample_seed=1) != folder and key(cfg, repeats=2) != folder
    wider = {**cfg, "decoding": {**cfg["decoding"], "num_beams": 2 * ids.n_items}}
    assert key(wider) != folder
    exact = {**cfg, "decoding": {**cfg["decoding"], "method": "exact"}}
    assert key(exact) == folder
    assert stage.decoder_comparison_dir(cfg, "multitask", 1, per_task=6, inputs=inputs) != folder


def test_model_keys_cover_only_the_backbone_s_own_keys(stage_cfg):
    from helpers.generative import stage

    cfg, _, inputs = stage_cfg
    folder = stage.model_dir(cfg, "multitask", 0, inputs)

    def with_(**gen):
        return stage.model_dir({**cfg, "generative": {**cfg["generative"], **gen}}, "multitask", 0, inputs)

    # the minilm-frozen keys do not enter a t5-config model's key: no cached t5-config model retrains
    without = {k: v for k, v in cfg["generative"].items() if k not in ("text_encoder", "encoder_layers")}
    assert stage.model_dir({**cfg, "generative": without}, "multitask", 0, inputs) == folder
    assert with_(text_encoder="mpnet") == folder and with_(encoder_layers=3) == folder
    # speed and resumption settings do not retrain a model either
    assert with_(workers=7) == folder and with_(save_steps=100) == folder and with_(seeds=[5, 6]) == folder
    assert with_(torch_compile=True) == folder
    assert with_(d_model=64) != folder
    frozen = with_(backbone="minilm-frozen")
    assert frozen != folder and with_(backbone="minilm-frozen", vocabulary="full") == frozen
    assert with_(backbone="minilm-frozen", encoder_layers=2) != frozen
    assert with_(backbone="minilm-frozen", d_model=64) != frozen


@pytest.fixture
def frozen_stage(synthetic_dataset):
    """The smoke profile with a tiny minilm-frozen model; two constructions on one synthetic dataset."""
    from helpers.config import load_profile
    from helpers.generative.stage import ModelInputs

    n = synthetic_dataset.n_items
    inputs = {"multitask": ModelInputs(synthetic_dataset, shared_ids(n, collide=True),
                                       {"semantic_ids": "toy", "data": "synthetic"}),
              "search": ModelInputs(synthetic_dataset, shared_ids(n), {"semantic_ids": "toy_plain", "data": "synthetic"})}
    cfg = load_profile("smoke", {"generative": dict(FROZEN),
                                 "decoding": {"method": "trie_beam", "num_beams": 12, "num_groups": 6}})
    return cfg, inputs


def test_frozen_text_states_are_built_once_and_shared_by_constructions(frozen_stage, synthetic_dataset, monkeypatch):
    from helpers import artifacts
    from helpers.generative import stage, text_states

    cfg, inputs = frozen_stage
    states_folder = stage.text_states_dir(cfg, inputs["multitask"])
    assert stage.text_states_dir(cfg, inputs["search"]) == states_folder  # one per dataset, not per construction
    assert stage.load_text_states(cfg, inputs["multitask"]) is None
    folder = stage.train_model(cfg, "multitask", 0, inputs=inputs["multitask"])
    built = artifacts.read_manifest(states_folder)
    assert built["texts_by_kind"] == {"search": synthetic_dataset.queries["text"].nunique(), "rec": 1}
    assert artifacts.read_manifest(folder)["text_states"] == str(states_folder)
    assert (folder / "model.safetensors").stat().st_size < 2**20  # trainable weights only, no MiniLM inside

    def refuse(self, sequences, batch_size=0):
        raise AssertionError(f"the frozen encoder ran again, on {len(sequences)} texts")

    # from here on the frozen encoder must not run: another construction trains and decodes from the cache
    monkeypatch.setattr(text_states.FrozenTextEncoder, "encode", refuse)
    stage.train_model(cfg, "search", 0, inputs=inputs["search"])
    predictions = stage.predict(cfg, "search", 0, "test", inputs=inputs["search"])
    stage.check_predictions(predictions, synthetic_dataset.n_items, cfg["evaluation"]["k"])
    assert artifacts.read_manifest(states_folder)["created"] == built["created"]
    trained = stage.load_model(cfg, "search", 0, inputs["search"])
    assert trained.model.text_states.folder == states_folder and trained.model.text_states.computed == 0
    monkeypatch.undo()
    # a query typed later (the explorer): its states are computed on the fly; every item is real
    ids = inputs["search"].semantic_ids
    builder = ExampleBuilder(synthetic_dataset, ids, trained.tokenizer, cfg["generative"])
    decoder = ItemDecoder(trained.model, trained.tokenizer, ids, DecodingSettings.from_cfg(cfg["decoding"]))
    ranked = decoder.rank("search", builder.search_inputs(["a query nobody wrote before"]), 5)[0]
    assert trained.model.text_states.computed == 1
    assert 0 < len(ranked) <= 5 and all(0 <= i < ids.n_items for i in ranked)


def test_stage_refuses_unknown_construction_seed_and_split(stage_cfg):
    from helpers.generative import stage

    cfg, _, _ = stage_cfg
    with pytest.raises(ProfileError, match="Unknown construction"):
        stage.model_dir(cfg, "no_such_construction", 0)
    with pytest.raises(ProfileError, match="integer"):
        stage.model_dir(cfg, "multitask", "zero")
    with pytest.raises(ProfileError, match="'valid', 'test', 'train', 'human'"):
        stage.predictions_dir(cfg, "multitask", 0, "bogus")
    with pytest.raises(ProfileError, match="human_queries is null"):
        stage.predictions_dir({**cfg, "evaluation": {**cfg["evaluation"], "human_queries": None}}, "multitask", 0, "human")


def test_decoding_device_follows_the_setting_and_refuses_a_missing_gpu(monkeypatch):
    import torch

    from helpers.generative.stage import decoding_device

    assert decoding_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert decoding_device("auto") == torch.device("cpu")
    with pytest.raises(ProfileError, match="sees no GPU"):
        decoding_device("cuda:0")
    with pytest.raises(ProfileError, match="not a device"):
        decoding_device("tpu-please")


def test_checkpoints_every_save_steps_or_every_epoch(tmp_path):
    from helpers.generative.train import training_arguments

    per_epoch = training_arguments({**TINY, "save_steps": None}, tmp_path, 0, True, 100)
    assert per_epoch.save_strategy.value == "epoch"
    stepped = training_arguments({**TINY, "save_steps": 3}, tmp_path, 0, True, 100)
    assert stepped.save_strategy.value == "steps" and stepped.save_steps == 3


def test_torch_compile_reaches_the_trainer_and_refuses_a_non_bool(tmp_path):
    from helpers.errors import ProfileError
    from helpers.generative.train import training_arguments

    assert training_arguments({**TINY, "torch_compile": True}, tmp_path, 0, False, 100).torch_compile is True
    assert training_arguments(TINY, tmp_path, 0, False, 100).torch_compile is False
    with pytest.raises(ProfileError, match="torch_compile"):
        training_arguments({**TINY, "torch_compile": "yes"}, tmp_path, 0, False, 100)
