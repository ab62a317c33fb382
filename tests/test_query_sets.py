"""The human query set, the diagnostic prediction splits, token shares and parallel jobs."""
from __future__ import annotations

import csv
import operator

import numpy as np
import pytest

from helpers.errors import DataError

from test_generative import TINY, shared_ids


def write_queries(path, rows, header=("source_id", "title", "query", "kind")):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# ---- the query file -------------------------------------------------------------------------------
def test_shipped_set_matches_the_ml100k_catalogue_and_spans_popularity():
    """Every shipped row names a real ml-100k film by its exact title, without the title in the query."""
    from helpers.data.human_queries import KINDS, load_human_queries, shipped_sets
    from helpers.data.movielens import load_recbole_ml100k, recbole_ml100k_path

    assert "ml100k" in shipped_sets()
    items, interactions, _ = load_recbole_ml100k(recbole_ml100k_path())
    items = items.assign(item_id=np.arange(len(items)), source_id=items["source_id"].astype(str))
    queries = load_human_queries("ml100k", items)
    assert len(queries) >= 95 and queries["item_id"].is_unique
    assert set(queries["kind"]) == set(KINDS)
    # across the popularity range: popular films and long-tail ones
    ranks = interactions["source_id"].astype(str).value_counts().rank(ascending=False, method="first")
    ranks = ranks.reindex(queries["source_id"]).fillna(len(items)).to_numpy()
    assert (ranks <= 17).sum() >= 10 and (ranks > 300).sum() >= 30

def test_query_file_errors_say_what_to_fix(tmp_path, synthetic_dataset):
    from helpers.data.human_queries import human_queries_path, load_human_queries

    items = synthetic_dataset.items
    with pytest.raises(DataError, match="does not exist"):
        human_queries_path(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="No shipped human query set named 'nope'.*ml100k"):
        human_queries_path("nope")
    bad_header = write_queries(tmp_path / "header.csv", [["s0", "Title 0", "robots in space", "plot"]],
                               header=("id", "title", "query", "kind"))
    with pytest.raises(DataError, match="expected exactly"):
        load_human_queries(bad_header, items)
    with pytest.raises(DataError, match="unknown kind"):
        load_human_queries(write_queries(tmp_path / "kind.csv", [["s0", "Title 0", "robots in space", "vibe"]]), items)
    with pytest.raises(DataError, match="empty query"):
        load_human_queries(write_queries(tmp_path / "empty.csv", [["s0", "Title 0", " ", "plot"]]), items)
    with pytest.raises(DataError, match="titled 'Title 1' in the catalogue"):
        load_human_queries(write_queries(tmp_path / "title.csv", [["s1", "Title 0", "robots in space", "plot"]]), items)
    leaking = [["s5", "Title 5", "a film called title 5", "plot"]]
    with pytest.raises(DataError, match="names its film's title"):
        load_human_queries(write_queries(tmp_path / "leak.csv", leaking), items)
    with pytest.raises(DataError, match="another dataset"):
        load_human_queries(write_queries(tmp_path / "other.csv", [["999", "Heat", "bank robbers", "plot"]]), items)


def test_films_outside_the_catalogue_are_left_out(tmp_path, synthetic_dataset):
    from helpers.data.human_queries import FRAME_COLUMNS, load_human_queries

    rows = [["s3", "Title 3", "pirates and robots at sea", "plot"], ["999", "Heat", "bank robbers in la", "plot"],
            ["s7", "Title 7", "a cheerful evening watch", "mood"]]
    queries = load_human_queries(write_queries(tmp_path / "q.csv", rows), synthetic_dataset.items)
    assert list(queries.columns) == FRAME_COLUMNS
    assert queries["item_id"].tolist() == [3, 7] and queries["query_id"].tolist() == [0, 1]


# ---- the diagnostic splits of the generative stage ---------------------------------------------------
def test_train_and_human_splits_are_decoded_and_keyed_by_their_queries(synthetic_dataset, tmp_path):
    from helpers.config import load_profile
    from helpers.generative import stage

    ids = shared_ids(synthetic_dataset.n_items)
    inputs = stage.ModelInputs(synthetic_dataset, ids, {"semantic_ids": "toy", "data": "synthetic-splits"})
    rows = [["s3", "Title 3", "pirates and robots at sea", "plot"], ["s7", "Title 7", "a cheerful evening", "mood"]]
    path = write_queries(tmp_path / "q.csv", rows)
    cfg = load_profile("smoke", {"generative": dict(TINY), "evaluation": {"human_queries": str(path),
                                                                          "train_queries_per_item": 2},
                                 "decoding": {"method": "trie_beam", "num_beams": 12, "num_groups": 6}})
    train = stage.predict(cfg, "multitask", 0, "train", inputs=inputs)
    expected = synthetic_dataset.query_split("train")
    assert set(train["task"]) == {"search"}
    assert sorted(train["query_key"]) == sorted(expected.loc[expected["pair"] < 2, "query_id"])
    human = stage.predict(cfg, "multitask", 0, "human", inputs=inputs)
    assert human["target"].tolist() == [3, 7] and human["query_key"].tolist() == [0, 1]
    stage.check_predictions(human, ids.n_items, cfg["evaluation"]["k"])
    before = stage.predictions_dir(cfg, "multitask", 0, "human", inputs)
    write_queries(path, rows[:1])  # another query file is another artifact
    assert stage.predictions_dir(cfg, "multitask", 0, "human", inputs) != before
    assert stage.profile_splits(cfg) == ("test", "train", "human")
    cfg["evaluation"]["human_queries"] = None
    assert stage.profile_splits(cfg) == ("test", "train")


def test_token_shares_count_untrained_and_unknown_word_pieces():
    from helpers.evaluation.query_sets import token_shares

    class Words:  # a whitespace tokenizer whose vocabulary lacks "zebra"
        vocab = {"[UNK]": 0, "a": 1, "scary": 2, "movie": 3, "frightening": 4, "film": 5}
        unk_token_id, all_special_ids = 0, [0]

        def __call__(self, texts, add_special_tokens=False):
            return {"input_ids": [[self.vocab.get(w, 0) for w in t.split()] for t in texts]}

    shares = token_shares(Words(), ["a scary movie"], ["a frightening film", "zebra movie"])
    # test pieces: a, frightening, film, [UNK], movie -> untrained: frightening, film, [UNK]; unknown: [UNK]
    assert shares == {"untrained": pytest.approx(3 / 5), "unknown": pytest.approx(1 / 5)}


# ---- parallel jobs -------------------------------------------------------------------------------------
def test_jobs_in_worker_processes_return_what_one_process_returns():
    from helpers.generative.workers import run_jobs, threads_per_worker

    jobs = [(2,), (3,), (5,)]
    assert run_jobs(operator.mul, 10, jobs, workers=2, progress=False) == \
        run_jobs(operator.mul, 10, jobs, workers=1, progress=False) == {(2,): 20, (3,): 30, (5,): 50}
    with pytest.raises(ZeroDivisionError):
        run_jobs(operator.truediv, 1, [(1,), (0,)], workers=2, progress=False)
    assert threads_per_worker(10_000) == 1

