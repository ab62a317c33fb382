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
from pathlib import Path
from typing import Any

import yaml

from .errors import ProfileError

PROFILE_DIR = Path(__file__).parent / "profiles"

# Names a profile may use; each stage module implements exactly these (checked in its tests),
# and they are listed here so a profile is refused before any work starts.
SPACES = ("content", "search", "rec", "multitask", "fused_concat", "fused_svd")
QUANTIZERS = ("rq_kmeans", "dict", "rlfq", "rqvae")
SCHEMES = ("shared", "separate", "prefix_share")
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


def validate(cfg: dict) -> None:
    """Refuse a profile that cannot work before any stage starts."""
    seeds = cfg["generative"]["seeds"]
    if not isinstance(seeds, list) or not seeds:
        raise ProfileError("generative.seeds must be a non-empty list of integers, e.g. [0] or [0, 1, 2, 3, 4].")
    if cfg["evaluation"]["k"] < 1:
        raise ProfileError("evaluation.k must be >= 1.")
    if cfg["data"]["queries"]["per_item"] < 1:
        raise ProfileError("data.queries.per_item must be >= 1.")
    paraphrase_genres = cfg["data"]["queries"]["paraphrase_genres"]
    if paraphrase_genres not in PARAPHRASE_GENRES:
        raise ProfileError(f"data.queries.paraphrase_genres must be one of {', '.join(PARAPHRASE_GENRES)}; "
                           f"got {paraphrase_genres!r}.")
    constructions = cfg["semantic_ids"]["constructions"]
    if not constructions:
        raise ProfileError("semantic_ids.constructions is empty: name at least one ID construction.")
    for name, spec in constructions.items():
        spaces = spec["space"] if isinstance(spec["space"], list) else [spec["space"]]
        for label, values, known in (("space", spaces, SPACES), ("quantizer", [spec.get("quantizer")], QUANTIZERS),
                                     ("scheme", [spec.get("scheme")], SCHEMES)):
            bad = [v for v in values if v not in known]
            if bad:
                raise ProfileError(f"Construction '{name}' has unknown {label} {bad[0]!r}; choose from {', '.join(known)}.")


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
