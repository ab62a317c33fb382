"""Two more views of search, beside the test paraphrases: why a model recalls, and on whose words.

* :func:`memorisation_table`: per construction, Search Recall@K on the *train* queries the model was
  fitted on (``pair < evaluation.train_queries_per_item``) next to the test paraphrases of the same
  pairs, and the share of test-query word pieces the model never trained on. A model that recalls
  its train queries but not their paraphrases memorised strings; one that recalls both reads them.
* :func:`human_query_table`: every construction, the dense bi-encoders the IDs are cut from, the
  lexical baseline and a query-blind most-popular ranking on the hand-written queries of
  ``evaluation.human_queries`` (:mod:`helpers.data.human_queries`), with how many targets are head
  items (a popularity ranking looks good on popular films).

Both read notebook 04's ``train`` and ``human`` predictions (``stage.predict_all(cfg, splits)``)
and compute nothing expensive; notebook 05 calls them and writes the tables.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..metrics import hits_at_k, most_popular_hits
from ..registry import resolve_constructions
from .baselines import lexical_search_hits, random_expected_recall

MEMORISATION_COLUMNS = ["construction", "n_seeds", "search_train", "search_test_same_pairs", "search_test",
                        "generalisation_gap", "untrained_token_share", "unknown_token_share", "n_train_queries"]
HUMAN_COLUMNS = ["method", "kind", "recall", "recall_std", "n_seeds", "n", "n_head_targets"]


def _seeds(cfg: dict) -> list[int]:
    return [int(s) for s in cfg["generative"]["seeds"]]


def _recall(predictions: pd.DataFrame, k: int) -> float:
    rows = predictions[predictions["task"] == "search"]
    return float(hits_at_k(list(rows["ranked"]), rows["target"].to_numpy(), k).mean()) if len(rows) else np.nan


def token_shares(tokenizer, train_texts, test_texts) -> dict:
    """Of the word pieces of ``test_texts`` (special tokens left out): the share that never occurs
    in ``train_texts`` (``untrained``: the model's trainable layers never saw them) and the share
    the tokenizer maps to its unknown token (``unknown``: the model cannot even tell them apart)."""
    special = set(getattr(tokenizer, "all_special_ids", []))
    unk = getattr(tokenizer, "unk_token_id", None)
    trained = {t for ids in tokenizer(list(train_texts), add_special_tokens=False)["input_ids"] for t in ids}
    test = [t for ids in tokenizer(list(test_texts), add_special_tokens=False)["input_ids"] for t in ids
            if t not in special or t == unk]
    if not test:
        return {"untrained": np.nan, "unknown": np.nan}
    return {"untrained": float(np.mean([t not in trained or t == unk for t in test])),
            "unknown": float(np.mean([t == unk for t in test]))}


def memorisation_table(cfg: dict, constructions=None) -> pd.DataFrame:
    """One row per construction, means over the profile's seeds (:data:`MEMORISATION_COLUMNS`).

    ``search_test_same_pairs`` is recall on the test paraphrases of the very train queries scored in
    ``search_train`` (test pair p paraphrases train pair p of the same item), so the gap compares
    like with like; ``search_test`` is over every decoded test query, as in Table 2.
    """
    from transformers import AutoTokenizer

    from ..data.stage import load_dataset
    from ..generative.stage import load_predictions, model_dir

    constructions = resolve_constructions(cfg, constructions)
    k = int(cfg["evaluation"]["k"])
    dataset = load_dataset(cfg)
    train = dataset.query_split("train")
    per_item = cfg["evaluation"].get("train_queries_per_item")
    pairs = dataset.query_split("test").set_index("query_id")["pair"]
    rows = []
    for construction in constructions:
        values = []
        for seed in _seeds(cfg):
            test = load_predictions(cfg, construction, seed, "test")
            searched = test[test["task"] == "search"]
            same = searched[pairs.loc[searched["query_key"]].to_numpy() < (per_item if per_item is not None else np.inf)]
            trained = load_predictions(cfg, construction, seed, "train")
            values.append((_recall(trained, k), _recall(same, k), _recall(test, k), len(trained)))
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir(cfg, construction, _seeds(cfg)[0])))  # no weights needed
        shares = token_shares(tokenizer, train["text"], dataset.query_split("test")["text"])
        mean = np.nanmean(np.array([v[:3] for v in values], dtype=float), axis=0)
        rows.append({"construction": construction, "n_seeds": len(values), "search_train": mean[0],
                     "search_test_same_pairs": mean[1], "search_test": mean[2],
                     "generalisation_gap": mean[0] - mean[1], "untrained_token_share": shares["untrained"],
                     "unknown_token_share": shares["unknown"], "n_train_queries": values[0][3]})
    return pd.DataFrame(rows, columns=MEMORISATION_COLUMNS)


def dense_human_hits(cfg: dict, queries: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per text space (content, search, multitask): whether each human query's film is in the top K
    by cosine between the space's query encoder and its item vectors (as notebook 02's reference)."""
    from ..embeddings.content import encode_texts
    from ..embeddings.reference import search_hits
    from ..embeddings.stage import load_embedding, load_query_encoder
    from ..registry import TEXT_SPACES

    k = int(cfg["evaluation"]["k"])
    out = {}
    for space in TEXT_SPACES:
        model = load_query_encoder(cfg, space)
        vectors = encode_texts(model, queries["text"].tolist(), cfg["embeddings"]["encode_batch_size"])
        out[space] = search_hits(load_embedding(cfg, space), vectors, queries["item_id"].to_numpy(), k)
    return out


def human_query_table(cfg: dict, constructions=None) -> pd.DataFrame | None:
    """Search Recall@K on the human queries: every construction (mean ± std over seeds), the dense
    references, the lexical baseline, most-popular and random (:data:`HUMAN_COLUMNS`); None when
    the profile has no human query set (``evaluation.human_queries: null``)."""
    from ..data.human_queries import human_queries_for
    from ..data.stage import load_dataset
    from ..generative.stage import load_predictions
    from ..registry import display_name

    dataset = load_dataset(cfg)
    queries = human_queries_for(cfg, dataset)
    if queries is None:
        return None
    constructions = resolve_constructions(cfg, constructions)
    k = int(cfg["evaluation"]["k"])
    targets = queries["item_id"].to_numpy()
    n_head = int(dataset.head_items(cfg["data"]["head_fraction"])[targets].sum())
    rows = []

    def add(method, kind, recalls):
        recalls = np.asarray(recalls, dtype=float)
        rows.append({"method": method, "kind": kind, "recall": float(recalls.mean()),
                     "recall_std": float(recalls.std(ddof=1)) if len(recalls) > 1 else np.nan,
                     "n_seeds": len(recalls) if kind == "generative" else np.nan,
                     "n": len(queries), "n_head_targets": n_head})

    for construction in constructions:
        add(display_name(construction), "generative",
            [_recall(load_predictions(cfg, construction, seed, "human"), k) for seed in _seeds(cfg)])
    for space, hits in dense_human_hits(cfg, queries).items():
        add(f"dense retrieval, {space} space", "dense reference", [hits.mean()])
    train = dataset.query_split("train")
    lexical = lexical_search_hits(train["text"].tolist(), train["item_id"].to_numpy(), queries["text"].tolist(),
                                  targets, dataset.n_items, k, seed=int(cfg["evaluation"].get("baseline_seed", 0)))
    add("lexical (TF-IDF to the train queries)", "baseline", [lexical.mean()])
    add("most popular (query-blind)", "baseline", [most_popular_hits(targets, dataset.popularity(), None, k).mean()])
    add("random (expected)", "baseline", [random_expected_recall(dataset.n_items, k)])
    return pd.DataFrame(rows, columns=HUMAN_COLUMNS)
