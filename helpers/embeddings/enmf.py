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

Which ENMF (``params["implementation"]``, default ``"sparse"``):

* ``"sparse"``: :class:`SparseENMF`, our subclass of RecBole's ``ENMF`` with the same parameters,
  initialisation, dropout and optimiser, whose loss fits MovieLens-25M (see its docstring), and
  with RecBole's padding bug fixed: padding is never a positive and never an item;
* ``"sparse-recbole-padding"``: the same subclass reproducing RecBole's loss exactly, padding
  included (for comparisons);
* ``"recbole"``: RecBole's own ``ENMF``.

On the ml100k profile (25 epochs) ``"sparse-recbole-padding"`` gives RecBole's Recall@30 of ENMF's
own scores (0.1866) and the padding fix raises it to 0.2386 (benchmarks/README_enmf.md).
"""
from __future__ import annotations

import contextlib
import functools
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
from ..registry import ENMF_IMPLEMENTATIONS

log = logging.getLogger(__name__)

#: RecBole's name for our data inside its temporary data_path.
RECBOLE_DATASET_NAME = "sid"
#: ``params["implementation"]`` values: our subclass (padding fixed), our subclass with RecBole's
#: padding behaviour, RecBole's own class.
IMPLEMENTATIONS = ENMF_IMPLEMENTATIONS
DEFAULT_IMPLEMENTATION = "sparse"
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
        params: ``embeddings.rec`` of the profile: ``epochs``, ``batch_size``, ``dim``, ``lr``, and
            optionally ``implementation`` (one of :data:`IMPLEMENTATIONS`, default ``"sparse"``).
        seed: RecBole's seed (``init_seed``, reproducible mode).
        device: ``"cpu"`` or ``"cuda"``; default: cuda when available.
    """
    import torch

    restore_numpy_aliases()
    from recbole.utils import get_trainer

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    implementation = params.get("implementation", DEFAULT_IMPLEMENTATION)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="sid-recbole-") as tmp, quiet_recbole(tmp):
        config, rb_dataset, train_data = prepare_recbole(dataset, params, Path(tmp), seed, device)
        model = build_enmf(config, train_data._dataset, implementation)
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


def prepare_recbole(dataset: Dataset, params: dict, folder: Path, seed: int, device: str):
    """Write ``dataset``'s files into ``folder`` and load them: ``(config, rb_dataset, train_data)``.

    Seeds RecBole (``init_seed``) before loading, so that the model built next starts from the
    seed's weights. Call it inside :func:`quiet_recbole` on the same ``folder``.
    """
    restore_numpy_aliases()
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_seed

    write_atomic_files(dataset, Path(folder))
    config = Config(model="ENMF", dataset=RECBOLE_DATASET_NAME,
                    config_dict=recbole_config_dict(params, Path(folder), seed, device))
    init_seed(config["seed"], config["reproducibility"])
    rb_dataset = create_dataset(config)
    train_data, _valid_data, _test_data = data_preparation(config, rb_dataset)
    return config, rb_dataset, train_data


def build_enmf(config, train_dataset, implementation: str = DEFAULT_IMPLEMENTATION):
    """The ENMF model of ``implementation`` (see :data:`IMPLEMENTATIONS`), on ``config["device"]``.

    ``train_dataset`` is RecBole's training dataset (``train_data._dataset``). Every implementation
    draws its initial weights from torch's generator in the same order, so under the same seed
    they start from the same weights (up to the padding rows, which ``"sparse"`` zeroes).
    """
    if implementation == "recbole":
        from recbole.utils import get_model

        model = get_model("ENMF")(config, train_dataset)
    elif implementation in ("sparse", "sparse-recbole-padding"):
        model = sparse_enmf_class()(config, train_dataset,
                                    recbole_padding=implementation == "sparse-recbole-padding")
    else:
        raise ValueError(f"Unknown ENMF implementation {implementation!r}; expected one of {IMPLEMENTATIONS}.")
    return model.to(config["device"])


def train_history_csr(train_dataset) -> tuple[np.ndarray, np.ndarray]:
    """RecBole's train interactions as CSR: ``(indptr, items)``, user u's items at indptr[u]:indptr[u+1].

    Rows are RecBole's internal user ids (row 0, padding, is empty). Like RecBole's
    ``history_item_matrix``, it first shuffles the interactions with ``torch.randperm`` (one draw
    from torch's generator, which a model must make to start from RecBole's weights), so that
    each row lists its items in the order of RecBole's matrix.
    """
    import torch

    users = train_dataset.inter_feat[train_dataset.uid_field].numpy().astype(np.int64)
    items = train_dataset.inter_feat[train_dataset.iid_field].numpy().astype(np.int64)
    shuffled = torch.randperm(len(users)).numpy()
    users, items = users[shuffled], items[shuffled]
    order = np.argsort(users, kind="stable")
    counts = np.bincount(users, minlength=train_dataset.user_num)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return indptr, items[order]


@functools.cache
def sparse_enmf_class():
    """:class:`SparseENMF`, built on first use (importing RecBole takes seconds)."""
    restore_numpy_aliases()
    import torch
    from torch import nn
    from recbole.model.abstract_recommender import GeneralRecommender
    from recbole.model.general_recommender.enmf import ENMF
    from recbole.model.init import xavier_normal_initialization

    class SparseENMF(ENMF):
        r"""RecBole's ENMF with a loss whose memory does not grow with n_items x d x d or users x
        longest history.

        RecBole 1.2.1 trains ENMF on batches of user ids (its ``UserDataLoader``: every id
        ``0 .. user_num - 1`` once per epoch, the padding user 0 included). Its
        ``ENMF.calculate_loss`` for batch users ``b`` with dropout-ed vectors ``p_b``, item matrix
        ``E`` (all ``n_items`` rows, padding row 0 included), output weights ``h`` and negative
        weight ``w`` is

            w * sum( (sum_i e_i e_i^T) * (sum_b q_b q_b^T) * h h^T )         (all pairs)
            + sum_b sum_{j < L} (1 - w) s_bj^2 - 2 s_bj                        (positives)
            + reg_weight * (||U||_F + ||E||_F)

        with ``q_b`` the batch's user vectors *without* dropout, ``s_bj = h . (p_b * e_{H[b, j]})``
        and ``H`` RecBole's ``history_item_matrix``: users x L, L the longest train history, every
        row padded with item 0. RecBole builds ``sum_i e_i e_i^T`` as ``torch.bmm`` over an
        (n_items, d, d) tensor (15.2 GiB for 62,423 items at d = 256, benchmarks/README_enmf.md),
        keeps ``H`` dense on the device and gathers a (batch, L, d) tensor of item vectors.

        This class computes the same loss with

        * the all-pairs term from ``E^T E`` and ``Q^T Q`` (two d x d matrix products);
        * the positives from the batch users' real interactions only: the train interactions as
          CSR (:func:`train_history_csr`, one int64 per interaction), the batch users' rows
          gathered into one flat list of (batch row, item) pairs, one score per pair, summed.

        RecBole counts padding as data. ``xavier_normal_initialization`` re-initialises both
        embedding matrices after ``nn.Embedding(padding_idx=0)`` zeroed their row 0, so the
        padding item ``e_0`` and the padding user ``u_0`` are random and non-zero. Every padded
        slot of ``H`` then scores ``h . (p_b * e_0)``: a user with n train items gets ``L - n``
        copies of item 0 as positives, which pull the user vector and ``h`` towards ``e_0``
        (``padding_idx`` only stops the gradient into ``e_0`` through the lookup; the all-pairs
        term trains it as an n_items-th item). The padding user 0 is trained like a user with
        ``L`` positives, all item 0. By default this class does what ENMF means: both padding
        rows are zeroed at initialisation and left out of every term (item 0 is neither a
        positive nor an item, user 0 not a user), so they stay zero. With
        ``recbole_padding=True`` it reproduces RecBole's loss exactly instead: the padding rows
        keep their random initialisation and count as an item and a user in the all-pairs term,
        and each batch row adds ``(L - n) * ((1 - w) s0^2 - 2 s0)`` with ``s0 = h . (p_b * e_0)``
        and no gradient into ``e_0``, as ``padding_idx`` does.

        Parameters, their initialisation (same draws in the same order as ``ENMF.__init__``,
        whose ``history_item_matrix`` draws a ``torch.randperm`` first),
        dropout (one ``[batch, d]`` mask per batch, as in ``ENMF.forward``), ``reg_loss``,
        ``predict`` and ``full_sort_predict`` are RecBole's; only ``forward`` (see there) and
        ``calculate_loss`` differ. RecBole's trainer trains it like ``ENMF``.
        """

        def __init__(self, config, dataset, recbole_padding: bool = False):
            # ENMF.__init__ minus its dense history matrix (users x longest history).
            GeneralRecommender.__init__(self, config, dataset)
            self.embedding_size = config["embedding_size"]
            self.dropout_prob = config["dropout_prob"]
            self.reg_weight = config["reg_weight"]
            self.negative_weight = config["negative_weight"]
            self.recbole_padding = bool(recbole_padding)

            indptr, items = train_history_csr(dataset)
            lengths = np.diff(indptr)
            self.register_buffer("history_indptr", torch.as_tensor(indptr), persistent=False)
            self.register_buffer("history_items", torch.as_tensor(items), persistent=False)
            # Padded slots per user in RecBole's history_item_matrix (used with recbole_padding).
            self.register_buffer("history_padding",
                                 torch.as_tensor(lengths.max(initial=0) - lengths, dtype=torch.float32),
                                 persistent=False)

            self.user_embedding = nn.Embedding(self.n_users, self.embedding_size, padding_idx=0)
            self.item_embedding = nn.Embedding(self.n_items, self.embedding_size, padding_idx=0)
            self.H_i = nn.Linear(self.embedding_size, 1, bias=False)
            self.dropout = nn.Dropout(self.dropout_prob)
            self.apply(xavier_normal_initialization)
            if not self.recbole_padding:
                with torch.no_grad():
                    self.item_embedding.weight[0].zero_()
                    self.user_embedding.weight[0].zero_()
            self.to(self.device)

        def batch_history(self, user):
            """``(rows, items)``: every train interaction of the batch's users, row-major.

            ``rows[k]`` is the batch row (index into ``user``) and ``items[k]`` the item of the
            k-th pair; users without train interactions (the padding user 0) have no pairs.
            """
            starts = self.history_indptr[user]
            lengths = self.history_indptr[user + 1] - starts
            rows = torch.repeat_interleave(torch.arange(len(user), device=user.device), lengths)
            offsets = torch.cumsum(lengths, 0) - lengths
            within = torch.arange(len(rows), device=user.device) - offsets[rows]
            return rows, self.history_items[starts[rows] + within]

        def forward(self, user):
            """Scores of the batch users' train interactions: ``(scores, rows, user_vectors)``.

            ``scores[k] = h . (p[rows[k]] * e_{item k})`` (flat, one per real interaction, no
            padding); ``user_vectors`` = ``p``, the dropout-ed user vectors ([batch, d]).
            RecBole's ``ENMF.forward`` returns the same scores as a padded [batch, L] matrix.
            """
            user_vectors = self.dropout(self.user_embedding(user))
            rows, items = self.batch_history(user)
            scaled = user_vectors * self.H_i.weight  # [B, d]: p_b * h
            scores = (scaled[rows] * self.item_embedding(items)).sum(dim=-1)
            return scores, rows, user_vectors

        def calculate_loss(self, interaction):
            user = interaction[self.USER_ID]
            w = self.negative_weight
            scores, _rows, user_vectors = self.forward(user)

            item_weight = self.item_embedding.weight
            batch_user = self.user_embedding(user)
            if not self.recbole_padding:
                item_weight = item_weight[1:]
                batch_user = batch_user[user != 0]
            item_sum = item_weight.t() @ item_weight  # [d, d] = sum_i e_i e_i^T
            user_sum = batch_user.t() @ batch_user  # [d, d] = sum_b q_b q_b^T
            h_sum = self.H_i.weight.t() @ self.H_i.weight  # [d, d] = h h^T
            loss = w * torch.sum(item_sum * user_sum * h_sum)

            loss = loss + torch.sum((1 - w) * torch.square(scores) - 2 * scores)
            if self.recbole_padding:
                padding_vector = self.item_embedding.weight[0].detach()
                padding_scores = ((user_vectors * self.H_i.weight) * padding_vector).sum(dim=-1)
                loss = loss + torch.sum(self.history_padding[user]
                                        * ((1 - w) * torch.square(padding_scores) - 2 * padding_scores))
            return loss + self.reg_loss()

    SparseENMF.__module__, SparseENMF.__qualname__ = __name__, "SparseENMF"
    return SparseENMF


def __getattr__(name: str):
    """``from helpers.embeddings.enmf import SparseENMF`` imports RecBole only then."""
    if name == "SparseENMF":
        return sparse_enmf_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@contextlib.contextmanager
def quiet_recbole(workdir: str):
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
