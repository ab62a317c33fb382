"""One registry of the study's names: embedding spaces, quantizers, ID schemes and constructions.

Every stage, table and plot takes its names from here, so a new space, quantizer or construction is
added in one place (and in the profile). Keys are the snake_case names profiles use; display names
are the paper's (tables and plots keep them).

A *construction* is one entry of a profile's ``semantic_ids.constructions`` map: which embedding
space(s) are quantised, by which quantizer, under which scheme::

    multitask:    {space: multitask,     quantizer: rq_kmeans, scheme: shared}
    separate:     {space: [search, rec], quantizer: rq_kmeans, scheme: separate}

    >>> construction_names({"semantic_ids": {"constructions": {"search": {}, "rec": {}}}})
    ['search', 'rec']
    >>> display_name("fused_svd")
    'Fused SVD'
"""
from __future__ import annotations

from .errors import ProfileError

#: Embedding spaces of stage 02, in build order (fused spaces read search and rec).
SPACES = ("content", "search", "rec", "multitask", "fused_concat", "fused_svd")
#: Spaces with a text encoder: a query can be embedded into them.
TEXT_SPACES = ("content", "search", "multitask")
#: How stage 02 trains ENMF (``embeddings.rec.implementation``; ``helpers.embeddings.enmf``).
ENMF_IMPLEMENTATIONS = ("sparse", "sparse-recbole-padding", "recbole")
#: Quantizers of stage 03 (``helpers.semantic_ids.quantizers``).
QUANTIZERS = ("rq_kmeans", "dict", "rlfq", "rqvae")
#: ID schemes of stage 03 (``helpers.semantic_ids.schemes``).
SCHEMES = ("shared", "separate", "prefix_share")

#: The paper's names (Tables 1-3, Figure 2) for spaces and the constructions named after them.
SPACE_NAMES = {"content": "Content-based", "search": "Search based", "rec": "Rec. based",
               "multitask": "Multi-task", "fused_concat": "Fused concat", "fused_svd": "Fused SVD"}
QUANTIZER_NAMES = {"rq_kmeans": "RQ-KMeans", "dict": "Dictionary encoding", "rlfq": "ResidualLFQ",
                   "rqvae": "RQ-VAE"}
SCHEME_NAMES = {"shared": "Shared", "separate": "Separate", "prefix_share": "Prefix-share"}
#: Display names of the default profile's constructions; any other construction is shown by its key.
CONSTRUCTION_NAMES = {**SPACE_NAMES, "separate": "Separate", "prefix_share": "Prefix-share",
                      "multitask_dict": "Dictionary encoding", "multitask_rlfq": "ResidualLFQ",
                      "multitask_rqvae": "RQ-VAE"}
#: The tokenizer ablation (paper Table 3): construction -> its row label, all on the Multi-task space.
TOKENIZER_CONSTRUCTIONS = {"multitask": "RQ-KMeans", "multitask_dict": "Dictionary encoding",
                           "multitask_rlfq": "ResidualLFQ", "multitask_rqvae": "RQ-VAE"}


def display_name(name: str) -> str:
    """The paper's name of a construction, space, quantizer or scheme key (the key itself if unknown)."""
    for names in (CONSTRUCTION_NAMES, QUANTIZER_NAMES, SCHEME_NAMES):
        if name in names:
            return names[name]
    return name


def construction_names(cfg: dict) -> list[str]:
    """Every construction of the profile, in the profile's order."""
    return list(cfg["semantic_ids"]["constructions"])


def check_construction(cfg: dict, construction: str) -> str:
    """``construction`` if the profile defines it, else ``ProfileError`` listing the ones it does."""
    known = construction_names(cfg)
    if not isinstance(construction, str) or construction not in known:
        raise ProfileError(f"Unknown construction {construction!r}. This profile defines "
                           f"(semantic_ids.constructions): {', '.join(known)}.")
    return construction


def resolve_constructions(cfg: dict, constructions=None) -> list[str]:
    """The chosen constructions in the profile's order (all of them for ``None``).

    ``constructions`` may be one name, a list, or ``None`` (then ``evaluation.constructions``, then
    every construction of the profile). Unknown names and empty lists raise ``ProfileError``.
    """
    known = construction_names(cfg)
    chosen = constructions if constructions is not None else cfg.get("evaluation", {}).get("constructions")
    if chosen is None:
        return known
    if isinstance(chosen, str):
        chosen = [chosen]
    chosen = list(chosen)
    if not chosen:
        raise ProfileError(f"No construction chosen: pass at least one of {', '.join(known)}.")
    for name in chosen:
        check_construction(cfg, name)
    return [c for c in known if c in chosen]
