"""Diagnostics of Semantic IDs: are the codebooks used, do they keep the vectors, do they mean something?

Logged for every construction (semantic-ID codebases report collapse onto a few codes and many items
per ID, docs/architecture.md, "Patterns we follow"):

* **utilisation** per level: fraction of the codebook's codes that at least one item uses;
* **perplexity** per level: ``exp(entropy)`` of the code distribution, the number of equally used codes
  that would have the same entropy (``codebook_size`` at best, 1 when every item has the same code);
* **relative reconstruction error**: ``||X - X_hat||^2 / ||X - mean(X)||^2``, the share of the
  embedding's variance the codes lose (0 is perfect, 1 is no better than the mean vector);
* **genre agreement**: mean genre Jaccard similarity of item pairs that share a first token, against
  random pairs; a lift above 1 means the coarse token groups alike items;
* **collision rate** per task (``collisions.collision_stats``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def level_utilisation(codes: np.ndarray, codebook_size: int) -> list[float]:
    codes = np.asarray(codes)
    return [len(np.unique(codes[:, level])) / codebook_size for level in range(codes.shape[1])]


def level_perplexity(codes: np.ndarray, codebook_size: int) -> list[float]:
    codes = np.asarray(codes)
    out = []
    for level in range(codes.shape[1]):
        p = np.bincount(codes[:, level], minlength=codebook_size) / len(codes)
        p = p[p > 0]
        out.append(float(np.exp(-(p * np.log(p)).sum())))
    return out


def relative_reconstruction_error(X: np.ndarray, X_hat: np.ndarray) -> float:
    X = np.asarray(X, dtype=np.float64)
    residual = ((X - np.asarray(X_hat, dtype=np.float64)) ** 2).sum()
    spread = ((X - X.mean(axis=0)) ** 2).sum()
    return float(residual / spread) if spread > 0 else float("nan")


def genre_matrix(genres) -> np.ndarray:
    """Boolean (n_items, n_genres) incidence matrix from ``|``-separated genre strings."""
    sets = [set(filter(None, str(g).split("|"))) if g is not None else set() for g in genres]
    names = sorted(set().union(*sets)) if sets else []
    column = {name: j for j, name in enumerate(names)}
    matrix = np.zeros((len(sets), len(names)), dtype=bool)
    for i, s in enumerate(sets):
        matrix[i, [column[g] for g in s]] = True
    return matrix


def _jaccard(G: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    inter = (G[a] & G[b]).sum(axis=1)
    union = (G[a] | G[b]).sum(axis=1)
    return np.divide(inter, union, out=np.zeros(len(a)), where=union > 0)


def genre_agreement(first_codes: np.ndarray, genres, n_pairs: int = 20000, seed: int = 0) -> dict:
    """Genre Jaccard of pairs sharing a first token vs random pairs (pairs sampled uniformly).

    Returns ``{"same_first_token": mean Jaccard, "random_pairs": mean Jaccard, "lift": ratio}``;
    NaN where no two items share a first token.
    """
    first_codes = np.asarray(first_codes).reshape(-1)
    G = genre_matrix(genres)
    rng = np.random.default_rng(seed)
    n = len(first_codes)
    left = rng.integers(0, n, n_pairs)
    right = (left + rng.integers(1, n, n_pairs)) % n  # uniform over the other items
    random_mean = float(_jaccard(G, left, right).mean())
    # sample pairs uniformly among all same-cluster pairs: pick a cluster in proportion to its number
    # of pairs, then two distinct members
    clusters, members_of = np.unique(first_codes, return_inverse=True)
    sizes = np.bincount(members_of)
    pair_counts = sizes * (sizes - 1) / 2
    if pair_counts.sum() == 0:
        return {"same_first_token": float("nan"), "random_pairs": random_mean, "lift": float("nan")}
    chosen = rng.choice(len(clusters), size=n_pairs, p=pair_counts / pair_counts.sum())
    order = np.argsort(members_of, kind="stable")
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    pos_a = rng.integers(0, sizes[chosen])
    pos_b = (pos_a + rng.integers(1, sizes[chosen])) % sizes[chosen]
    a, b = order[starts[chosen] + pos_a], order[starts[chosen] + pos_b]
    same_mean = float(_jaccard(G, a, b).mean())
    return {"same_first_token": same_mean, "random_pairs": random_mean,
            "lift": same_mean / random_mean if random_mean > 0 else float("nan")}


def part_diagnostics(codes: np.ndarray, codebook_size: int, X=None, X_hat=None, genres=None,
                     seed: int = 0) -> dict:
    """Quantizer-level diagnostics of one set of raw codes (before disambiguation)."""
    out = {
        "utilisation": level_utilisation(codes, codebook_size),
        "perplexity": level_perplexity(codes, codebook_size),
    }
    if X is not None and X_hat is not None:
        out["relative_reconstruction_error"] = relative_reconstruction_error(X, X_hat)
    if genres is not None:
        out["genre_agreement"] = genre_agreement(np.asarray(codes)[:, 0], genres, seed=seed)
    return out


# ---- tables for notebook 03 -----------------------------------------------------------------------
def quantizer_table(semantic_ids: dict) -> pd.DataFrame:
    """One row per (construction, part): utilisation, perplexity, reconstruction, genre agreement."""
    rows = []
    for name, sid in semantic_ids.items():
        d = sid.diagnostics
        for part, info in d.get("parts", {}).items():
            row = {"construction": name, "quantizer": d.get("quantizer"), "scheme": sid.scheme, "part": part,
                   "space": d.get("spaces", {}).get(part)}
            for level, (u, p) in enumerate(zip(info["utilisation"], info["perplexity"])):
                row[f"utilisation_{level}"] = u
                row[f"perplexity_{level}"] = p
            row["relative_reconstruction_error"] = info.get("relative_reconstruction_error", np.nan)
            agreement = info.get("genre_agreement", {})
            row["genre_jaccard_same_first_token"] = agreement.get("same_first_token", np.nan)
            row["genre_jaccard_random"] = agreement.get("random_pairs", np.nan)
            row["genre_lift"] = agreement.get("lift", np.nan)
            row["fit_seconds"] = info.get("fit_seconds", np.nan)
            rows.append(row)
    return pd.DataFrame(rows)


def id_table(semantic_ids: dict) -> pd.DataFrame:
    """One row per (construction, task): ID length, collision rate before disambiguation, vocabulary."""
    rows = []
    for name, sid in semantic_ids.items():
        for task, info in sid.diagnostics.get("tasks", {}).items():
            rows.append({"construction": name, "scheme": sid.scheme, "task": task,
                         "id_length": info["id_length"], "collision_rate": info["collision_rate"],
                         "n_unique_codes": info["n_unique_codes"],
                         "max_items_per_code": info["max_items_per_code"],
                         "vocabulary_size": len(sid.vocabulary)})
    return pd.DataFrame(rows)


def codebook_size_sweep(X: np.ndarray, sizes, n_levels: int = 2, seed: int = 0, genres=None,
                        **rq_kwargs) -> pd.DataFrame:
    """RQ-KMeans at several codebook sizes on one matrix: what the choice of size trades off."""
    from .collisions import collision_stats
    from .quantizers import get_quantizer

    rows = []
    for size in sizes:
        quantizer = get_quantizer("rq_kmeans", n_levels, size, seed, **rq_kwargs)
        codes = quantizer.fit_encode(X)
        row = {"codebook_size": size, "slots": size ** n_levels, "slots_per_item": size ** n_levels / len(X),
               "items_per_first_token": len(X) / size, **collision_stats(codes),
               "relative_reconstruction_error": relative_reconstruction_error(X, quantizer.decode(codes)),
               "mean_utilisation": float(np.mean(level_utilisation(codes, size)))}
        if genres is not None:
            row["genre_lift"] = genre_agreement(codes[:, 0], genres, seed=seed)["lift"]
        rows.append(row)
    return pd.DataFrame(rows)


def example_ids(semantic_ids: dict, items: pd.DataFrame, constructions=None, n: int = 5) -> pd.DataFrame:
    """The first ``n`` items with their title, genres and the search/rec IDs of each construction.

    Constructions the profile does not build are skipped.
    """
    constructions = [name for name in (constructions or semantic_ids) if name in semantic_ids]
    table = items.loc[: n - 1, ["item_id", "title", "genres"]].copy()
    for name in constructions:
        sid = semantic_ids[name]
        table[f"{name}: search"] = ["".join(t) for t in sid.search_tokens[:n]]
        if sid.scheme != "shared":
            table[f"{name}: rec"] = ["".join(t) for t in sid.rec_tokens[:n]]
    return table


def headline_numbers(semantic_ids: dict) -> dict:
    """The numbers notebook 03 records (per construction), plus checks of the ID contract."""
    out: dict = {"constructions": list(semantic_ids), "collision_rate": {}, "id_length": {},
                 "vocabulary_size": {}, "relative_reconstruction_error": {}, "genre_lift": {},
                 "mean_utilisation": {}, "all_ids_unique": {}, "vocabularies_disjoint": {},
                 "shared_prefix": {}, "quantizer": {}, "scheme": {}}
    for name, sid in semantic_ids.items():
        d = sid.diagnostics
        out["quantizer"][name] = d["quantizer"]
        out["scheme"][name] = sid.scheme
        out["collision_rate"][name] = {task: info["collision_rate"] for task, info in d["tasks"].items()}
        out["id_length"][name] = {task: sid.id_length(task) for task in ("search", "rec")}
        out["vocabulary_size"][name] = len(sid.vocabulary)
        out["relative_reconstruction_error"][name] = {
            part: info["relative_reconstruction_error"] for part, info in d["parts"].items()
            if "relative_reconstruction_error" in info}
        out["genre_lift"][name] = {part: info["genre_agreement"]["lift"] for part, info in d["parts"].items()
                                   if "genre_agreement" in info}
        out["mean_utilisation"][name] = {part: float(np.mean(info["utilisation"])) for part, info in d["parts"].items()}
        out["all_ids_unique"][name] = all(len({tuple(t) for t in sid.tokens(task)}) == sid.n_items
                                          for task in ("search", "rec"))
        search_vocab = {t for seq in sid.search_tokens for t in seq}
        rec_vocab = {t for seq in sid.rec_tokens for t in seq}
        out["vocabularies_disjoint"][name] = not (search_vocab & rec_vocab)
        out["shared_prefix"][name] = all(s[0] == r[0] for s, r in zip(sid.search_tokens, sid.rec_tokens))
    out["n_items"] = next(iter(semantic_ids.values())).n_items if semantic_ids else 0
    return out


def plot_diagnostics(quantizers: pd.DataFrame, ids: pd.DataFrame):
    """Three panels: collision rate per construction and task, level perplexity, genre lift."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    collision = ids.pivot_table(index="construction", columns="task", values="collision_rate", sort=False)
    collision.plot.barh(ax=axes[0]).legend(title="task", loc="lower left")
    axes[0].set(title="Items sharing their code tuple\n(before disambiguation)", xlabel="collision rate")
    labels = quantizers["construction"] + " / " + quantizers["part"]
    perplexity_cols = sorted(c for c in quantizers if c.startswith("perplexity_"))
    quantizers.set_index(labels)[perplexity_cols].plot.barh(ax=axes[1])
    axes[1].set(title="Codes in use (perplexity) per level", xlabel="perplexity (max = codebook size)")
    with_genre = quantizers.dropna(subset=["genre_lift"])
    axes[2].barh(with_genre["construction"] + " / " + with_genre["part"], with_genre["genre_lift"])
    axes[2].axvline(1.0, color="grey", linestyle="--")
    axes[2].set(title="Genre agreement of items sharing a first token\n(lift over random pairs)",
                xlabel="Jaccard lift")
    for ax in axes:
        ax.invert_yaxis()
    fig.tight_layout()
    return fig
