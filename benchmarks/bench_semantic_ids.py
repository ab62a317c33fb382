"""Speed of stage 03 (Semantic IDs). The project's targets:

1. every construction of a profile (all quantizers and schemes, RQ-VAE / ResidualLFQ / prefix-share
   training included) in under 2 minutes together on the default profile;
2. RQ-KMeans (FAISS ResidualQuantizer, the paper's 2 x 256 codes, the paper profile's settings) on a
   62k x 768 matrix in under 30 s.

Usage::

    .venv/bin/python benchmarks/bench_semantic_ids.py                       # both parts, ml100k
    .venv/bin/python benchmarks/bench_semantic_ids.py --source synthetic    # no embeddings needed
    .venv/bin/python benchmarks/bench_semantic_ids.py --part rq62k --rq-beams 1 5 --rq-samples 16384 0

``--source auto`` (default) uses the profile's built embeddings (notebook 02) when they all exist and
Gaussian-mixture stand-ins of the same shapes otherwise; the table says which. Nothing is cached: each
construction is quantised from scratch through ``helpers.semantic_ids.schemes.build_ids``, which is
what ``build_semantic_ids`` runs on a cache miss (diagnostics included). The 1-minute load average before
and after is printed, since the machine may be shared.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers.config import load_profile  # noqa: E402
from helpers.semantic_ids.quantizers import get_quantizer  # noqa: E402
from helpers.semantic_ids.schemes import build_ids, quantizer_kwargs  # noqa: E402
from helpers.semantic_ids.stage import construction_spec, sid_params  # noqa: E402

#: Stand-in dimensions when the embeddings are not built: MiniLM text spaces, ENMF dim, fusions.
TEXT_DIM = 384


def gaussian_mixture(n: int, dim: int, seed: int, n_clusters: int = 50) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    labels = rng.integers(0, n_clusters, n)
    return centres[labels] + 0.5 * rng.standard_normal((n, dim)).astype(np.float32)


def synthetic_spaces(cfg: dict, n_items: int) -> dict[str, np.ndarray]:
    rec_dim = cfg["embeddings"]["rec"]["dim"]
    dims = {"content": TEXT_DIM, "search": TEXT_DIM, "multitask": TEXT_DIM, "rec": rec_dim,
            "fused_concat": TEXT_DIM + rec_dim, "fused_svd": rec_dim}
    return {space: gaussian_mixture(n_items, dim, seed=i) for i, (space, dim) in enumerate(dims.items())}


def built_embedding_folder(cfg: dict, space: str) -> Path | None:
    """The space's folder for the current profile if built, else its newest complete folder.

    Timing depends on the matrices' shapes, not on the exact fine-tuning settings, so vectors built
    under earlier embedding parameters of the same profile serve as well.
    """
    from helpers import artifacts
    from helpers.embeddings.stage import embedding_dir

    current = embedding_dir(cfg, space)
    if artifacts.is_complete(current):
        return current
    candidates = [p for p in current.parent.glob("*") if artifacts.is_complete(p)]
    return max(candidates, key=lambda p: (p / artifacts.MANIFEST).stat().st_mtime) if candidates else None


def profile_inputs(cfg: dict, source: str):
    """(vectors per space, genres, description of the source)."""
    from helpers import artifacts
    from helpers.data.stage import dataset_dir, load_dataset
    from helpers.embeddings.stage import SPACES, embedding_dir

    folders = {space: built_embedding_folder(cfg, space) for space in SPACES}
    built = artifacts.is_complete(dataset_dir(cfg)) and all(folders.values())
    if source == "profile" and not built:
        sys.exit("The profile's embeddings are not all built; run notebook 02 or use --source synthetic.")
    if source in ("profile", "auto") and built:
        dataset = load_dataset(cfg)
        stale = [space for space, folder in folders.items() if folder != embedding_dir(cfg, space)]
        vectors = {space: np.load(folder / "vectors.npy").astype(np.float32) for space, folder in folders.items()}
        assert all(len(v) == dataset.n_items for v in vectors.values())
        note = f"; built under earlier embedding parameters: {', '.join(stale)}" if stale else ""
        return vectors, dataset.items["genres"].tolist(), f"{cfg['name']} embeddings (notebook 02){note}"
    n_items = load_dataset(cfg).n_items if artifacts.is_complete(dataset_dir(cfg)) else 1682
    rng = np.random.default_rng(0)
    genres = ["|".join(f"g{g}" for g in rng.choice(18, size=rng.integers(1, 4), replace=False)) for _ in range(n_items)]
    return synthetic_spaces(cfg, n_items), genres, f"synthetic Gaussian mixtures, {n_items} items, profile shapes"


def bench_constructions(cfg: dict, source: str) -> float:
    vectors, genres, described = profile_inputs(cfg, source)
    section = cfg["semantic_ids"]
    epochs = {name: section["quantizers"][name]["epochs"] for name in ("rlfq", "rqvae")}
    print(f"\n## All constructions of profile '{cfg['name']}' ({described})")
    print(f"n_levels={section['n_levels']}, codebook_size={section['codebook_size']}, "
          f"epochs rlfq={epochs['rlfq']}, rqvae (and prefix-share)={epochs['rqvae']}\n")
    print("| construction | spaces (dims) | quantizer | scheme | seconds | collision rate |")
    print("| --- | --- | --- | --- | --- | --- |")
    total = 0.0
    for name in cfg["semantic_ids"]["constructions"]:
        spec = construction_spec(cfg, name)
        inputs = {part: vectors[space] for part, space in spec["spaces"].items()}
        started = time.perf_counter()
        ids = build_ids(name, spec["scheme"], spec["quantizer"], inputs, sid_params(cfg, name), genres=genres)
        seconds = time.perf_counter() - started
        total += seconds
        dims = ", ".join(f"{space} ({vectors[space].shape[1]})" for space in spec["spaces"].values())
        print(f"| {name} | {dims} | {spec['quantizer']} | {spec['scheme']} | {seconds:.1f} | "
              f"{ids.diagnostics['collision_rate']:.3f} |", flush=True)
    print(f"| **total** | | | | **{total:.1f}** | |")
    print(f"\ntarget < 120 s: {'PASS' if total < 120 else 'FAIL'}")
    return total


def bench_rq_62k(n: int, dim: int, params: dict, beams: list[int], samples: list) -> None:
    """Isotropic Gaussian vectors (as in docs/facts.md): the worst case for k-means, no structure.

    ``params`` is a profile's ``semantic_ids`` section; RQ-KMeans runs with its ``quantizers.rq_kmeans``
    settings, beam size and train sample replaced by each of ``beams`` x ``samples``.
    """
    X = np.random.default_rng(0).standard_normal((n, dim), dtype=np.float32)
    size = params["codebook_size"]
    rq = quantizer_kwargs("rq_kmeans", params)
    print(f"\n## RQ-KMeans on a synthetic {n} x {dim} Gaussian matrix ({params['n_levels']} x {size} codes, "
          f"{rq['train_type']}, niter {rq['niter']})\n")
    print("| beam size | train sample | fit s | encode s | total s | items sharing a code tuple |")
    print("| --- | --- | --- | --- | --- | --- |")
    for beam, sample in ((b, s) for b in beams for s in samples):
        kwargs = {**rq, "beam_size": beam, "train_sample": sample}
        quantizer = get_quantizer("rq_kmeans", params["n_levels"], size, seed=0, **kwargs)
        started = time.perf_counter()
        quantizer.fit(X)
        fitted = time.perf_counter()
        codes = quantizer.encode(X)
        done = time.perf_counter()
        _, counts = np.unique(codes, axis=0, return_counts=True)
        shared = int(counts[counts > 1].sum())
        total = done - started
        print(f"| {beam} | {sample or 'all'} | {fitted - started:.1f} | {done - fitted:.1f} | {total:.1f} "
              f"{'(PASS < 30)' if total < 30 else '(FAIL >= 30)'} | {shared} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="ml100k")
    parser.add_argument("--source", choices=("auto", "profile", "synthetic"), default="auto")
    parser.add_argument("--part", choices=("all", "constructions", "rq62k"), default="all")
    parser.add_argument("--rq-profile", default="paper",
                        help="profile whose semantic_ids settings the 62k benchmark uses (the paper's scale)")
    parser.add_argument("--rq-beams", type=int, nargs="+", default=None,
                        help="beam sizes for the 62k benchmark (default: that profile's "
                             "semantic_ids.quantizers.rq_kmeans.beam_size)")
    parser.add_argument("--rq-samples", type=int, nargs="+", default=None,
                        help="train-sample sizes for the 62k benchmark, 0 = every item "
                             "(default: that profile's semantic_ids.quantizers.rq_kmeans.train_sample)")
    parser.add_argument("--rq-items", type=int, default=62138)
    parser.add_argument("--rq-dim", type=int, default=768)
    args = parser.parse_args()

    cfg = load_profile(args.profile)
    print(f"# bench_semantic_ids  {time.strftime('%Y-%m-%d %H:%M')}  {platform.node()}  "
          f"{os.cpu_count()} CPUs  python {platform.python_version()}")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    if args.part in ("all", "constructions"):
        bench_constructions(cfg, args.source)
    if args.part in ("all", "rq62k"):
        rq_params = load_profile(args.rq_profile)["semantic_ids"]
        rq = quantizer_kwargs("rq_kmeans", rq_params)
        samples = [s or None for s in args.rq_samples] if args.rq_samples else [rq["train_sample"]]
        bench_rq_62k(args.rq_items, args.rq_dim, rq_params, args.rq_beams or [rq["beam_size"]], samples)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
