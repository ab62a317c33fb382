"""Rec. based item vectors: ENMF (Chen et al., TOIS 2020) trained through RecBole.

The paper trains ENMF via RecBole (30 epochs, batch 512, dim 256, lr 0.001, Adam) and uses its
item embeddings. We drive RecBole through its lower-level API (``Config``, ``create_dataset``,
``data_preparation``, ``get_model``, ``get_trainer``) because ``run_recbole`` imports ray.

Leakage guard: RecBole gets our own chronological split as atomic files and never splits by
itself (``benchmark_filename``, see docs/facts.md). Its three files hold

* ``<name>.train.inter``: our ``train`` interactions (the only ones ENMF trains on);
* ``<name>.valid.inter`` and ``<name>.test.inter``: our ``valid`` interactions (RecBole insists
  on a test file; we never use its evaluation, and our ``test`` interactions are never written).

Everything RecBole writes (atomic files, tensorboard logs, its ``saved/`` folder) goes into a
temporary folder that is deleted afterwards; ``saved=False`` so no checkpoint is reloaded
(which would fail under torch's ``weights_only`` default).

Item order: RecBole remaps our item ids (used as string tokens) to its own internal ids, row 0 of
``model.item_embedding.weight`` being padding. We map rows back with ``dataset.id2token``.
Items with no train interaction never received a positive gradient (those absent from every
file are not even in RecBole's vocabulary); they get the mean vector of the trained items, so
that every row stays finite and has a direction, and ``EnmfResult.trained_items`` marks them.
"""
from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.dataset import Dataset

log = logging.getLogger(__name__)

#: RecBole's name for our data inside its temporary data_path.
RECBOLE_DATASET_NAME = "sid"
#: numpy names that RecBole 1.2.1 uses but numpy 2 removed.
_NUMPY2_REMOVED_ALIASES = {"float_": "float64", "complex_": "complex128", "unicode_": "str_"}


def restore_numpy_aliases() -> None:
    """Give numpy 2 back the aliases RecBole 1.2.1 needs (``np.float_`` and friends).

    RecBole's ``Config.compatibility_settings`` assigns ``np.float = np.float_`` etc. at import
    time of a config, which raises AttributeError on numpy 2 unless these names exist again.
    """
    for old, new in _NUMPY2_REMOVED_ALIASES.items():
        if old not in np.__dict__:
            setattr(np, old, getattr(np, new))


@dataclass
class EnmfResult:
    """What a trained ENMF gives back, in our id order.

    Attributes:
        item_vectors: float32 (n_items, dim), row i = item_id i (``model.item_embedding``).
        user_vectors: float32 (n_users, dim), row u = user_id u; zeros for users RecBole never saw.
        h_weights: float32 (dim,), ENMF's output layer: score(u, i) = sum_k h_k u_k i_k.
        trained_items: bool (n_items,), True for items with at least one train interaction.
        recbole_interactions: the (user_id, item_id, timestamp) rows RecBole loaded from all
            three files, mapped back to our ids: the evidence that no test interaction reached it.
        train_loss: loss per epoch.
        seconds: wall time of the RecBole part (files, dataset, training).
    """

    item_vectors: np.ndarray
    user_vectors: np.ndarray
    h_weights: np.ndarray
    trained_items: np.ndarray
    recbole_interactions: pd.DataFrame
    train_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def scores(self, user_ids: np.ndarray) -> np.ndarray:
        """ENMF's own full-catalogue scores for ``user_ids``: (len(user_ids), n_items)."""
        return (self.user_vectors[user_ids] * self.h_weights) @ self.item_vectors.T


def write_atomic_files(dataset: Dataset, folder: Path, name: str = RECBOLE_DATASET_NAME) -> dict[str, Path]:
    """Write RecBole benchmark files for ``dataset`` into ``folder/name/``; return them by split.

    Columns: ``user_id:token``, ``item_id:token``, ``timestamp:float`` (our ids as tokens).
    No missing values (pandas 3 turns RecBole's in-place ``fillna`` into a no-op).
    """
    inter = dataset.interactions
    files = {
        "train": inter[inter["split"] == "train"],
        "valid": inter[inter["split"] == "valid"],
        "test": inter[inter["split"] == "valid"],  # placeholder: our test split never leaves us
    }
    target = Path(folder) / name
    target.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, rows in files.items():
        out = rows[["user_id", "item_id", "timestamp"]].copy()
        out.columns = ["user_id:token", "item_id:token", "timestamp:float"]
        path = target / f"{name}.{split}.inter"
        out.to_csv(path, sep="\t", index=False)
        paths[split] = path
    return paths


def recbole_config_dict(params: dict, data_path: Path, seed: int, device: str) -> dict:
    """RecBole settings for ENMF on our pre-split files (see RecBole's properties/overall.yaml)."""
    return {
        "data_path": str(data_path),
        "benchmark_filename": ["train", "valid", "test"],
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        # ENMF learns from all unobserved items at once: no negative sampling.
        "train_neg_sample_args": None,
        "epochs": int(params["epochs"]),
        "train_batch_size": int(params["batch_size"]),
        "learning_rate": float(params["lr"]),
        "embedding_size": int(params["dim"]),
        "learner": "adam",
        "seed": int(seed),
        "reproducibility": True,
        "use_gpu": device != "cpu",
        "device": device,
        "show_progress": False,
        "state": "WARNING",
        "checkpoint_dir": str(Path(data_path) / "saved"),
        "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user", "order": "TO", "mode": "full"},
        "metrics": ["Recall"],
        "topk": [10],
        "valid_metric": "Recall@10",
        "log_wandb": False,
    }


def train_enmf(dataset: Dataset, params: dict, seed: int = 0, device: str | None = None) -> EnmfResult:
    """Train ENMF on ``dataset``'s train interactions through RecBole and export its vectors.

    Args:
        dataset: the S&R dataset (only its ``train`` and ``valid`` rows are written for RecBole).
        params: ``embeddings.rec`` of the profile: ``epochs``, ``batch_size``, ``dim``, ``lr``.
        seed: RecBole's seed (``init_seed``, reproducible mode).
        device: ``"cpu"`` or ``"cuda"``; default: cuda when available.
    """
    import torch

    restore_numpy_aliases()
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="sid-recbole-") as tmp, _quiet_recbole(tmp):
        write_atomic_files(dataset, Path(tmp))
        config = Config(model="ENMF", dataset=RECBOLE_DATASET_NAME,
                        config_dict=recbole_config_dict(params, Path(tmp), seed, device))
        init_seed(config["seed"], config["reproducibility"])
        rb_dataset = create_dataset(config)
        train_data, _valid_data, _test_data = data_preparation(config, rb_dataset)
        model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
        # No valid loader: no early stopping and no evaluation; saved=False: no checkpoint to reload.
        trainer.fit(train_data, valid_data=None, verbose=False, saved=False, show_progress=False)
        losses = [float(trainer.train_loss_dict[epoch]) for epoch in sorted(trainer.train_loss_dict)]
        seen = _interactions_as_our_ids(rb_dataset)
        item_vectors, user_vectors, h = _export(model, rb_dataset, dataset.n_items, dataset.n_users)
        trainer.tensorboard.close()
    trained = np.bincount(dataset.interactions.loc[dataset.interactions["split"] == "train", "item_id"],
                          minlength=dataset.n_items) > 0
    if trained.any() and not trained.all():
        item_vectors[~trained] = item_vectors[trained].mean(axis=0)
    return EnmfResult(item_vectors=item_vectors, user_vectors=user_vectors, h_weights=h,
                      trained_items=trained, recbole_interactions=seen, train_loss=losses,
                      seconds=round(time.time() - started, 2))


@contextlib.contextmanager
def _quiet_recbole(workdir: str):
    """Run RecBole in ``workdir`` with a clean ``sys.argv`` and without its known-harmless noise.

    * chdir: RecBole's Trainer writes tensorboard logs to ./log_tensorboard unconditionally;
    * ``sys.argv``: RecBole's Config parses ``--key=value`` command-line options, which inside
      pytest, papermill or a script belong to someone else;
    * warnings: pandas 3's ChainedAssignmentError for RecBole's in-place ``fillna`` (a no-op here,
      our files have no missing values), torch's GradScaler deprecation; RecBole logs its dataset
      statistics as warnings on the root logger.
    """
    saved_argv = sys.argv
    root = logging.getLogger()
    saved_level = root.level
    try:
        sys.argv = sys.argv[:1]
        root.setLevel(logging.ERROR)
        with contextlib.chdir(workdir), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=pd.errors.ChainedAssignmentError)
            warnings.filterwarnings("ignore", category=FutureWarning, message=".*GradScaler")
            warnings.filterwarnings("ignore", category=UserWarning, message=".*not writable")
            yield
    finally:
        sys.argv = saved_argv
        root.setLevel(saved_level)


def _interactions_as_our_ids(rb_dataset) -> pd.DataFrame:
    """Every interaction RecBole holds (all benchmark files), with RecBole ids mapped back to ours."""
    feat = rb_dataset.inter_feat
    users = rb_dataset.id2token(rb_dataset.uid_field, feat[rb_dataset.uid_field].numpy())
    items = rb_dataset.id2token(rb_dataset.iid_field, feat[rb_dataset.iid_field].numpy())
    return pd.DataFrame({
        "user_id": np.asarray(users).astype(np.int64),
        "item_id": np.asarray(items).astype(np.int64),
        "timestamp": feat[rb_dataset.time_field].numpy().astype(np.int64),
    })


def _export(model, rb_dataset, n_items: int, n_users: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Move ENMF's embedding rows from RecBole's internal order into ours (row 0 is padding)."""
    item_weight = model.item_embedding.weight.detach().cpu().numpy().astype(np.float32)
    user_weight = model.user_embedding.weight.detach().cpu().numpy().astype(np.float32)
    h = model.H_i.weight.detach().cpu().numpy().astype(np.float32).reshape(-1)
    item_vectors = np.zeros((n_items, item_weight.shape[1]), dtype=np.float32)
    user_vectors = np.zeros((n_users, user_weight.shape[1]), dtype=np.float32)
    internal_items = np.arange(1, rb_dataset.item_num)
    our_items = np.asarray(rb_dataset.id2token(rb_dataset.iid_field, internal_items)).astype(np.int64)
    item_vectors[our_items] = item_weight[internal_items]
    internal_users = np.arange(1, rb_dataset.user_num)
    our_users = np.asarray(rb_dataset.id2token(rb_dataset.uid_field, internal_users)).astype(np.int64)
    user_vectors[our_users] = user_weight[internal_users]
    return item_vectors, user_vectors, h
