"""ID schemes: how a search ID and a rec ID are made for every item (paper, section 3).

``shared``
    One embedding space, one quantizer, one ID per item used by both tasks: ``<a_12><b_34><c_0>``.
    (Content-based, Search based, Rec. based, Fused concat, Fused SVD, Multi-task.)
``separate``
    The search ID comes from the search space, the rec ID from the rec space, each quantised on its
    own and written with task-tagged tokens (``<s_a_12>...`` vs ``<r_a_12>...``): disjoint
    vocabularies, twice the tokens. Search prompts decode only search tokens, rec prompts only rec ones.
``prefix_share``
    One model over ``[v_search, v_rec]`` with a shared and two task-specific codebooks
    (:class:`~helpers.semantic_ids.quantizers.PrefixShareQuantizer`); the ID is the shared tokens
    followed by the task's own: search ``<a_12><s_b_3>``, rec ``<a_12><r_b_7>``.

In every scheme colliding code tuples get one more, disambiguation, token per task
(``collisions.disambiguate``), tagged like the task's last level.

Scheme names are ``helpers.registry.SCHEMES``. :func:`build_ids` reads the profile's ``semantic_ids``
section laid out one section per quantizer::

    n_levels: 2
    codebook_size: 64
    seed: 0
    quantizers:                      # each quantizer's keyword arguments, passed as-is
      rq_kmeans: {beam_size: 1, train_type: progressive_dim, niter: 20, train_sample: null, threads: 1}
      dict:      {max_iter: 10, alpha: 1.0}
      rlfq:      {epochs: 100, batch_size: 512, lr: 1.0e-2, entropy_loss_weight: 0.1, commitment_weight: 0.25}
      rqvae:     {epochs: 100, batch_size: 512, lr: 1.0e-3, hidden_dim: 256, latent_dim: 32, commitment_weight: 0.25}
    schemes:
      prefix_share: {shared_levels: 1}   # the prefix-share model trains with quantizers.rqvae

and :func:`used_params` cuts it down to what one construction reads (its cache key).
"""
from __future__ import annotations

import time

import numpy as np

from .. import registry
from . import tokens as tok
from .collisions import collision_stats, disambiguate
from .diagnostics import part_diagnostics
from .ids import TASKS, SemanticIds
from .quantizers import (
    QUANTIZERS,
    PrefixShareQuantizer,
    SemanticIdConfigError,
    check_item_matrix,
    get_quantizer,
)

SCHEMES = registry.SCHEMES
#: The quantizer whose settings (``semantic_ids.quantizers.rqvae``) the prefix-share model trains with.
PREFIX_SHARE_QUANTIZER = "rqvae"
#: Which input vectors each scheme needs (keys of the ``vectors`` mapping given to :func:`build_ids`).
SCHEME_INPUTS = {"shared": ("shared",), "separate": ("search", "rec"), "prefix_share": ("search", "rec")}


def check_scheme(scheme: str, quantizer: str) -> None:
    """Refuse unknown schemes and quantizers, and quantizers a scheme cannot use."""
    if scheme not in SCHEMES:
        raise SemanticIdConfigError(f"Unknown scheme {scheme!r}. Valid schemes: {', '.join(SCHEMES)}.")
    if quantizer not in QUANTIZERS:
        raise SemanticIdConfigError(f"Unknown quantizer {quantizer!r}. Valid quantizers: {', '.join(QUANTIZERS)}.")
    if scheme == "prefix_share" and quantizer != "rqvae":
        raise SemanticIdConfigError(
            f"The prefix_share scheme trains its own encoder with a shared and two task-specific VQ "
            f"codebooks and two decoders (an RQ-VAE), so it cannot use quantizer {quantizer!r}. "
            f"Set quantizer: rqvae for it.")


def quantizer_kwargs(name: str, params: dict) -> dict:
    """Quantizer ``name``'s keyword arguments: the profile's ``semantic_ids.quantizers.<name>``, as-is.

    Args:
        name: one of ``QUANTIZERS``.
        params: the profile's ``semantic_ids`` section (``quantizers: {rq_kmeans: {...}, dict: {...},
            ...}``).
    """
    if name not in QUANTIZERS:
        raise SemanticIdConfigError(f"Unknown quantizer {name!r}. Valid quantizers: {', '.join(QUANTIZERS)}.")
    sections = params.get("quantizers")
    if not isinstance(sections, dict) or not isinstance(sections.get(name), dict):
        raise SemanticIdConfigError(
            f"semantic_ids.quantizers.{name} is missing: the semantic_ids section needs one mapping of settings "
            f"per quantizer, e.g. quantizers: {{{name}: {{...}}}} (see helpers/profiles/ml100k.yaml).")
    return dict(sections[name])


def prefix_share_settings(params: dict) -> tuple[int, dict]:
    """``(shared_levels, model kwargs)`` of the prefix-share model: the profile's
    ``semantic_ids.schemes.prefix_share.shared_levels`` and ``semantic_ids.quantizers.rqvae``."""
    try:
        shared_levels = params["schemes"]["prefix_share"]["shared_levels"]
    except (KeyError, TypeError):
        raise SemanticIdConfigError(
            "semantic_ids.schemes.prefix_share.shared_levels is missing: the prefix_share scheme needs the "
            "number of shared codebooks, e.g. schemes: {prefix_share: {shared_levels: 1}}.") from None
    return int(shared_levels), quantizer_kwargs(PREFIX_SHARE_QUANTIZER, params)


def used_params(params: dict, scheme: str, quantizer: str) -> dict:
    """The part of ``params`` (the ``semantic_ids`` section) that a ``(scheme, quantizer)`` construction
    reads: ``n_levels``, ``codebook_size``, ``seed``, its own quantizer's section and, for prefix-share,
    its scheme section. ``build_ids`` gives the same IDs from this subset as from the whole section, so
    it is what a construction's cache key needs.

    >>> section = {"n_levels": 2, "codebook_size": 64, "seed": 0, "constructions": {},
    ...            "quantizers": {"rq_kmeans": {"niter": 20}, "dict": {"max_iter": 10}},
    ...            "schemes": {"prefix_share": {"shared_levels": 1}}}
    >>> used_params(section, "shared", "rq_kmeans")
    {'n_levels': 2, 'codebook_size': 64, 'seed': 0, 'quantizers': {'rq_kmeans': {'niter': 20}}}
    """
    check_scheme(scheme, quantizer)
    used = {key: params[key] for key in ("n_levels", "codebook_size", "seed")}
    name = PREFIX_SHARE_QUANTIZER if scheme == "prefix_share" else quantizer
    used["quantizers"] = {name: quantizer_kwargs(name, params)}
    if scheme == "prefix_share":
        used["schemes"] = {"prefix_share": {"shared_levels": prefix_share_settings(params)[0]}}
    return used


def assemble_task_ids(segments: list[tuple[np.ndarray, str]], codebook_size: int
                      ) -> tuple[list[list[str]], list[str], dict]:
    """Tokens, vocabulary and collision statistics of one task's IDs.

    Args:
        segments: ``(codes, tag)`` pairs whose codes are concatenated level by level (prefix-share:
            the shared codes untagged, then the task's codes tagged); levels are lettered across
            segments, and the disambiguation token takes the last segment's tag.
        codebook_size: codes per level, so that the vocabulary holds whole codebooks.
    """
    codes = np.concatenate([np.asarray(c, dtype=np.int64) for c, _ in segments], axis=1)
    level_tags = [tag for c, tag in segments for _ in range(np.asarray(c).shape[1])]
    stats = collision_stats(codes)
    unique = disambiguate(codes)
    vocabulary = [t for level, tag in enumerate(level_tags) for t in tok.level_vocabulary(level, codebook_size, tag)]
    if unique.shape[1] > codes.shape[1]:
        level_tags.append(segments[-1][1])
        vocabulary += tok.level_vocabulary(codes.shape[1], int(unique[:, -1].max()) + 1, level_tags[-1])
    stats.update(id_length=int(unique.shape[1]), disambiguation_tokens=int(unique.shape[1] > codes.shape[1])
                 * (int(unique[:, -1].max()) + 1))
    return tok.codes_to_tokens(unique, level_tags), vocabulary, stats


def _quantise(name: str, X: np.ndarray, params: dict, genres, seed: int) -> tuple[np.ndarray, dict]:
    quantizer = get_quantizer(name, params["n_levels"], params["codebook_size"], seed,
                              **quantizer_kwargs(name, params))
    codes = quantizer.fit_encode(X)
    started = time.perf_counter()
    X_hat = quantizer.decode(codes)
    info = part_diagnostics(codes, params["codebook_size"], X, X_hat, genres, seed=seed)
    info["fit_seconds"] = round(quantizer.fit_seconds, 3)
    info["diagnostic_seconds"] = round(time.perf_counter() - started, 3)
    if hasattr(quantizer, "settings"):
        info["final_train_loss"] = quantizer.settings.history[-1] if quantizer.settings.history else None
    return codes, info


def build_ids(construction: str, scheme: str, quantizer: str, vectors: dict, params: dict,
              genres=None) -> SemanticIds:
    """Quantise ``vectors`` under ``scheme`` and return unique, fixed-length, tokenised IDs.

    Args:
        construction: the name stored with the IDs (e.g. ``multitask``).
        scheme: one of ``SCHEMES``; quantizer: one of ``QUANTIZERS``.
        vectors: ``{"shared": X}`` for ``shared``; ``{"search": X_s, "rec": X_r}`` otherwise; float
            matrices whose row i is item_id i.
        params: the profile's ``semantic_ids`` section: ``n_levels``, ``codebook_size``, ``seed``,
            ``quantizers.<quantizer>`` (the quantizer's keyword arguments, passed as-is) and, for
            ``prefix_share``, ``schemes.prefix_share.shared_levels`` and ``quantizers.rqvae`` (the
            model's training settings). Other keys are ignored (see :func:`used_params`).
        genres: optional ``|``-separated genre string per item, for the genre-agreement diagnostic.
    """
    check_scheme(scheme, quantizer)
    missing = [k for k in SCHEME_INPUTS[scheme] if k not in vectors]
    if missing:
        raise SemanticIdConfigError(f"The {scheme} scheme needs vectors for {SCHEME_INPUTS[scheme]}; "
                                    f"missing {missing}.")
    n_items = None
    checked = {}
    for part in SCHEME_INPUTS[scheme]:
        checked[part] = check_item_matrix(vectors[part], f"{construction}/{part}", n_items=n_items)
        n_items = len(checked[part])
    size, seed = params["codebook_size"], params["seed"]
    started = time.perf_counter()
    parts: dict[str, dict] = {}
    codes: dict[str, np.ndarray] = {}
    if scheme == "shared":
        codes["shared"], parts["shared"] = _quantise(quantizer, checked["shared"], params, genres, seed)
        ids, vocabulary, stats = assemble_task_ids([(codes["shared"], "")], size)
        task_ids = {"search": ids, "rec": ids}
        task_stats = {"search": stats, "rec": stats}
    elif scheme == "separate":
        task_ids, task_stats, vocabulary = {}, {}, []
        for task in TASKS:
            codes[task], parts[task] = _quantise(quantizer, checked[task], params, genres, seed)
            task_ids[task], task_vocab, task_stats[task] = assemble_task_ids(
                [(codes[task], tok.TASK_TAGS[task])], size)
            vocabulary += task_vocab
    else:  # prefix_share
        shared_levels, model_kwargs = prefix_share_settings(params)
        model = PrefixShareQuantizer(shared_levels, params["n_levels"] - shared_levels, size, seed, **model_kwargs)
        codes = model.fit(checked["search"], checked["rec"]).encode(checked["search"], checked["rec"])
        reconstruction = model.decode(codes)
        parts["shared"] = part_diagnostics(codes["shared"], size, genres=genres, seed=seed)
        parts["shared"]["fit_seconds"] = round(model.fit_seconds, 3)
        parts["shared"]["final_train_loss"] = model.settings.history[-1] if model.settings.history else None
        task_ids, task_stats, vocabulary = {}, {}, []
        for task in TASKS:
            parts[task] = part_diagnostics(codes[task], size, checked[task], reconstruction[task], seed=seed)
            task_ids[task], task_vocab, task_stats[task] = assemble_task_ids(
                [(codes["shared"], tok.TASK_TAGS["shared"]), (codes[task], tok.TASK_TAGS[task])], size)
            vocabulary += task_vocab
        vocabulary = list(dict.fromkeys(vocabulary))  # the shared level appears in both task lists
    diagnostics = {
        "quantizer": quantizer, "n_items": n_items, "n_levels": params["n_levels"], "codebook_size": size,
        "seed": seed, "parts": parts, "tasks": task_stats,
        "collision_rate": max(s["collision_rate"] for s in task_stats.values()),
        "vocabulary_size": len(vocabulary), "seconds": round(time.perf_counter() - started, 3),
    }
    return SemanticIds(construction=construction, scheme=scheme, search_tokens=task_ids["search"],
                       rec_tokens=task_ids["rec"], vocabulary=sorted(vocabulary), codes=codes,
                       diagnostics=diagnostics)
