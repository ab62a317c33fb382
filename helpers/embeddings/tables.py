"""Presentation tables of notebook 02: the paper's settings beside the profile's, and what was built.

Display only: nothing here builds or caches an artifact (that is :mod:`helpers.embeddings.stage`).
"""
from __future__ import annotations

import pandas as pd

from ..registry import SPACE_NAMES as DISPLAY_NAMES
from ..registry import SPACES
from .stage import load_card

#: The paper's settings (section 4), for the side-by-side table; the paper profile reproduces them.
PAPER_SETTINGS = {
    "content": "all-mpnet-base-v2, pretrained, over title, year, description, genres, tags, genome",
    "search": "all-mpnet-base-v2 + MultipleNegativesRankingLoss, 5 epochs, batch 512, lr 2e-5, Adam, "
              "all train queries (10 per item)",
    "rec": "ENMF via RecBole, 30 epochs, batch 512, dim 256, lr 0.001, Adam",
    "multitask": "bi-encoder on query-item and co-occurring item-item pairs, sum of the two contrastive "
                 "losses (epochs, batch and co-occurrence definition not given)",
    "fused_concat": "[l2(search), l2(rec)] (the paper: 386 + 256 dims)",
    "fused_svd": "l2, larger space reduced by truncated SVD to the other's dim, then added",
}


def settings_table(cfg: dict) -> pd.DataFrame:
    """Per space: the paper's settings next to this profile's."""
    emb = cfg["embeddings"]

    def tuned(space):
        p = emb[space]
        pairs = "all train queries" if p["max_pairs"] is None else f"at most {p['max_pairs']} pairs"
        extra = (f" per task; co-occurrence window {p['cooccurrence_window']}, {p['sampler']} batches"
                 if space == "multitask" else "")
        loss = ("CachedMultipleNegativesRankingLoss (mini-batches of " f"{p['mini_batch_size']})"
                if p.get("loss") == "cached_mnrl" else "MultipleNegativesRankingLoss")
        return (f"{emb['model']} + {loss}, {p['epochs']} epochs, batch {p['batch_size']}, "
                f"lr {p['lr']:g}, {pairs}{extra}")

    rec = emb["rec"]
    ours = {
        "content": f"{emb['model']}, pretrained, over the item text (max {emb['max_seq_length']} word pieces)",
        "search": tuned("search"),
        "rec": f"ENMF via RecBole ({rec['implementation']}), {rec['epochs']} epochs, batch {rec['batch_size']}, dim {rec['dim']}, "
               f"lr {rec['lr']:g}, Adam",
        "multitask": tuned("multitask"),
        "fused_concat": "[l2(search), l2(rec)]",
        "fused_svd": f"as the paper (TruncatedSVD, seed {emb['fused_svd']['seed']})",
    }
    return pd.DataFrame({"space": list(SPACES), "name": [DISPLAY_NAMES[s] for s in SPACES],
                         "paper": [PAPER_SETTINGS[s] for s in SPACES],
                         f"profile '{cfg['name']}'": [ours[s] for s in SPACES]})


def cards_table(cfg: dict) -> pd.DataFrame:
    """One row per built space: dimension, what it was trained on, how long it took."""
    rows = []
    for space in SPACES:
        card = load_card(cfg, space)
        training = card.get("training") or {}
        rows.append({
            "space": space, "dim": card["dim"], "normalized": card.get("normalized"),
            "trained on": ", ".join(f"{n} {k} pairs" for k, n in training.get("pairs", {}).items())
                          or ("train interactions" if space == "rec" else "-"),
            "epochs": training.get("epochs"), "steps": training.get("steps"),
            "final loss": training.get("train_loss", (training.get("epoch_losses") or [None])[-1]),
            "seconds": card["seconds"],
        })
    return pd.DataFrame(rows)
