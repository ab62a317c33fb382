"""Token strings for Semantic IDs: codes -> ``<a_12><b_34><c_3>`` and the list of new tokens.

A token names its level with a letter (``a`` = first codebook, ``b`` = second, ...) and its code with
a number, so the same code at different levels is a different token, as in TIGER. A task tag in
front (``s_`` search, ``r_`` rec) makes task-specific vocabularies disjoint: ``<s_a_12>`` vs
``<r_a_12>`` (separate scheme), ``<a_12><s_b_3>`` vs ``<a_12><r_b_7>`` (prefix-share scheme).
"""
from __future__ import annotations

import string

import numpy as np

#: Tag in front of the level letter: none for tokens both tasks use, one per task otherwise.
TASK_TAGS = {"shared": "", "search": "s_", "rec": "r_"}
_LETTERS = string.ascii_lowercase


def level_letter(level: int) -> str:
    if not 0 <= level < len(_LETTERS):
        raise ValueError(f"Semantic IDs support at most {len(_LETTERS)} levels, got level {level}.")
    return _LETTERS[level]


def token(level: int, code: int, tag: str = "") -> str:
    """``token(0, 12) == "<a_12>"``; ``token(1, 3, "s_") == "<s_b_3>"``."""
    return f"<{tag}{level_letter(level)}_{int(code)}>"


def codes_to_tokens(codes: np.ndarray, level_tags: list[str] | str = "") -> list[list[str]]:
    """One token list per row of ``codes`` (n_items, n_levels); ``level_tags[l]`` tags level ``l``."""
    codes = np.asarray(codes, dtype=np.int64)
    if isinstance(level_tags, str):
        level_tags = [level_tags] * codes.shape[1]
    if len(level_tags) != codes.shape[1]:
        raise ValueError(f"{codes.shape[1]} levels but {len(level_tags)} level tags")
    if not len(codes):
        return []
    # build each level's token strings once; rows then only index into them
    per_level = [[token(level, c, tag) for c in range(int(codes[:, level].max()) + 1)]
                 for level, tag in enumerate(level_tags)]
    return [[per_level[level][c] for level, c in enumerate(row)] for row in codes.tolist()]


def level_vocabulary(level: int, size: int, tag: str = "") -> list[str]:
    """Every token a level can emit: codes ``0..size-1`` (the whole codebook, used or not)."""
    return [token(level, c, tag) for c in range(int(size))]
