"""Quantizers: item vectors in, integer codes per level out, behind one interface.

Every quantizer is built by :func:`get_quantizer` and offers

* ``fit(X)``: learn codebooks on the item matrix ``X`` (float32, shape ``(n_items, d)``);
* ``encode(X) -> codes``: int64, shape ``(n_items, n_levels)``, values in ``[0, codebook_size)``;
  column ``l`` is the token of level ``l`` (level 0 is the coarsest);
* ``decode(codes) -> X_hat``: the reconstruction from the codes alone (float32, ``(n, d)``), so
  every quantizer is judged by the same relative reconstruction error.

The four are the paper's tokenizers (section 4, "ID tokenisation"):

``rq_kmeans``
    RQ-KMeans: ``faiss.ResidualQuantizer``, k-means on the residual of each level. The default.
``dict``
    Dictionary encoding: scikit-learn's ``MiniBatchDictionaryLearning``.
``rlfq``
    ``vector_quantize_pytorch.ResidualLFQ`` (lookup-free quantization) trained as an autoencoder on
    the item vectors through its built-in linear projections.
``rqvae``
    RQ-VAE: MLP encoder and decoder around ``vector_quantize_pytorch.ResidualVQ``, trained with
    reconstruction plus commitment loss.

:class:`PrefixShareQuantizer` (the prefix-share scheme's model) lives here too because it is
trained the same way as the RQ-VAE.
"""
from __future__ import annotations

import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError, StudyError


class SemanticIdConfigError(StudyError, ValueError):
    """A Semantic-ID parameter that cannot work: unknown quantizer or scheme, a codebook too large."""


class EmbeddingMatrixError(DataError):
    """An item matrix a quantizer cannot use: wrong shape, wrong row count, NaN or inf values."""


def check_item_matrix(X, name: str = "embedding", n_items: int | None = None) -> np.ndarray:
    """Return ``X`` as a C-contiguous float32 ``(n_items, d)`` array, or say what is wrong with it."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise EmbeddingMatrixError(
            f"The {name} matrix must be 2-D (n_items, dim) with at least one row and column, got shape "
            f"{X.shape}. Rebuild it with helpers.embeddings.stage.build_embedding(cfg, space, force=True).")
    if n_items is not None and X.shape[0] != n_items:
        raise EmbeddingMatrixError(
            f"The {name} matrix has {X.shape[0]} rows but the catalogue has {n_items} items (row i must be "
            f"item_id i). Rebuild the embedding for this profile (notebook 02).")
    if not np.issubdtype(X.dtype, np.number):
        raise EmbeddingMatrixError(f"The {name} matrix must be numeric, got dtype {X.dtype}.")
    X = np.ascontiguousarray(X, dtype=np.float32)
    bad_rows = np.flatnonzero(~np.isfinite(X).all(axis=1))
    if len(bad_rows):
        raise EmbeddingMatrixError(
            f"The {name} matrix has NaN or inf values in {len(bad_rows)} rows (first item ids: "
            f"{bad_rows[:5].tolist()}). Rebuild it (notebook 02), e.g. with a lower learning rate.")
    return X


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
            and while encoding. 1 is greedy residual k-means (each level picks the nearest centroid of
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
            raise SemanticIdConfigError(f"rq_train_type must be one of {self.TRAIN_TYPES}, got {train_type!r}.")
        self.beam_size = int(beam_size)
        self.train_type = train_type
        self.niter = int(niter)
        self.train_sample = int(train_sample) if train_sample else None
        self.threads = int(threads) if threads else None
        if self.train_sample is not None and self.train_sample < codebook_size:
            raise SemanticIdConfigError(f"rq_train_sample ({self.train_sample}) must be at least the codebook size "
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
        return self._rq.compute_codes(self._into_span(self._check_fitted_input(X)))

    def _encode(self, X):
        import faiss

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
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            yield

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
        X = self._scaler.forward(X)
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
            return self._model.transform(self._scaler.forward(self._check_fitted_input(X)))

    def _encode(self, X):
        return self._codes_from_sparse(self._model.transform(self._scaler.forward(X)))

    def _decode(self, codes):
        atoms = self._model.components_
        levels = np.arange(self.n_levels)
        weights = self._mean_coef[levels[None, :], codes]  # (n, n_levels)
        return self._scaler.inverse(np.einsum("nl,nld->nd", weights, atoms[codes]))


# ---- Neural quantizers (vector-quantize-pytorch) -------------------------------------------------
@dataclass
class TrainSettings:
    """How the neural quantizers are trained (Adam, mini-batches over the items)."""

    epochs: int = 200
    lr: float = 1e-3
    batch_size: int = 256
    hidden_dim: int = 256
    latent_dim: int = 32
    commitment_weight: float = 0.25
    history: list = field(default_factory=list)  # mean loss per epoch, filled by training


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
    import torch

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


def _train(model, inputs: list, loss_fn, settings: TrainSettings, seed: int) -> None:
    """Adam over shuffled mini-batches of the rows of ``inputs`` (tensors with equal row counts)."""
    import torch

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
            loss = loss_fn(*(t[rows] for t in inputs))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(rows)
        settings.history.append(total / n)
    model.eval()


def _mlp(d_in: int, hidden: int, d_out: int):
    from torch import nn

    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out))


class RQVAEQuantizer(Quantizer):
    """RQ-VAE: ``MLP encoder -> ResidualVQ (n_levels codebooks) -> MLP decoder``.

    Trained on the standardised item vectors with ``MSE(x, decoder(quantised)) + commitment_weight *
    commitment loss``. The codebooks are updated by exponential moving averages (vector-quantize-pytorch's
    default), initialised by k-means on every item's latent, and codes unused for a while are re-seeded
    from the batch (``threshold_ema_dead_code``) so that training does not collapse onto a few codes.
    """

    name = "rqvae"

    def _runtime(self):
        return single_threaded_torch()

    def __init__(self, n_levels, codebook_size, seed=0, **train_kwargs):
        super().__init__(n_levels, codebook_size, seed)
        self.settings = TrainSettings(**train_kwargs)
        self._model = None

    def _build(self):
        from torch import nn
        from vector_quantize_pytorch import ResidualVQ

        s = self.settings
        model = nn.Module()
        model.encoder = _mlp(self.dim, s.hidden_dim, s.latent_dim)
        model.quantizer = ResidualVQ(
            dim=s.latent_dim, num_quantizers=self.n_levels, codebook_size=self.codebook_size,
            kmeans_init=True, kmeans_iters=10, threshold_ema_dead_code=2,
            commitment_weight=s.commitment_weight)
        model.decoder = _mlp(s.latent_dim, s.hidden_dim, self.dim)
        return model

    def _fit(self, X):
        import torch
        import torch.nn.functional as F

        torch_seed(self.seed)
        self._scaler = _Standardiser(X)
        model = self._build()
        data = torch.from_numpy(self._scaler.forward(X))
        with torch.no_grad():  # k-means initialisation of the codebooks on every item, not one batch
            model.train()
            model.quantizer(model.encoder(data))

        def loss_fn(x):
            quantised, _, commitment = model.quantizer(model.encoder(x))
            return F.mse_loss(model.decoder(quantised), x) + commitment.sum()

        _train(model, [data], loss_fn, self.settings, self.seed)
        self._model = model

    def _encode(self, X):
        import torch

        with torch.no_grad():
            _, codes, _ = self._model.quantizer(self._model.encoder(torch.from_numpy(self._scaler.forward(X))))
        return codes.numpy()

    def _decode(self, codes):
        import torch

        with torch.no_grad():
            latent = self._model.quantizer.get_output_from_indices(torch.from_numpy(codes))
            return self._scaler.inverse(self._model.decoder(latent).numpy())


class ResidualLFQQuantizer(Quantizer):
    """``vector_quantize_pytorch.ResidualLFQ`` trained as an autoencoder on the item vectors.

    Lookup-free quantization has no codebook vectors to learn: each level binarises a
    ``log2(codebook_size)``-d projection of the residual (the code is the sign pattern), so the model is
    ResidualLFQ's own linear ``project_in`` / ``project_out`` plus the levels. Loss: ``MSE(x, x_hat)`` +
    ResidualLFQ's auxiliary loss (entropy term that spreads the codes, plus commitment).
    """

    name = "rlfq"

    def _runtime(self):
        return single_threaded_torch()

    def __init__(self, n_levels, codebook_size, seed=0, entropy_loss_weight: float = 0.1, **train_kwargs):
        super().__init__(n_levels, codebook_size, seed)
        _require_power_of_two(codebook_size, "rlfq")
        self.entropy_loss_weight = float(entropy_loss_weight)
        self.settings = TrainSettings(**train_kwargs)
        self._model = None

    def _fit(self, X):
        import torch
        import torch.nn.functional as F
        from vector_quantize_pytorch import ResidualLFQ

        torch_seed(self.seed)
        self._scaler = _Standardiser(X)
        model = ResidualLFQ(dim=self.dim, num_quantizers=self.n_levels, codebook_size=self.codebook_size,
                            entropy_loss_weight=self.entropy_loss_weight,
                            commitment_loss_weight=self.settings.commitment_weight)
        data = torch.from_numpy(self._scaler.forward(X))

        def loss_fn(x):
            reconstruction, _, aux = model(x.unsqueeze(1))  # LFQ expects (batch, sequence, dim)
            return F.mse_loss(reconstruction.squeeze(1), x) + aux.sum()

        _train(model, [data], loss_fn, self.settings, self.seed)
        self._model = model

    def _encode(self, X):
        import torch

        with torch.no_grad():
            _, codes, _ = self._model(torch.from_numpy(self._scaler.forward(X)).unsqueeze(1))
        return codes.squeeze(1).numpy()

    def _decode(self, codes):
        import torch

        with torch.no_grad():
            out = self._model.get_output_from_indices(torch.from_numpy(codes).unsqueeze(1)).squeeze(1)
        return self._scaler.inverse(out.numpy())


def torch_seed(seed: int) -> None:
    """Seed torch's global generator (module initialisation and k-means initialisation draw from it)."""
    import torch

    torch.manual_seed(seed)


# ---- Prefix-share: one encoder, a shared and two task codebooks, two decoders ---------------------
class PrefixShareQuantizer:
    """The prefix-share model (paper section 3.2, after Shi et al.).

    ``x = [v_search, v_rec]`` (each standardised) -> one MLP trunk -> three linear heads giving a shared,
    a search and a rec latent, each quantised by its own ``ResidualVQ`` (``shared_levels``,
    ``task_levels``, ``task_levels`` codebooks). The search decoder reconstructs ``v_search`` from
    ``[shared, search]`` quantised latents, the rec decoder ``v_rec`` from ``[shared, rec]``. Training
    minimises the two reconstruction errors plus the commitment losses, so the shared codebook must hold
    what both decoders need and each task codebook what only its task needs.

    ``encode`` returns ``{"shared": (n, shared_levels), "search": (n, task_levels), "rec": ...}``; an
    item's search ID is its shared codes followed by its search codes.
    """

    name = "prefix_share"

    def __init__(self, shared_levels: int, task_levels: int, codebook_size: int, seed: int = 0, **train_kwargs):
        if shared_levels < 1 or task_levels < 1:
            raise SemanticIdConfigError(
                f"prefix_share needs at least one shared and one task-specific level, got shared="
                f"{shared_levels}, task={task_levels}. Set semantic_ids.n_levels >= 2 and "
                f"1 <= prefix_share_shared_levels < n_levels.")
        self.levels = {"shared": int(shared_levels), "search": int(task_levels), "rec": int(task_levels)}
        self.codebook_size = int(codebook_size)
        self.seed = int(seed)
        self.settings = TrainSettings(**train_kwargs)
        self.fit_seconds = 0.0
        self._model = None

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
        import torch
        import torch.nn.functional as F
        from torch import nn
        from vector_quantize_pytorch import ResidualVQ

        torch_seed(self.seed)
        self._scalers = {"search": _Standardiser(X_search), "rec": _Standardiser(X_rec)}
        self.dims = {"search": X_search.shape[1], "rec": X_rec.shape[1]}
        s = self.settings
        model = nn.Module()
        model.trunk = nn.Sequential(nn.Linear(sum(self.dims.values()), s.hidden_dim), nn.ReLU())
        model.heads = nn.ModuleDict({part: nn.Linear(s.hidden_dim, s.latent_dim) for part in self.levels})
        model.quantizers = nn.ModuleDict({
            part: ResidualVQ(dim=s.latent_dim, num_quantizers=levels, codebook_size=self.codebook_size,
                             kmeans_init=True, kmeans_iters=10, threshold_ema_dead_code=2,
                             commitment_weight=s.commitment_weight)
            for part, levels in self.levels.items()})
        model.decoders = nn.ModuleDict({task: _mlp(2 * s.latent_dim, s.hidden_dim, self.dims[task])
                                        for task in ("search", "rec")})
        self._model = model
        xs = torch.from_numpy(self._scalers["search"].forward(X_search))
        xr = torch.from_numpy(self._scalers["rec"].forward(X_rec))
        with torch.no_grad():  # k-means initialisation on every item
            model.train()
            self._quantise(xs, xr)

        def loss_fn(xs, xr):
            out = self._quantise(xs, xr)
            loss = sum(commitment.sum() for _, _, commitment in out.values())
            for task, target in (("search", xs), ("rec", xr)):
                loss = loss + F.mse_loss(self._decode_task(task, out["shared"][0], out[task][0]), target)
            return loss

        _train(model, [xs, xr], loss_fn, s, self.seed)

    def _quantise(self, xs, xr) -> dict:
        import torch

        hidden = self._model.trunk(torch.cat([xs, xr], dim=1))
        return {part: self._model.quantizers[part](self._model.heads[part](hidden)) for part in self.levels}

    def _decode_task(self, task, shared_latent, task_latent):
        import torch

        return self._model.decoders[task](torch.cat([shared_latent, task_latent], dim=1))

    def encode(self, X_search, X_rec) -> dict[str, np.ndarray]:
        import torch

        xs = torch.from_numpy(self._scalers["search"].forward(check_item_matrix(X_search, "search")))
        xr = torch.from_numpy(self._scalers["rec"].forward(check_item_matrix(X_rec, "rec", n_items=len(xs))))
        with torch.no_grad(), single_threaded_torch():
            out = self._quantise(xs, xr)
        return {part: out[part][1].numpy().astype(np.int64) for part in self.levels}

    def decode(self, codes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Reconstructions ``{"search": (n, d_search), "rec": (n, d_rec)}`` from the three code parts."""
        import torch

        with torch.no_grad(), single_threaded_torch():
            latent = {part: self._model.quantizers[part].get_output_from_indices(torch.from_numpy(codes[part]))
                      for part in self.levels}
            return {task: self._scalers[task].inverse(
                        self._decode_task(task, latent["shared"], latent[task]).numpy())
                    for task in ("search", "rec")}


# ---- registry -----------------------------------------------------------------------------------
QUANTIZERS = {
    "rq_kmeans": RQKMeansQuantizer,
    "dict": DictionaryQuantizer,
    "rlfq": ResidualLFQQuantizer,
    "rqvae": RQVAEQuantizer,
}
#: Display names used in tables and plots (DESIGN.md, "Names").
DISPLAY_NAMES = {"rq_kmeans": "RQ-KMeans", "dict": "Dictionary encoding", "rlfq": "ResidualLFQ",
                 "rqvae": "RQ-VAE"}


def get_quantizer(name: str, n_levels: int, codebook_size: int, seed: int = 0, **kwargs) -> Quantizer:
    """Build the quantizer ``name`` (one of ``QUANTIZERS``) with its own keyword arguments."""
    if name not in QUANTIZERS:
        raise SemanticIdConfigError(
            f"Unknown quantizer {name!r}. Valid quantizers: {', '.join(QUANTIZERS)}.")
    return QUANTIZERS[name](n_levels, codebook_size, seed, **kwargs)
