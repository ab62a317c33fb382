"""Quantizers: item vectors in, integer codes per level out, behind one interface.

Every quantizer is built by :func:`get_quantizer` and offers

* ``fit(X)``: learn codebooks on the item matrix ``X`` (float32, shape ``(n_items, d)``);
* ``encode(X) -> codes``: int64, shape ``(n_items, n_levels)``, values in ``[0, codebook_size)``;
  column ``l`` is the token of level ``l`` (level 0 is the coarsest);
* ``decode(codes) -> X_hat``: the reconstruction from the codes alone (float32, ``(n, d)``), so
  every quantizer is judged by the same relative reconstruction error.

The four are the paper's tokenizers (section 4, "ID tokenisation"); their names are
``helpers.registry.QUANTIZERS`` and each one's keyword arguments are exactly the keys of its profile
section ``semantic_ids.quantizers.<name>`` (:func:`quantizer_settings` lists them):

``rq_kmeans``
    RQ-KMeans: ``faiss.ResidualQuantizer``, k-means on the residual of each level. The default.
``dict``
    Dictionary encoding: scikit-learn's ``MiniBatchDictionaryLearning``.
``rlfq``
    ``vector_quantize_pytorch.ResidualLFQ`` (lookup-free quantization) trained as an autoencoder on
    the item vectors through its built-in linear projections (:class:`LfqAutoencoder`).
``rqvae``
    RQ-VAE: MLP encoder and decoder around ``vector_quantize_pytorch.ResidualVQ``, trained with
    reconstruction plus commitment loss (:class:`RqVae`).

The neural models are ``nn.Module`` classes whose ``forward`` returns a named tuple ``(codes,
reconstruction, losses)``; their Quantizer wrappers train them by minimising ``losses.total``.
:class:`PrefixShareQuantizer` and its :class:`PrefixShareVae` (the prefix-share scheme's model) live
here too because they are built and trained like the RQ-VAE.
"""
from __future__ import annotations

import inspect
import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import EmbeddingMatrixError, SemanticIdConfigError  # noqa: F401  (re-exported)
from ..vectors import validate_vectors


def check_item_matrix(X, name: str = "embedding", n_items: int | None = None) -> np.ndarray:
    """Return ``X`` as a C-contiguous float32 ``(n_items, d)`` array, or say what is wrong with it."""
    return validate_vectors(X, n_items=n_items, where=f"The {name} matrix", error=EmbeddingMatrixError)


def check_codebook_fits(n_items: int, codebook_size: int, name: str) -> None:
    if codebook_size < 2:
        raise SemanticIdConfigError(f"semantic_ids.codebook_size must be >= 2, got {codebook_size}.")
    if codebook_size > n_items:
        raise SemanticIdConfigError(
            f"{name}: a codebook of {codebook_size} codes cannot be learnt from {n_items} items (most codes "
            f"would stay empty). Set semantic_ids.codebook_size <= {n_items}; about sqrt(n_items) = "
            f"{int(np.sqrt(n_items))} suits two levels.")


def _require_power_of_two(codebook_size: int, name: str) -> int:
    nbits = int(np.log2(codebook_size))
    if 2 ** nbits != codebook_size:
        raise SemanticIdConfigError(
            f"{name} needs a power-of-two codebook (its codes are bit strings), got {codebook_size}. "
            f"Use e.g. {2 ** nbits} or {2 ** (nbits + 1)}.")
    return nbits


class Quantizer:
    """Base class: holds the shared parameters and the bookkeeping every quantizer needs."""

    name = "base"

    def __init__(self, n_levels: int, codebook_size: int, seed: int = 0):
        if n_levels < 1:
            raise SemanticIdConfigError(f"semantic_ids.n_levels must be >= 1, got {n_levels}.")
        self.n_levels = int(n_levels)
        self.codebook_size = int(codebook_size)
        self.seed = int(seed)
        self.dim: int | None = None
        self.fit_seconds = 0.0

    def fit(self, X) -> "Quantizer":
        X = check_item_matrix(X, f"{self.name} training")
        check_codebook_fits(len(X), self.codebook_size, self.name)
        self.dim = X.shape[1]
        started = time.perf_counter()
        with self._runtime():
            self._fit(X)
        self.fit_seconds = time.perf_counter() - started
        return self

    def encode(self, X) -> np.ndarray:
        X = self._check_fitted_input(X)
        with self._runtime():
            codes = np.asarray(self._encode(X), dtype=np.int64)
        assert codes.shape == (len(X), self.n_levels), codes.shape
        return codes

    def decode(self, codes) -> np.ndarray:
        if self.dim is None:
            raise SemanticIdConfigError(f"{self.name}: call fit(X) before decode().")
        codes = np.asarray(codes, dtype=np.int64)
        if codes.ndim != 2 or codes.shape[1] != self.n_levels:
            raise SemanticIdConfigError(f"{self.name}: codes must have shape (n, {self.n_levels}), got {codes.shape}.")
        if len(codes) and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise SemanticIdConfigError(f"{self.name}: codes must lie in [0, {self.codebook_size}).")
        with self._runtime():
            return np.asarray(self._decode(codes), dtype=np.float32)

    def fit_encode(self, X) -> np.ndarray:
        return self.fit(X).encode(X)

    def _check_fitted_input(self, X) -> np.ndarray:
        if self.dim is None:
            raise SemanticIdConfigError(f"{self.name}: call fit(X) before encode().")
        X = check_item_matrix(X, f"{self.name} input")
        if X.shape[1] != self.dim:
            raise EmbeddingMatrixError(f"{self.name} was fitted on {self.dim}-d vectors, got {X.shape[1]}-d.")
        return X

    def _runtime(self):
        """Context every fit/encode/decode runs in (torch quantizers pin torch to one thread)."""
        return nullcontext()

    def _fit(self, X: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _encode(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _decode(self, codes: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


# ---- RQ-KMeans (FAISS) ------------------------------------------------------------------------
class RQKMeansQuantizer(Quantizer):
    """RQ-KMeans through ``faiss.ResidualQuantizer`` (the paper's tokenizer).

    Args:
        beam_size: ``max_beam_size`` of FAISS's beam search, used both while training the codebooks
            and while encoding (read again by every ``encode``, so a fitted quantizer can encode its
            codebooks with another beam). 1 is greedy residual k-means (each level picks the nearest centroid of
            the residual, so the first token is the item's nearest coarse cluster); FAISS's default 5
            keeps 5 partial candidates and picks the tuple with the lowest joint error. On our
            catalogues beam 1 left fewer collisions and fuller second-level codebooks (notebook 03).
        train_type: ``progressive_dim`` (FAISS's default: k-means on a growing number of PCA
            dimensions) or ``default`` (plain k-means per level).
        niter: k-means iterations per level.
        threads: OpenMP threads FAISS may use inside fit/encode/decode (restored afterwards); None
            leaves FAISS's setting (all cores). For a catalogue of a few thousand items one thread is
            faster: on ml100k (1,682 x 384) training took 0.4 s on one thread and 1.3-2.2 s on two
            while other jobs shared the 2 cores (OpenMP threads spin-wait for each other).
        train_sample: learn the codebooks on at most this many items (a seeded random sample), then
            encode every item; FAISS recommends 39-256 training points per centroid, so 64 x 256 codes
            are well learnt from ~16k of the paper's 62k items at a quarter of the cost. None: all.

    With fewer items than dimensions (e.g. 150 items of 384-d in the smoke profile) FAISS's
    progressive-dim PCA cannot be computed, so the items are first expressed in an orthonormal basis
    of their own (centred) span: an exact rotation, under which k-means is unchanged, and ``decode``
    rotates back.

    FAISS packs the codes of ``M`` levels of ``nbits`` each into ``ceil(M * nbits / 8)`` bytes; with a
    codebook other than 256 entries a byte holds parts of several levels, so the bytes are unpacked
    with ``faiss.unpack_bitstrings`` (and packed again for ``decode``).
    """

    name = "rq_kmeans"
    TRAIN_TYPES = ("progressive_dim", "default")

    def __init__(self, n_levels, codebook_size, seed=0, beam_size: int = 5,
                 train_type: str = "progressive_dim", niter: int = 20, train_sample: int | None = None,
                 threads: int | None = None):
        super().__init__(n_levels, codebook_size, seed)
        self.nbits = _require_power_of_two(codebook_size, "rq_kmeans")
        if train_type not in self.TRAIN_TYPES:
            raise SemanticIdConfigError(f"semantic_ids.quantizers.rq_kmeans.train_type must be one of "
                                        f"{self.TRAIN_TYPES}, got {train_type!r}.")
        self.beam_size = int(beam_size)
        self.train_type = train_type
        self.niter = int(niter)
        self.train_sample = int(train_sample) if train_sample else None
        self.threads = int(threads) if threads else None
        if self.train_sample is not None and self.train_sample < codebook_size:
            raise SemanticIdConfigError(f"semantic_ids.quantizers.rq_kmeans.train_sample ({self.train_sample}) must "
                                        f"be at least the codebook size "
                                        f"({codebook_size}), better 40x it; or null to train on every item.")
        self._rq = None
        self._span = None  # (mean, basis rows) when the items are quantised in their own span

    def _runtime(self):
        return faiss_threads(self.threads)

    def _fit(self, X):
        import faiss

        if self.train_sample is not None and len(X) > self.train_sample:
            rows = np.random.default_rng(self.seed).choice(len(X), self.train_sample, replace=False)
            X = X[np.sort(rows)]
        if self.train_type == "progressive_dim" and len(X) < X.shape[1]:
            mean = X.mean(axis=0, keepdims=True)
            _, _, vt = np.linalg.svd(X - mean, full_matrices=False)
            self._span = (mean, vt[: len(X) - 1])
        X = self._into_span(X)
        rq = faiss.ResidualQuantizer(X.shape[1], self.n_levels, self.nbits)
        rq.train_type = (faiss.ResidualQuantizer.Train_progressive_dim if self.train_type == "progressive_dim"
                         else faiss.ResidualQuantizer.Train_default)
        rq.max_beam_size = self.beam_size
        rq.cp.seed = self.seed
        rq.cp.niter = self.niter
        # Catalogues are small next to FAISS's "39 points per centroid" advice; it still clusters
        # fine, so silence the warning that would otherwise print once per level and beam.
        rq.cp.min_points_per_centroid = 1
        rq.cp.max_points_per_centroid = 1 << 30  # never subsample the catalogue
        rq.train(X)
        self._rq = rq

    def _into_span(self, X: np.ndarray) -> np.ndarray:
        if self._span is None:
            return X
        mean, basis = self._span
        return np.ascontiguousarray((X - mean) @ basis.T, dtype=np.float32)

    def _out_of_span(self, Z: np.ndarray, add_mean: bool = True) -> np.ndarray:
        if self._span is None:
            return Z
        mean, basis = self._span
        return Z @ basis + (mean if add_mean else 0.0)

    def packed_codes(self, X) -> np.ndarray:
        """FAISS's own output: ``ceil(n_levels * nbits / 8)`` bytes per item, levels bit-packed."""
        X = self._check_fitted_input(X)
        with self._runtime():
            self._rq.max_beam_size = self.beam_size
            return self._rq.compute_codes(self._into_span(X))

    def _encode(self, X):
        import faiss

        self._rq.max_beam_size = self.beam_size  # encode with the current beam (fit used the same)
        packed = self._rq.compute_codes(self._into_span(X))
        return faiss.unpack_bitstrings(packed, self.n_levels, self.nbits)

    def _decode(self, codes):
        import faiss

        packed = faiss.pack_bitstrings(np.ascontiguousarray(codes, dtype=np.int32), self.nbits)
        return self._out_of_span(self._rq.decode(packed))

    def codebooks(self) -> np.ndarray:
        """Centroids in the input space, ``(n_levels, codebook_size, d)``: level l's code c is ``[l, c]``.

        ``decode(codes)`` is the sum over levels of ``codebooks()[l, codes[:, l]]``.
        """
        import faiss

        flat = faiss.vector_to_array(self._rq.codebooks).reshape(self.n_levels, self.codebook_size, -1)
        # the span's mean is a shift, carried once: by the first level's centroids
        return np.stack([self._out_of_span(level, add_mean=(i == 0)) for i, level in enumerate(flat)])


# ---- Dictionary encoding (scikit-learn) ---------------------------------------------------------
class DictionaryQuantizer(Quantizer):
    """Dictionary encoding with ``sklearn.decomposition.MiniBatchDictionaryLearning``.

    The items are centred and scaled to unit root-mean-square entries first (so that ``alpha`` means
    the same for unit-norm text embeddings and raw ENMF vectors, and no atom is spent on the mean).
    One dictionary of ``codebook_size`` atoms is learnt; each item's sparse code (orthogonal matching
    pursuit with ``n_levels`` non-zero coefficients) is turned into tokens by ranking its atoms by
    ``|coefficient|``: level ``l``'s code is the atom with the ``l``-th largest ``|coefficient|``. All
    levels therefore share one vocabulary of atoms, and an item's levels never repeat an atom.

    ``decode`` needs coefficients that the tokens do not carry, so it uses, for each (level, atom), the
    mean coefficient that atom had at that level over the training items: a reconstruction from the
    tokens alone, comparable with the other quantizers'.
    """

    name = "dict"

    @contextmanager
    def _runtime(self):
        # The lasso steps inside each mini-batch stop at max_iter by design (the dictionary keeps
        # improving over batches); their ConvergenceWarning would print thousands of lines.
        # One BLAS thread and float64 (``_float64``): in float32 the atoms moved with the BLAS kernel
        # and thread count and recoded items between machines (docs/reproducibility.md).
        from sklearn.exceptions import ConvergenceWarning
        from threadpoolctl import threadpool_limits

        with warnings.catch_warnings(), threadpool_limits(1, "blas"):
            warnings.simplefilter("ignore", ConvergenceWarning)
            yield

    def _float64(self, X) -> np.ndarray:
        return self._scaler.forward(X).astype(np.float64)

    def __init__(self, n_levels, codebook_size, seed=0, max_iter: int = 30, alpha: float = 1.0,
                 batch_size: int = 256):
        super().__init__(n_levels, codebook_size, seed)
        self.max_iter = int(max_iter)
        self.alpha = float(alpha)
        self.batch_size = int(batch_size)
        self._model = None
        self._mean_coef = None

    def _fit(self, X):
        from sklearn.decomposition import MiniBatchDictionaryLearning

        if self.n_levels > self.codebook_size:
            raise SemanticIdConfigError(f"dict: n_levels ({self.n_levels}) cannot exceed the number of atoms "
                                        f"({self.codebook_size}); each level takes a different atom.")
        self._scaler = _Standardiser(X)
        X = self._float64(X)
        self._model = MiniBatchDictionaryLearning(
            n_components=self.codebook_size, alpha=self.alpha, max_iter=self.max_iter,
            # coordinate descent: LARS solves one Python-level path per item, ~3x slower here
            fit_algorithm="cd", batch_size=min(self.batch_size, len(X)), transform_algorithm="omp",
            transform_n_nonzero_coefs=self.n_levels, random_state=self.seed,
        ).fit(X)
        coefs = self._model.transform(X)
        codes = self._codes_from_sparse(coefs)
        picked = np.take_along_axis(coefs, codes, axis=1)
        total = np.zeros((self.n_levels, self.codebook_size))
        count = np.zeros((self.n_levels, self.codebook_size))
        for level in range(self.n_levels):
            np.add.at(total[level], codes[:, level], picked[:, level])
            np.add.at(count[level], codes[:, level], 1)
        self._mean_coef = np.divide(total, count, out=np.zeros_like(total), where=count > 0)

    def _codes_from_sparse(self, coefs: np.ndarray) -> np.ndarray:
        # stable sort on -|coef| keeps ties (e.g. OMP returning fewer non-zeros) in atom order
        return np.argsort(-np.abs(coefs), axis=1, kind="stable")[:, : self.n_levels]

    def sparse_codes(self, X) -> np.ndarray:
        """The OMP coefficients ``(n, codebook_size)`` the tokens are ranked from."""
        with self._runtime():
            return self._model.transform(self._float64(self._check_fitted_input(X)))

    def _encode(self, X):
        return self._codes_from_sparse(self._model.transform(self._float64(X)))

    def _decode(self, codes):
        atoms = self._model.components_
        levels = np.arange(self.n_levels)
        weights = self._mean_coef[levels[None, :], codes]  # (n, n_levels)
        return self._scaler.inverse(np.einsum("nl,nld->nd", weights, atoms[codes]))


# ---- Neural quantizers (vector-quantize-pytorch) -------------------------------------------------
# The three models are nn.Modules whose forward returns a named tuple of (codes, reconstruction,
# losses), in the style of EdoardoBotta/RQ-VAE-Recommender's ``modules/rqvae.py``; the Quantizer
# wrappers standardise the items, pin torch to one thread, and train by minimising
# ``model(x).losses.total`` (:func:`_train`).
@dataclass
class TrainSettings:
    """How a neural quantizer is optimised: Adam over shuffled mini-batches of the items.

    The model's own sizes and loss weights (``hidden_dim``, ``latent_dim``, ``commitment_weight``,
    ``entropy_loss_weight``) belong to its ``nn.Module``, not here.
    """

    epochs: int = 200
    lr: float = 1e-3
    batch_size: int = 256
    history: list = field(default_factory=list)  # mean total loss per epoch, filled by training


class _Standardiser:
    """Centre the matrix and divide by its root-mean-square entry.

    One global scale keeps the geometry of the space; unit-variance entries keep the reconstruction
    MSE on the same scale as the commitment and entropy losses whatever the embedding's norm.
    """

    def __init__(self, X: np.ndarray):
        self.mean = X.mean(axis=0, keepdims=True)
        self.scale = float(np.sqrt(((X - self.mean) ** 2).mean())) or 1.0

    def forward(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean) / self.scale).astype(np.float32)

    def inverse(self, Z: np.ndarray) -> np.ndarray:
        return (Z * self.scale + self.mean).astype(np.float32)


@contextmanager
def single_threaded_torch():
    """Run torch on one thread inside the block, restoring the previous setting afterwards.

    These models are tiny, so per-operation threading overhead outweighs the parallel gain (on a busy
    2-core machine RQ-VAE training ran 3x faster on one thread), and one thread makes the trained codes
    independent of the machine's core count (float sums are ordered the same way everywhere).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def faiss_threads(threads: int | None):
    """Let FAISS use ``threads`` OpenMP threads inside the block (None: leave its setting)."""
    import faiss

    if threads is None:
        yield
        return
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def torch_seed(seed: int) -> None:
    """Seed torch's global generator (module initialisation and k-means initialisation draw from it)."""
    torch.manual_seed(seed)


def _train(model: nn.Module, inputs: list, settings: TrainSettings, seed: int) -> None:
    """Adam over shuffled mini-batches of the rows of ``inputs`` (tensors with equal row counts).

    Each step minimises ``model(*batch).losses.total``; ``settings.history`` gets the mean total loss
    of every epoch. The batch order is drawn from a generator seeded with ``seed``.
    """
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.lr)
    n = inputs[0].shape[0]
    batch = min(settings.batch_size, n)
    model.train()
    settings.history = []
    for _ in range(settings.epochs):
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for start in range(0, n, batch):
            rows = order[start:start + batch]
            loss = model(*(t[rows] for t in inputs)).losses.total
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(rows)
        settings.history.append(total / n)
    model.eval()


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out))


def _residual_vq(latent_dim: int, n_levels: int, codebook_size: int, commitment_weight: float):
    """``ResidualVQ`` with EMA codebooks, k-means initialisation and dead-code re-seeding."""
    from vector_quantize_pytorch import ResidualVQ

    return ResidualVQ(dim=latent_dim, num_quantizers=n_levels, codebook_size=codebook_size,
                      kmeans_init=True, kmeans_iters=10, threshold_ema_dead_code=2,
                      commitment_weight=commitment_weight)


class RqVaeLosses(NamedTuple):
    """The losses of one :class:`RqVae` forward pass (scalar tensors)."""

    #: ``MSE(reconstruction, x)``, the mean over the batch and the dimensions.
    reconstruction: torch.Tensor
    #: ``commitment_weight`` x the mean squared distance from each level's input to its chosen code,
    #: summed over the levels (the codebooks themselves move by EMA, not by this loss).
    commitment: torch.Tensor
    #: ``reconstruction + commitment``: what training minimises.
    total: torch.Tensor


class RqVaeOutput(NamedTuple):
    """What :meth:`RqVae.forward` returns."""

    #: int64 ``(batch, n_levels)``: column ``l`` is the code of level ``l``, in ``[0, codebook_size)``.
    codes: torch.Tensor
    #: float ``(batch, input_dim)``: the decoder's output from the quantised latent.
    reconstruction: torch.Tensor
    losses: RqVaeLosses


class RqVae(nn.Module):
    """RQ-VAE: ``MLP encoder -> ResidualVQ (n_levels codebooks) -> MLP decoder``.

    The encoder maps an item vector to a ``latent_dim`` latent; each of the ``n_levels`` codebooks
    quantises the residual the previous levels left (level 0 is the coarsest), and the decoder
    reconstructs the item vector from the sum of the chosen codes. Codebooks are updated by
    exponential moving averages (vector-quantize-pytorch's default), initialised by k-means on the first
    batch seen in training mode, and codes unused for a while are re-seeded from the batch
    (``threshold_ema_dead_code=2``) so that training does not collapse onto a few codes; gradients pass
    the quantiser by the straight-through estimator.

    Args:
        input_dim: dimension ``d`` of the item vectors.
        n_levels: codebooks (tokens per ID).
        codebook_size: codes per codebook.
        hidden_dim: width of the one hidden layer of the encoder and of the decoder.
        latent_dim: dimension of the latent the codebooks live in.
        commitment_weight: weight of the commitment loss, which pulls the encoder's latent toward the
            codes it is assigned.

    ``forward(x)`` takes a float32 tensor ``(batch, input_dim)`` (the
    :class:`RQVAEQuantizer` feeds standardised item vectors: centred, unit root-mean-square entries)
    and returns an :class:`RqVaeOutput` ``(codes, reconstruction, losses)``; ``losses.total`` is the
    training objective. ``decode(codes)`` maps codes back to the input space.

    Example::

        >>> _ = torch.manual_seed(0)
        >>> model = RqVae(input_dim=16, n_levels=2, codebook_size=8, hidden_dim=32, latent_dim=4)
        >>> out = model(torch.randn(64, 16))
        >>> out.codes.shape, out.codes.dtype, out.reconstruction.shape
        (torch.Size([64, 2]), torch.int64, torch.Size([64, 16]))
        >>> out.losses.total.backward()  # reaches the encoder and the decoder
        >>> model.decode(out.codes).shape
        torch.Size([64, 16])
    """

    def __init__(self, input_dim: int, n_levels: int, codebook_size: int, hidden_dim: int = 256,
                 latent_dim: int = 32, commitment_weight: float = 0.25):
        super().__init__()
        # creation order = parameter order = draws from torch's global generator: keep it
        self.encoder = _mlp(input_dim, hidden_dim, latent_dim)
        self.quantizer = _residual_vq(latent_dim, n_levels, codebook_size, commitment_weight)
        self.decoder = _mlp(latent_dim, hidden_dim, input_dim)

    def forward(self, x: torch.Tensor) -> RqVaeOutput:
        quantised, codes, commitment = self.quantizer(self.encoder(x))
        reconstruction = self.decoder(quantised)
        reconstruction_loss = F.mse_loss(reconstruction, x)
        commitment = commitment.sum()
        return RqVaeOutput(codes, reconstruction,
                           RqVaeLosses(reconstruction_loss, commitment, reconstruction_loss + commitment))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``(n, input_dim)`` from int64 codes ``(n, n_levels)`` alone."""
        return self.decoder(self.quantizer.get_output_from_indices(codes))


class LfqLosses(NamedTuple):
    """The losses of one :class:`LfqAutoencoder` forward pass (scalar tensors)."""

    #: ``MSE(reconstruction, x)``, the mean over the batch and the dimensions.
    reconstruction: torch.Tensor
    #: ResidualLFQ's auxiliary loss summed over the levels: ``entropy_loss_weight`` x (per-sample
    #: entropy - batch entropy of the code distribution; low when each item is sure of its code and
    #: the batch spreads over the codes) + ``commitment_weight`` x commitment loss.
    aux: torch.Tensor
    #: ``reconstruction + aux``: what training minimises.
    total: torch.Tensor


class LfqOutput(NamedTuple):
    """What :meth:`LfqAutoencoder.forward` returns."""

    #: int64 ``(batch, n_levels)`` in ``[0, codebook_size)``: each level's sign pattern read as bits.
    codes: torch.Tensor
    #: float ``(batch, input_dim)``: ``project_out`` of the summed level outputs.
    reconstruction: torch.Tensor
    losses: LfqLosses


class LfqAutoencoder(nn.Module):
    """``vector_quantize_pytorch.ResidualLFQ`` used as an autoencoder of item vectors.

    Lookup-free quantization has no codebook vectors to learn: ResidualLFQ projects the input to
    ``log2(codebook_size)`` dimensions (its own linear ``project_in``), each level binarises the
    residual the previous levels left (the code is the sign pattern, values +-1), and ``project_out``
    maps the sum back to ``input_dim``. Only the two projections are learnt.

    Args:
        input_dim: dimension ``d`` of the item vectors.
        n_levels: quantisation levels (tokens per ID).
        codebook_size: codes per level, a power of two (``log2(codebook_size)`` bits per level).
        entropy_loss_weight: weight of the entropy term that spreads items over the codes.
        commitment_weight: weight of the commitment loss (ResidualLFQ's ``commitment_loss_weight``).

    ``forward(x)`` takes a float32 tensor ``(batch, input_dim)`` (standardised item vectors from
    :class:`ResidualLFQQuantizer`) and returns an :class:`LfqOutput` ``(codes, reconstruction,
    losses)``; ``losses.total`` is the training objective. ``decode(codes)`` maps codes back.

    Example::

        >>> _ = torch.manual_seed(0)
        >>> model = LfqAutoencoder(input_dim=16, n_levels=2, codebook_size=8)
        >>> out = model(torch.randn(64, 16))
        >>> out.codes.shape, int(out.codes.min()) >= 0, int(out.codes.max()) < 8
        (torch.Size([64, 2]), True, True)
        >>> out.losses.total.backward()
        >>> model.decode(out.codes).shape
        torch.Size([64, 16])
    """

    def __init__(self, input_dim: int, n_levels: int, codebook_size: int, entropy_loss_weight: float = 0.1,
                 commitment_weight: float = 0.25):
        super().__init__()
        from vector_quantize_pytorch import ResidualLFQ

        self.quantizer = ResidualLFQ(dim=input_dim, num_quantizers=n_levels, codebook_size=codebook_size,
                                     entropy_loss_weight=entropy_loss_weight,
                                     commitment_loss_weight=commitment_weight)

    def forward(self, x: torch.Tensor) -> LfqOutput:
        reconstruction, codes, aux = self.quantizer(x.unsqueeze(1))  # LFQ expects (batch, sequence, dim)
        reconstruction = reconstruction.squeeze(1)
        reconstruction_loss = F.mse_loss(reconstruction, x)
        aux = aux.sum()
        return LfqOutput(codes.squeeze(1), reconstruction,
                         LfqLosses(reconstruction_loss, aux, reconstruction_loss + aux))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``(n, input_dim)`` from int64 codes ``(n, n_levels)`` alone."""
        return self.quantizer.get_output_from_indices(codes.unsqueeze(1)).squeeze(1)


class _NeuralQuantizer(Quantizer):
    """A :class:`Quantizer` around an ``nn.Module`` whose ``forward(x)`` returns ``(codes,
    reconstruction, losses)`` and which has ``decode(codes)``: standardises the items, runs torch on one
    thread, and trains with :func:`_train`. Subclasses build the module in ``_build()``."""

    def __init__(self, n_levels, codebook_size, seed, epochs, batch_size, lr):
        super().__init__(n_levels, codebook_size, seed)
        self.settings = TrainSettings(epochs=int(epochs), lr=float(lr), batch_size=int(batch_size))
        self.model: nn.Module | None = None
        self._scaler: _Standardiser | None = None

    def _runtime(self):
        return single_threaded_torch()

    def _build(self) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fit(self, X):
        torch_seed(self.seed)
        self._scaler = _Standardiser(X)
        self.model = self._build()
        data = torch.from_numpy(self._scaler.forward(X))
        self._initialise(data)
        _train(self.model, [data], self.settings, self.seed)

    def _initialise(self, data: torch.Tensor) -> None:
        """Anything to do on every item before training (RQ-VAE: the codebooks' k-means)."""

    def _encode(self, X):
        with torch.no_grad():
            return self.model(torch.from_numpy(self._scaler.forward(X))).codes.numpy()

    def _decode(self, codes):
        with torch.no_grad():
            return self._scaler.inverse(self.model.decode(torch.from_numpy(codes)).numpy())


class RQVAEQuantizer(_NeuralQuantizer):
    """RQ-VAE (:class:`RqVae`) trained on the standardised item vectors.

    Args (the keys of the profile's ``semantic_ids.quantizers.rqvae``):
        epochs, batch_size, lr: Adam over shuffled mini-batches (:class:`TrainSettings`).
        hidden_dim, latent_dim, commitment_weight: the :class:`RqVae` architecture and loss weight.

    Before training, the model sees every item once in training mode (without gradients), so each
    codebook's k-means initialisation uses all items rather than the first batch.
    """

    name = "rqvae"

    def __init__(self, n_levels, codebook_size, seed=0, epochs: int = 200, batch_size: int = 256,
                 lr: float = 1e-3, hidden_dim: int = 256, latent_dim: int = 32, commitment_weight: float = 0.25):
        super().__init__(n_levels, codebook_size, seed, epochs, batch_size, lr)
        self.hidden_dim = int(hidden_dim)
        self.latent_dim = int(latent_dim)
        self.commitment_weight = float(commitment_weight)

    def _build(self):
        return RqVae(self.dim, self.n_levels, self.codebook_size, hidden_dim=self.hidden_dim,
                     latent_dim=self.latent_dim, commitment_weight=self.commitment_weight)

    def _initialise(self, data):
        with torch.no_grad():  # k-means initialisation of the codebooks on every item, not one batch
            self.model.train()
            self.model(data)


class ResidualLFQQuantizer(_NeuralQuantizer):
    """ResidualLFQ (:class:`LfqAutoencoder`) trained on the standardised item vectors.

    Args (the keys of the profile's ``semantic_ids.quantizers.rlfq``):
        epochs, batch_size, lr: Adam over shuffled mini-batches (:class:`TrainSettings`).
        entropy_loss_weight, commitment_weight: the weights of ResidualLFQ's auxiliary loss.

    It has no hidden layer and no latent size: its only weights are ResidualLFQ's input and output
    projections (``log2(codebook_size)`` dimensions).
    """

    name = "rlfq"

    def __init__(self, n_levels, codebook_size, seed=0, epochs: int = 200, batch_size: int = 256,
                 lr: float = 1e-3, entropy_loss_weight: float = 0.1, commitment_weight: float = 0.25):
        super().__init__(n_levels, codebook_size, seed, epochs, batch_size, lr)
        _require_power_of_two(codebook_size, "rlfq")
        self.entropy_loss_weight = float(entropy_loss_weight)
        self.commitment_weight = float(commitment_weight)

    def _build(self):
        return LfqAutoencoder(self.dim, self.n_levels, self.codebook_size,
                              entropy_loss_weight=self.entropy_loss_weight, commitment_weight=self.commitment_weight)


# ---- Prefix-share: one encoder, a shared and two task codebooks, two decoders ---------------------
PREFIX_PARTS = ("shared", "search", "rec")


class PrefixShareLosses(NamedTuple):
    """The losses of one :class:`PrefixShareVae` forward pass (scalar tensors)."""

    #: ``MSE(reconstruction["search"], x_search)``.
    search_reconstruction: torch.Tensor
    #: ``MSE(reconstruction["rec"], x_rec)``.
    rec_reconstruction: torch.Tensor
    #: The three residual VQs' commitment losses (each ``commitment_weight`` x ...), summed.
    commitment: torch.Tensor
    #: ``commitment + search_reconstruction + rec_reconstruction``: what training minimises.
    total: torch.Tensor


class PrefixShareOutput(NamedTuple):
    """What :meth:`PrefixShareVae.forward` returns."""

    #: int64 codes per part: ``"shared"`` ``(batch, shared_levels)``, ``"search"`` and ``"rec"``
    #: ``(batch, task_levels)``, each in ``[0, codebook_size)``.
    codes: dict
    #: ``"search"``: float ``(batch, search_dim)``, ``"rec"``: float ``(batch, rec_dim)``.
    reconstruction: dict
    losses: PrefixShareLosses


class PrefixShareVae(nn.Module):
    """The prefix-share model (paper section 3.2, after Shi et al.): one encoder, three codebooks, two decoders.

    ``[x_search, x_rec]`` -> one MLP trunk -> three linear heads giving a shared, a search and a rec
    latent, each quantised by its own ``ResidualVQ`` (``shared_levels``, ``task_levels``,
    ``task_levels`` codebooks, configured as in :class:`RqVae`). The search decoder reconstructs
    ``x_search`` from ``[shared, search]`` quantised latents, the rec decoder ``x_rec`` from
    ``[shared, rec]``. Minimising both reconstruction errors plus the commitment losses makes the
    shared codebook hold what both decoders need and each task codebook what only its task needs.

    Args:
        search_dim, rec_dim: dimensions of the two item matrices.
        shared_levels, task_levels: codebooks of the shared and of each task-specific quantizer.
        codebook_size: codes per codebook.
        hidden_dim: width of the trunk and of the decoders' hidden layer.
        latent_dim: dimension of each of the three latents.
        commitment_weight: weight of each quantizer's commitment loss.

    ``forward(x_search, x_rec)`` takes two float32 tensors ``(batch, search_dim)`` and ``(batch,
    rec_dim)`` holding the same items (standardised by :class:`PrefixShareQuantizer`) and returns a
    :class:`PrefixShareOutput` ``(codes, reconstruction, losses)``. ``decode(codes)`` maps the three
    code parts back to both spaces.

    Example::

        >>> _ = torch.manual_seed(0)
        >>> model = PrefixShareVae(search_dim=12, rec_dim=6, shared_levels=1, task_levels=1,
        ...                        codebook_size=8, hidden_dim=32, latent_dim=4)
        >>> out = model(torch.randn(64, 12), torch.randn(64, 6))
        >>> {part: tuple(c.shape) for part, c in out.codes.items()}
        {'shared': (64, 1), 'search': (64, 1), 'rec': (64, 1)}
        >>> {task: tuple(r.shape) for task, r in out.reconstruction.items()}
        {'search': (64, 12), 'rec': (64, 6)}
        >>> out.losses.total.backward()
    """

    def __init__(self, search_dim: int, rec_dim: int, shared_levels: int, task_levels: int, codebook_size: int,
                 hidden_dim: int = 256, latent_dim: int = 32, commitment_weight: float = 0.25):
        super().__init__()
        self.levels = {"shared": int(shared_levels), "search": int(task_levels), "rec": int(task_levels)}
        dims = {"search": search_dim, "rec": rec_dim}
        # creation order = parameter order = draws from torch's global generator: keep it
        self.trunk = nn.Sequential(nn.Linear(search_dim + rec_dim, hidden_dim), nn.ReLU())
        self.heads = nn.ModuleDict({part: nn.Linear(hidden_dim, latent_dim) for part in PREFIX_PARTS})
        self.quantizers = nn.ModuleDict({
            part: _residual_vq(latent_dim, self.levels[part], codebook_size, commitment_weight)
            for part in PREFIX_PARTS})
        self.decoders = nn.ModuleDict({task: _mlp(2 * latent_dim, hidden_dim, dims[task])
                                       for task in ("search", "rec")})

    def forward(self, x_search: torch.Tensor, x_rec: torch.Tensor) -> PrefixShareOutput:
        hidden = self.trunk(torch.cat([x_search, x_rec], dim=1))
        quantised = {part: self.quantizers[part](self.heads[part](hidden)) for part in PREFIX_PARTS}
        commitment = sum(c.sum() for _, _, c in quantised.values())
        total = commitment
        reconstruction, task_loss = {}, {}
        for task, target in (("search", x_search), ("rec", x_rec)):
            reconstruction[task] = self._decode_task(task, quantised["shared"][0], quantised[task][0])
            task_loss[task] = F.mse_loss(reconstruction[task], target)
            total = total + task_loss[task]
        return PrefixShareOutput(
            {part: quantised[part][1] for part in PREFIX_PARTS}, reconstruction,
            PrefixShareLosses(task_loss["search"], task_loss["rec"], commitment, total))

    def _decode_task(self, task: str, shared_latent: torch.Tensor, task_latent: torch.Tensor) -> torch.Tensor:
        return self.decoders[task](torch.cat([shared_latent, task_latent], dim=1))

    def decode(self, codes: dict) -> dict:
        """Reconstructions ``{"search": (n, search_dim), "rec": (n, rec_dim)}`` from the three code parts."""
        latent = {part: self.quantizers[part].get_output_from_indices(codes[part]) for part in PREFIX_PARTS}
        return {task: self._decode_task(task, latent["shared"], latent[task]) for task in ("search", "rec")}


class PrefixShareQuantizer:
    """Trains a :class:`PrefixShareVae` on two item matrices and gives each item its three code parts.

    Args:
        shared_levels, task_levels: codebooks of the shared and of each task-specific part
            (``build_ids`` takes ``semantic_ids.schemes.prefix_share.shared_levels`` and ``n_levels``
            minus it).
        codebook_size, seed: as for every quantizer.
        epochs, batch_size, lr, hidden_dim, latent_dim, commitment_weight: as :class:`RQVAEQuantizer`
            (``build_ids`` passes the profile's ``semantic_ids.quantizers.rqvae``).

    ``encode`` returns ``{"shared": (n, shared_levels), "search": (n, task_levels), "rec": ...}``; an
    item's search ID is its shared codes followed by its search codes.
    """

    name = "prefix_share"

    def __init__(self, shared_levels: int, task_levels: int, codebook_size: int, seed: int = 0,
                 epochs: int = 200, batch_size: int = 256, lr: float = 1e-3, hidden_dim: int = 256,
                 latent_dim: int = 32, commitment_weight: float = 0.25):
        if shared_levels < 1 or task_levels < 1:
            raise SemanticIdConfigError(
                f"prefix_share needs at least one shared and one task-specific level, got shared="
                f"{shared_levels}, task={task_levels}. Set semantic_ids.n_levels >= 2 and "
                f"1 <= semantic_ids.schemes.prefix_share.shared_levels < n_levels.")
        self.levels = {"shared": int(shared_levels), "search": int(task_levels), "rec": int(task_levels)}
        self.codebook_size = int(codebook_size)
        self.seed = int(seed)
        self.settings = TrainSettings(epochs=int(epochs), lr=float(lr), batch_size=int(batch_size))
        self.hidden_dim = int(hidden_dim)
        self.latent_dim = int(latent_dim)
        self.commitment_weight = float(commitment_weight)
        self.fit_seconds = 0.0
        self.model: PrefixShareVae | None = None

    def fit(self, X_search, X_rec) -> "PrefixShareQuantizer":
        X_search = check_item_matrix(X_search, "search")
        X_rec = check_item_matrix(X_rec, "rec", n_items=len(X_search))
        check_codebook_fits(len(X_search), self.codebook_size, self.name)
        started = time.perf_counter()
        with single_threaded_torch():
            self._fit(X_search, X_rec)
        self.fit_seconds = time.perf_counter() - started
        return self

    def _fit(self, X_search, X_rec) -> None:
        torch_seed(self.seed)
        self._scalers = {"search": _Standardiser(X_search), "rec": _Standardiser(X_rec)}
        self.dims = {"search": X_search.shape[1], "rec": X_rec.shape[1]}
        self.model = PrefixShareVae(self.dims["search"], self.dims["rec"], self.levels["shared"],
                                    self.levels["search"], self.codebook_size, hidden_dim=self.hidden_dim,
                                    latent_dim=self.latent_dim, commitment_weight=self.commitment_weight)
        xs = torch.from_numpy(self._scalers["search"].forward(X_search))
        xr = torch.from_numpy(self._scalers["rec"].forward(X_rec))
        with torch.no_grad():  # k-means initialisation on every item
            self.model.train()
            self.model(xs, xr)
        _train(self.model, [xs, xr], self.settings, self.seed)

    def _inputs(self, X_search, X_rec) -> tuple[torch.Tensor, torch.Tensor]:
        if self.model is None:
            raise SemanticIdConfigError("prefix_share: call fit(X_search, X_rec) before encode().")
        xs = torch.from_numpy(self._scalers["search"].forward(check_item_matrix(X_search, "search")))
        xr = torch.from_numpy(self._scalers["rec"].forward(check_item_matrix(X_rec, "rec", n_items=len(xs))))
        return xs, xr

    def encode(self, X_search, X_rec) -> dict[str, np.ndarray]:
        xs, xr = self._inputs(X_search, X_rec)
        with torch.no_grad(), single_threaded_torch():
            codes = self.model(xs, xr).codes
        return {part: codes[part].numpy().astype(np.int64) for part in PREFIX_PARTS}

    def decode(self, codes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Reconstructions ``{"search": (n, d_search), "rec": (n, d_rec)}`` from the three code parts."""
        with torch.no_grad(), single_threaded_torch():
            out = self.model.decode({part: torch.from_numpy(np.asarray(codes[part], dtype=np.int64))
                                     for part in PREFIX_PARTS})
            return {task: self._scalers[task].inverse(out[task].numpy()) for task in ("search", "rec")}


# ---- registry -----------------------------------------------------------------------------------
#: Name -> class for every quantizer of ``helpers.registry.QUANTIZERS`` (display names live there).
QUANTIZERS: dict[str, type[Quantizer]] = {
    "rq_kmeans": RQKMeansQuantizer,
    "dict": DictionaryQuantizer,
    "rlfq": ResidualLFQQuantizer,
    "rqvae": RQVAEQuantizer,
}
#: Arguments every quantizer takes from the top of ``semantic_ids``; the others are its own settings.
_COMMON_ARGUMENTS = ("self", "n_levels", "codebook_size", "seed")


def _check_name(name: str) -> None:
    if name not in QUANTIZERS:
        raise SemanticIdConfigError(
            f"Unknown quantizer {name!r}. Valid quantizers: {', '.join(QUANTIZERS)}.")


def quantizer_settings(name: str) -> dict[str, Any]:
    """Quantizer ``name``'s own keyword arguments and their defaults: the keys its profile section
    ``semantic_ids.quantizers.<name>`` may hold.

    >>> sorted(quantizer_settings("dict"))
    ['alpha', 'batch_size', 'max_iter']
    """
    _check_name(name)
    parameters = inspect.signature(QUANTIZERS[name].__init__).parameters
    return {key: p.default for key, p in parameters.items() if key not in _COMMON_ARGUMENTS}


def get_quantizer(name: str, n_levels: int, codebook_size: int, seed: int = 0, **kwargs) -> Quantizer:
    """Build the quantizer ``name`` (one of ``QUANTIZERS``) with its own keyword arguments.

    ``kwargs`` are the quantizer's settings (``semantic_ids.quantizers.<name>`` of the profile); a key
    the quantizer does not take raises :class:`SemanticIdConfigError` naming the ones it does.
    """
    known = quantizer_settings(name)
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise SemanticIdConfigError(
            f"Quantizer {name!r} has no setting {', '.join(unknown)} (semantic_ids.quantizers.{name}); "
            f"its settings are: {', '.join(known)}.")
    return QUANTIZERS[name](n_levels, codebook_size, seed, **kwargs)
