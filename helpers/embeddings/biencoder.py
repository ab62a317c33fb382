"""Search based and Multi-task item vectors: a bi-encoder fine-tuned with in-batch negatives.

* **search** (RIPOR-style, paper section 3.1): the pretrained sentence-transformer fine-tuned on
  (train query, item text) pairs with ``MultipleNegativesRankingLoss``: for each query, its item
  must score higher than every other item in the batch.
* **multitask** (paper section 3.2): the same model trained on two datasets at once,
  (train query, item text) and (item text, co-occurring item text), each with its own
  ``MultipleNegativesRankingLoss`` over the one shared encoder. sentence-transformers' multi-dataset
  training draws each batch from one dataset (``PROPORTIONAL``: in proportion to dataset sizes), so
  one epoch optimises the sum of the two contrastive losses, batch by batch.

Co-occurrence: two items co-occur when they are at most ``cooccurrence_window`` positions apart
in one user's chronological *train* history (window 1: consecutive interactions). Pair counts are
summed over users and made symmetric. Each item's partners are ranked by count, and pairs are
taken round by round (every item's strongest partner first, then every item's second, ...) so
that the co-occurrence signal covers the catalogue instead of only its most popular corner.

Loss and precision (``embeddings.<space>.loss``, ``mini_batch_size``, ``bf16``): ``mnrl`` is
``MultipleNegativesRankingLoss``, which embeds the whole batch in one forward pass, so its
activations grow with ``batch_size``; ``cached_mnrl`` is ``CachedMultipleNegativesRankingLoss``
(GradCache, Gao et al. 2021): the same loss and the same gradients over the same
``batch_size`` in-batch negatives, computed by embedding ``mini_batch_size`` texts at a time
(first without gradients, then again with the cached gradients of the loss with respect to the
embeddings), so memory follows ``mini_batch_size`` instead. ``bf16: auto`` trains in bf16 mixed
precision on a GPU that supports it and in fp32 otherwise (bf16 on this project's CPU is far
slower than fp32, docs/facts.md).

Only ``train`` queries and ``train`` interactions are ever used here.
"""
from __future__ import annotations

import logging
import tempfile
import time

import numpy as np
import pandas as pd

from ..data.dataset import Dataset
from ..errors import ProfileError

log = logging.getLogger(__name__)

#: ``embeddings.<space>.loss`` -> the sentence-transformers loss class it names.
LOSSES = {"mnrl": "MultipleNegativesRankingLoss", "cached_mnrl": "CachedMultipleNegativesRankingLoss"}


def check_training_params(params: dict, where: str = "embeddings.<search|multitask>") -> None:
    """Refuse an unknown ``loss``, a ``mini_batch_size`` below 1 or a ``bf16`` other than auto/true/false."""
    loss = params.get("loss", "mnrl")
    if loss not in LOSSES:
        raise ProfileError(f"{where}.loss must be one of {', '.join(LOSSES)}, got {loss!r}.")
    mini = params.get("mini_batch_size", 32)
    if isinstance(mini, bool) or not isinstance(mini, int) or mini < 1:
        raise ProfileError(f"{where}.mini_batch_size must be an integer >= 1, got {mini!r}.")
    bf16 = params.get("bf16", "auto")
    if bf16 != "auto" and not isinstance(bf16, bool):
        raise ProfileError(f"{where}.bf16 must be auto, true or false, got {bf16!r}.")


def resolve_bf16(setting="auto", where: str = "embeddings.<search|multitask>") -> bool:
    """Whether to train in bf16: ``auto`` only on a GPU that supports it (fp32 on CPU, where bf16
    is far slower); ``true`` / ``false`` as given (true without such a GPU warns)."""
    import torch

    gpu_bf16 = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if setting == "auto":
        return gpu_bf16
    if not isinstance(setting, bool):
        raise ProfileError(f"{where}.bf16 must be auto, true or false, got {setting!r}.")
    if setting and not gpu_bf16:
        log.warning("%s.bf16 is true without a bf16-capable GPU: expect training to be very slow.", where)
    return setting


def make_loss(model, params: dict):
    """The contrastive loss ``params["loss"]`` names (``mnrl`` | ``cached_mnrl``) over ``model``."""
    from sentence_transformers.sentence_transformer.losses import (CachedMultipleNegativesRankingLoss,
                                                                   MultipleNegativesRankingLoss)

    check_training_params(params)
    if params.get("loss", "mnrl") == "cached_mnrl":
        return CachedMultipleNegativesRankingLoss(model, mini_batch_size=int(params.get("mini_batch_size", 32)))
    return MultipleNegativesRankingLoss(model)


def _round_robin(frame: pd.DataFrame, rank: str, max_pairs: int | None, seed: int) -> pd.DataFrame:
    """Keep rows round by round of ``rank`` (0, 1, ...) until ``max_pairs``; random order within a round."""
    rng = np.random.default_rng(seed)
    shuffled = frame.assign(_tie=rng.permutation(len(frame)))
    ordered = shuffled.sort_values([rank, "_tie"], kind="stable").drop(columns="_tie")
    if max_pairs is not None:
        ordered = ordered.head(int(max_pairs))
    return ordered.reset_index(drop=True)


def query_item_pairs(dataset: Dataset, max_pairs: int | None = None, seed: int = 0) -> pd.DataFrame:
    """(train query, item text) pairs, spread evenly over items when capped by ``max_pairs``.

    Returns columns ``anchor`` (query text), ``positive`` (item text), ``item_id``, ``query_id``.
    """
    queries = dataset.query_split("train")
    texts = dataset.items["text"].to_numpy()
    pairs = pd.DataFrame({
        "anchor": queries["text"].to_numpy(),
        "positive": texts[queries["item_id"].to_numpy()],
        "item_id": queries["item_id"].to_numpy(np.int64),
        "query_id": queries["query_id"].to_numpy(np.int64),
        "round": queries["pair"].to_numpy(),
    })
    return _round_robin(pairs, "round", max_pairs, seed).drop(columns="round")


def cooccurrence_counts(dataset: Dataset, window: int = 1) -> pd.DataFrame:
    """Symmetric co-occurrence counts within ``window`` positions of train histories.

    Returns columns ``item_id``, ``partner_id``, ``count`` (both directions of each pair; no self-pairs).
    """
    if window < 1:
        raise ValueError("embeddings.multitask.cooccurrence_window must be >= 1.")
    anchors, partners = [], []
    for history in dataset.histories(("train",)):
        for offset in range(1, window + 1):
            if len(history) > offset:
                anchors.append(history[:-offset])
                partners.append(history[offset:])
    if not anchors:
        return pd.DataFrame({"item_id": [], "partner_id": [], "count": []}, dtype=np.int64)
    a = np.concatenate(anchors)
    b = np.concatenate(partners)
    keep = a != b
    a, b = a[keep], b[keep]
    both = pd.DataFrame({"item_id": np.concatenate([a, b]), "partner_id": np.concatenate([b, a])})
    return both.value_counts().rename("count").reset_index()


def cooccurrence_pairs(dataset: Dataset, window: int = 1, max_pairs: int | None = None, seed: int = 0) -> pd.DataFrame:
    """(item text, co-occurring item text) pairs: each item's strongest partners first, round by round.

    An unordered pair appears once (as item -> partner for its first round). Returns columns
    ``anchor``, ``positive`` (texts), ``item_id``, ``partner_id``, ``count``.
    """
    counts = cooccurrence_counts(dataset, window)
    rng = np.random.default_rng(seed)
    counts = counts.assign(_tie=rng.random(len(counts)))
    counts = counts.sort_values(["item_id", "count", "_tie"], ascending=[True, False, True], kind="stable")
    counts["round"] = counts.groupby("item_id").cumcount()
    ranked = _round_robin(counts.drop(columns="_tie"), "round", None, seed)
    # drop the reverse duplicate of a pair already taken (in an earlier or the same round)
    key = np.sort(ranked[["item_id", "partner_id"]].to_numpy(), axis=1)
    ranked = ranked[~pd.DataFrame(key).duplicated().to_numpy()]
    if max_pairs is not None:
        ranked = ranked.head(int(max_pairs))
    texts = dataset.items["text"].to_numpy()
    return pd.DataFrame({
        "anchor": texts[ranked["item_id"].to_numpy()],
        "positive": texts[ranked["partner_id"].to_numpy()],
        "item_id": ranked["item_id"].to_numpy(np.int64),
        "partner_id": ranked["partner_id"].to_numpy(np.int64),
        "count": ranked["count"].to_numpy(np.int64),
    }).reset_index(drop=True)


def fine_tune(model, pair_sets: dict[str, pd.DataFrame], params: dict, seed: int = 0) -> dict:
    """Fine-tune ``model`` in place with one in-batch-negatives loss (``params["loss"]``) per pair set.

    Uses ``SentenceTransformerTrainer`` with ``BatchSamplers.NO_DUPLICATES`` (an item text never
    appears twice in a batch, where it would be a false in-batch negative) and, for several pair
    sets, the multi-dataset trainer (``MultiDatasetBatchSamplers`` from ``params["sampler"]``).

    Args:
        model: a SentenceTransformer (e.g. from ``models.load_sentence_model``).
        pair_sets: task name -> DataFrame with ``anchor`` and ``positive`` text columns.
        params: ``epochs``, ``batch_size``, ``lr``, optional ``warmup`` (fraction of steps),
            ``sampler`` (``proportional`` | ``round_robin``), ``loss`` (``mnrl``, the default |
            ``cached_mnrl``), ``mini_batch_size`` (cached_mnrl: texts per forward pass, default 32)
            and ``bf16`` (``auto``, the default: bf16 on a GPU that supports it | true | false).
        seed: trainer seed (data order, dropout).

    Returns:
        A training card: pairs per task, steps, epochs, final and per-step losses, seconds.
    """
    import torch
    from datasets import Dataset as HFDataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers, MultiDatasetBatchSamplers
    from transformers.trainer_callback import PrinterCallback

    empty = [name for name, pairs in pair_sets.items() if len(pairs) < 2]
    if empty:
        raise ValueError(f"Not enough training pairs for {', '.join(empty)}: in-batch negatives need at least 2.")
    hf_sets = {name: HFDataset.from_dict({"anchor": pairs["anchor"].tolist(),
                                          "positive": pairs["positive"].tolist()})
               for name, pairs in pair_sets.items()}
    losses = {name: make_loss(model, params) for name in hf_sets}
    bf16 = resolve_bf16(params.get("bf16", "auto"))
    single = len(hf_sets) == 1
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="sid-biencoder-") as out:
        args = SentenceTransformerTrainingArguments(
            output_dir=out,
            num_train_epochs=float(params["epochs"]),
            per_device_train_batch_size=int(params["batch_size"]),
            learning_rate=float(params["lr"]),
            warmup_steps=float(params.get("warmup", 0.1)),
            seed=int(seed),
            data_seed=int(seed),
            bf16=bf16,
            batch_sampler=BatchSamplers.NO_DUPLICATES,
            multi_dataset_batch_sampler=MultiDatasetBatchSamplers(params.get("sampler", "proportional")),
            save_strategy="no",
            eval_strategy="no",
            logging_strategy="steps",
            logging_steps=1,
            report_to="none",
            disable_tqdm=True,
            dataloader_num_workers=0,
            dataloader_pin_memory=torch.cuda.is_available(),
        )
        trainer = SentenceTransformerTrainer(
            model=model,
            args=args,
            train_dataset=next(iter(hf_sets.values())) if single else hf_sets,
            loss=next(iter(losses.values())) if single else losses,
        )
        # disable_tqdm makes the Trainer print every log dict; the losses are kept in the card instead
        trainer.remove_callback(PrinterCallback)
        output = trainer.train()
        step_losses = [round(float(entry["loss"]), 4) for entry in trainer.state.log_history if "loss" in entry]
    model.eval()
    return {
        "pairs": {name: len(pairs) for name, pairs in pair_sets.items()},
        "epochs": params["epochs"],
        "batch_size": params["batch_size"],
        "lr": params["lr"],
        "sampler": None if single else params.get("sampler", "proportional"),
        "loss": LOSSES[params.get("loss", "mnrl")] + ("" if single else " per task (summed over batches)"),
        "mini_batch_size": (int(params.get("mini_batch_size", 32))
                            if params.get("loss", "mnrl") == "cached_mnrl" else None),
        "bf16": bool(bf16),
        "steps": int(output.global_step),
        "train_loss": round(float(output.training_loss), 4),
        "step_losses": step_losses,
        "seconds": round(time.time() - started, 2),
    }
