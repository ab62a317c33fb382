"""Stage 03 entry points: Semantic IDs for every construction of a profile, cached.

A *construction* is one entry of the profile's ``semantic_ids.constructions`` map::

    multitask:    {space: multitask,     quantizer: rq_kmeans, scheme: shared}
    separate:     {space: [search, rec], quantizer: rq_kmeans, scheme: separate}

``space`` names an embedding space of stage 02 (``helpers.embeddings.stage.SPACES``), or a
``[search_space, rec_space]`` pair for the ``separate`` and ``prefix_share`` schemes.

Artifact folder: ``data/runs/<profile>/semantic_ids/<construction>/<hash>/`` where the hash covers the
construction spec, the shared sizes (``n_levels``, ``codebook_size``, ``seed``), its own quantizer's
section of ``semantic_ids.quantizers`` (and its scheme's section of ``semantic_ids.schemes``, if any)
and the folder names (hashes) of the embeddings it reads: changing RQ-VAE's epochs rebuilds only the
constructions that use RQ-VAE. Its files are documented in ``helpers.semantic_ids.ids``
(``ids.parquet``, ``vocabulary.json``, ``codes_<part>.npy``, ``diagnostics.json``) plus
``manifest.json``.

The three-function stage pattern (see ``helpers.data.stage``): ``semantic_ids_dir``,
``build_semantic_ids``, ``load_semantic_ids``; ``build_all_semantic_ids`` runs every construction.
"""
from __future__ import annotations

import logging
from pathlib import Path

from .. import artifacts
from ..registry import check_construction, construction_names
from .ids import SemanticIds
from .quantizers import SemanticIdConfigError
from .schemes import SCHEME_INPUTS, build_ids, check_scheme, used_params

log = logging.getLogger(__name__)
PRODUCED_BY = "notebooks/03_semantic_ids.ipynb"
SCHEMA = 1


def construction_spec(cfg: dict, construction: str) -> dict:
    """The checked ``{space, quantizer, scheme}`` of ``construction``, with ``spaces`` per input part."""
    spec = dict(cfg["semantic_ids"]["constructions"][check_construction(cfg, construction)])
    unknown = set(spec) - {"space", "quantizer", "scheme"}
    if unknown or "space" not in spec:
        raise SemanticIdConfigError(
            f"semantic_ids.constructions.{construction} must be {{space, quantizer, scheme}}, got {sorted(spec)}.")
    spec.setdefault("quantizer", "rq_kmeans")
    spec.setdefault("scheme", "shared")
    check_scheme(spec["scheme"], spec["quantizer"])
    space = spec["space"]
    inputs = SCHEME_INPUTS[spec["scheme"]]
    if spec["scheme"] == "shared":
        if not isinstance(space, str):
            raise SemanticIdConfigError(
                f"semantic_ids.constructions.{construction}: the shared scheme quantises one space; set space to "
                f"a single name such as multitask, got {space!r}.")
        spec["spaces"] = {"shared": space}
    else:
        if not (isinstance(space, (list, tuple)) and len(space) == 2 and all(isinstance(s, str) for s in space)):
            raise SemanticIdConfigError(
                f"semantic_ids.constructions.{construction}: the {spec['scheme']} scheme needs "
                f"space: [search_space, rec_space], e.g. [search, rec]; got {space!r}.")
        spec["space"] = list(space)
        spec["spaces"] = dict(zip(inputs, space))
    from ..embeddings.stage import check_space

    for name in spec["spaces"].values():
        check_space(name)
    return spec


def sid_params(cfg: dict, construction: str) -> dict:
    """The ``semantic_ids`` parameters ``construction`` uses, in the profile's layout.

    The shared sizes, its own quantizer's section and its scheme's section (prefix-share): what its
    folder hash covers and what ``build_ids`` reads (``schemes.used_params``).
    """
    spec = construction_spec(cfg, construction)
    return used_params(cfg["semantic_ids"], spec["scheme"], spec["quantizer"])


def semantic_ids_dir(cfg: dict, construction: str) -> Path:
    """The artifact folder of ``construction`` for this profile (a pure function of the profile)."""
    from ..embeddings.stage import embedding_dir

    spec = construction_spec(cfg, construction)
    key = {"schema": SCHEMA, "construction": {k: spec[k] for k in ("space", "quantizer", "scheme")},
           "params": sid_params(cfg, construction),
           "embeddings": {part: embedding_dir(cfg, space).name for part, space in spec["spaces"].items()}}
    return artifacts.stage_dir(cfg, "semantic_ids", key, name=construction)


def load_semantic_ids(cfg: dict, construction: str) -> SemanticIds:
    """The saved IDs of ``construction``, or MissingArtifactError naming notebook 03."""
    folder = artifacts.require(semantic_ids_dir(cfg, construction),
                               f"Semantic IDs '{construction}'", PRODUCED_BY, cfg)
    return SemanticIds.load(folder)


def build_semantic_ids(cfg: dict, construction: str, force: bool = False) -> SemanticIds:
    """Quantise the construction's embedding(s) into unique, tokenised IDs; cached and atomic.

    Builds the embeddings it needs (stage 02) if they are missing.
    """
    folder = semantic_ids_dir(cfg, construction)
    if artifacts.is_complete(folder) and not force:
        return SemanticIds.load(folder)
    from ..data.stage import build_dataset
    from ..embeddings.stage import build_embedding

    spec = construction_spec(cfg, construction)
    genres = build_dataset(cfg).items["genres"].tolist()  # first: the embedding stage only loads it
    vectors = {part: build_embedding(cfg, space) for part, space in spec["spaces"].items()}
    params = sid_params(cfg, construction)
    ids = build_ids(construction, spec["scheme"], spec["quantizer"], vectors, params, genres=genres)
    ids.diagnostics["spaces"] = dict(spec["spaces"])
    if spec["scheme"] == "prefix_share":  # its shared codebook is learnt from both spaces
        ids.diagnostics["spaces"]["shared"] = "+".join(spec["spaces"][t] for t in ("search", "rec"))
    log.info("%s: collision rate %.3f before disambiguation, utilisation %s", construction,
             ids.diagnostics["collision_rate"],
             {part: [round(u, 2) for u in info["utilisation"]] for part, info in ids.diagnostics["parts"].items()})
    manifest = {"stage": "semantic_ids", "profile": cfg["name"], "construction": construction,
                "spec": {k: spec[k] for k in ("space", "quantizer", "scheme")}, "params": params,
                "embedding_dirs": {part: str(p) for part, p in _embedding_dirs(cfg, spec).items()},
                "n_items": ids.n_items, "collision_rate": ids.diagnostics["collision_rate"],
                "vocabulary_size": len(ids.vocabulary)}
    with artifacts.atomic_dir(folder, manifest) as tmp:
        ids.save(tmp)
    return SemanticIds.load(folder)


def _embedding_dirs(cfg: dict, spec: dict) -> dict:
    from ..embeddings.stage import embedding_dir

    return {part: embedding_dir(cfg, space) for part, space in spec["spaces"].items()}


def build_all_semantic_ids(cfg: dict, force: bool = False) -> dict[str, SemanticIds]:
    """Every construction of ``semantic_ids.constructions``, in profile order."""
    return {name: build_semantic_ids(cfg, name, force=force) for name in construction_names(cfg)}
