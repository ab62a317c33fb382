"""Profiles: one YAML file holds every parameter of every stage.

Layering follows RecBole: the base profile (``ml100k.yaml``) -> the named profile (which
``extends`` it and overrides what differs) -> ``overrides`` passed in code (a notebook's
``parameters`` cell or ``python -m helpers.study --set generative.epochs=3``).

    >>> cfg = load_profile("smoke", {"generative": {"epochs": 1}})
    >>> cfg["generative"]["epochs"]
    1
"""
from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

import yaml

from .errors import ProfileError
from .registry import ENMF_IMPLEMENTATIONS, QUANTIZERS, SCHEMES, SPACES

PROFILE_DIR = Path(__file__).parent / "profiles"

PARAPHRASE_GENRES = ("name", "synonym")  # data.queries.paraphrase_genres (helpers.data.queries)
DEFAULT_PROFILE = "ml100k"
#: Where caches and runs live; override with the SID_DATA_ROOT environment variable.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def _read_yaml(path: Path) -> dict:
    with open(path) as f:
        content = yaml.safe_load(f) or {}
    if not isinstance(content, dict):
        raise ProfileError(f"{path} must hold a mapping of stage -> parameters, got {type(content).__name__}.")
    return content


def _merge(base: dict, override: dict, where: str, strict: bool) -> dict:
    """Deep-merge ``override`` into a copy of ``base``; with ``strict``, unknown keys are refused."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if strict and key not in base:
            known = ", ".join(sorted(base))
            raise ProfileError(f"Unknown parameter '{where}{key}'. Known here: {known}.")
        if isinstance(value, dict) and isinstance(base.get(key), dict) and key != "constructions":
            merged[key] = _merge(base[key], value, f"{where}{key}.", strict)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_profile(name: str | Path = DEFAULT_PROFILE, overrides: dict | None = None) -> dict[str, Any]:
    """Return the full parameter tree of a profile, with ``overrides`` applied.

    Args:
        name: a profile name (``smoke``, ``ml100k``, ``paper``) or a path to a YAML file that
            ``extends`` one of them.
        overrides: nested dict of parameters to change; unknown keys raise ``ProfileError`` so a
            typo never silently runs the default.
    """
    path = Path(name)
    if path.suffix not in (".yaml", ".yml"):
        path = PROFILE_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ProfileError(
            f"Unknown profile '{name}'. Choose one of {', '.join(profile_names())}, "
            f"or pass the path of a YAML file that `extends: ml100k`."
        )
    content = _read_yaml(path)
    parent = content.pop("extends", None)
    if parent is None:
        cfg = content
    else:
        cfg = _merge(load_profile(parent), content, "", strict=True)
    if overrides:
        cfg = _merge(cfg, overrides, "", strict=True)
    validate(cfg)
    return cfg


# ---- validation: every documented parameter has a type (from the base profile's comments) and a range
#: Bounds by parameter name (the leaf key, or the dotted path where a name means two things);
#: a parameter not listed has no bound beyond its type.
AT_LEAST_ONE = {"epochs", "batch_size", "encode_batch_size", "max_seq_length", "dim", "niter", "max_iter",
                "n_levels", "hidden_dim", "latent_dim", "d_model", "num_layers", "num_heads", "d_ff",
                "max_input_tokens", "history_window", "rec_targets_per_user", "num_beams", "num_groups",
                "exact_rows", "test_queries_per_item", "k", "per_item", "min_user_interactions", "max_users",
                "max_items", "max_pairs", "train_sample", "threads", "recent_items", "cooccurrence_window",
                "shared_levels", "beam_size", "llm_max_retries", "llm_concurrency"}
POSITIVE = {"lr", "alpha"}
NON_NEGATIVE = {"seed", "seeds", "warmup", "weight_decay", "dropout", "diversity_penalty", "entropy_loss_weight",
                "commitment_weight", "min_rating", "baseline_seed"}
BELOW_ONE = {"dropout", "head_fraction", "evaluation.alpha"}  # fractions and a significance level
#: Sections whose entries are free-form (validated by their own rules below).
FREE_FORM = {"semantic_ids.constructions", "evaluation.constructions"}
_TYPE_COMMENT = re.compile(r"#\s*\(([a-z\[\]|]+)\)")
_KEY_LINE = re.compile(r"^(\s*)([A-Za-z_][\w]*):(.*)$")


def documented_types(path: Path = PROFILE_DIR / f"{DEFAULT_PROFILE}.yaml") -> dict[str, str]:
    """``{"generative.epochs": "int", "data.max_users": "int|null", ...}`` read from the base profile.

    Every parameter of the base profile carries a ``# (type) meaning`` comment (RecBole's style);
    those comments are the schema that ``validate`` checks, so a documented type cannot drift from
    the one enforced.
    """
    types: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in path.read_text().splitlines():
        match = _KEY_LINE.match(line)
        if not match or line.lstrip().startswith("#"):
            continue
        indent, key, rest = len(match.group(1)), match.group(2), match.group(3)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = ".".join([k for _, k in stack] + [key])
        stack.append((indent, key))
        declared = _TYPE_COMMENT.search(rest)
        if declared and not any(dotted.startswith(f + ".") for f in FREE_FORM):
            types[dotted] = declared.group(1)
    return types


def _is(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind in ("str", "bool", "dict"):
        return isinstance(value, {"str": str, "bool": bool, "dict": dict}[kind])
    if kind.startswith("list"):
        inner = kind[5:-1] if kind.startswith("list[") else None
        return isinstance(value, list) and (inner is None or all(_is(v, inner) for v in value))
    return True  # an unknown annotation documents, it does not restrict


def _lookup(cfg: dict, dotted: str):
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return KeyError
        node = node[part]
    return node


def _check_range(dotted: str, value: Any) -> None:
    leaf = dotted.rsplit(".", 1)[-1]
    names = {leaf, dotted}
    values = value if isinstance(value, list) else [value]
    for v in values:
        if not _is(v, "float"):
            continue
        if names & AT_LEAST_ONE and v < 1:
            raise ProfileError(f"{dotted} must be >= 1, got {value!r}.")
        if names & POSITIVE and v <= 0:
            raise ProfileError(f"{dotted} must be > 0, got {value!r}.")
        if names & NON_NEGATIVE and v < 0:
            raise ProfileError(f"{dotted} must be >= 0, got {value!r}.")
        if names & BELOW_ONE and not 0 <= v < 1:
            raise ProfileError(f"{dotted} must lie in [0, 1), got {value!r}.")


def validate(cfg: dict) -> None:
    """Refuse a profile that cannot work before any stage starts: types, ranges, names, sizes."""
    for dotted, kind in documented_types().items():
        value = _lookup(cfg, dotted)
        if value is KeyError:
            raise ProfileError(f"The profile has no parameter {dotted}: it must extend ml100k (extends: ml100k).")
        if not any(_is(value, k) for k in kind.split("|")):
            raise ProfileError(f"{dotted} must be of type {kind.replace('|', ' or ')}, got {value!r}. "
                               f"See the comment beside it in helpers/profiles/{DEFAULT_PROFILE}.yaml.")
        _check_range(dotted, value)
    if not cfg["generative"]["seeds"]:
        raise ProfileError("generative.seeds must be a non-empty list of integers, e.g. [0] or [0, 1, 2, 3, 4].")
    paraphrase_genres = cfg["data"]["queries"]["paraphrase_genres"]
    if paraphrase_genres not in PARAPHRASE_GENRES:
        raise ProfileError(f"data.queries.paraphrase_genres must be one of {', '.join(PARAPHRASE_GENRES)}; "
                           f"got {paraphrase_genres!r}.")
    implementation = cfg["embeddings"]["rec"]["implementation"]
    if implementation not in ENMF_IMPLEMENTATIONS:
        raise ProfileError(f"embeddings.rec.implementation must be one of {', '.join(ENMF_IMPLEMENTATIONS)}; "
                           f"got {implementation!r}.")
    constructions = cfg["semantic_ids"]["constructions"]
    if not constructions:
        raise ProfileError("semantic_ids.constructions is empty: name at least one ID construction.")
    for name, spec in constructions.items():
        if not isinstance(spec, dict) or "space" not in spec:
            raise ProfileError(f"semantic_ids.constructions.{name} must be {{space, quantizer, scheme}}, got {spec!r}.")
        spaces = spec["space"] if isinstance(spec["space"], list) else [spec["space"]]
        for label, values, known in (("space", spaces, SPACES), ("quantizer", [spec.get("quantizer")], QUANTIZERS),
                                     ("scheme", [spec.get("scheme")], SCHEMES)):
            bad = [v for v in values if v not in known]
            if bad:
                raise ProfileError(f"Construction '{name}' has unknown {label} {bad[0]!r}; choose from {', '.join(known)}.")
    check_codebook_size(cfg, cfg["data"]["max_items"])
    sid = cfg["semantic_ids"]
    if "prefix_share" in {spec.get("scheme") for spec in constructions.values()}:
        shared = sid["schemes"]["prefix_share"]["shared_levels"]
        if not 1 <= shared < sid["n_levels"]:
            raise ProfileError(f"semantic_ids.schemes.prefix_share.shared_levels must lie in [1, n_levels - 1] = "
                               f"[1, {sid['n_levels'] - 1}], got {shared}: a prefix-share ID needs shared and "
                               f"task-specific levels.")


def check_codebook_size(cfg: dict, n_items: int | None) -> None:
    """``semantic_ids.codebook_size`` must be >= 2, at most the number of items (``n_items``; None when
    not known yet) and a power of two when RQ-KMeans or ResidualLFQ use it; the message suggests a
    value that passes every rule. The data stage calls it again once the catalogue size is known."""
    size = cfg["semantic_ids"]["codebook_size"]
    quantizers = {spec.get("quantizer") for spec in cfg["semantic_ids"]["constructions"].values()}
    needs_power_of_two = bool(quantizers & {"rq_kmeans", "rlfq"})
    limit = n_items if n_items else None
    bits = max(1, round(math.log2(math.sqrt(limit)))) if limit else 8
    suggestion = 2 ** bits
    problem = None
    if size < 2:
        problem = "must be >= 2"
    elif needs_power_of_two and size & (size - 1):
        problem = "must be a power of two (RQ-KMeans and ResidualLFQ codes are bit strings)"
    elif limit is not None and size > limit:
        problem = f"cannot exceed the {limit} items of the catalogue (most codes would stay empty)"
    if problem:
        hint = f"about sqrt(n_items) suits two levels: {suggestion}" if limit else f"e.g. {suggestion}"
        raise ProfileError(f"semantic_ids.codebook_size {problem}; got {size}. Choose a power of two; {hint}.")


def parse_assignment(text: str) -> dict:
    """``"generative.epochs=3"`` -> ``{"generative": {"epochs": 3}}`` (value parsed as YAML)."""
    if "=" not in text:
        raise ProfileError(f"Expected KEY=VALUE such as generative.epochs=3, got '{text}'.")
    key, value = text.split("=", 1)
    tree: dict = {}
    node = tree
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = yaml.safe_load(value)
    return tree


def parse_assignments(texts: list[str], base: dict | None = None) -> dict:
    """Several ``KEY=VALUE`` texts (``--set`` flags) merged into one overrides tree over ``base``."""
    overrides: dict = copy.deepcopy(base or {})
    for text in texts:
        overrides = _merge(overrides, parse_assignment(text), "", strict=False)
    return overrides


def data_root() -> Path:
    import os

    return Path(os.environ.get("SID_DATA_ROOT", PROJECT_ROOT / "data"))
