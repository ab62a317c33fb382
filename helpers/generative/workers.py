"""Several (construction, seed) jobs side by side on one CPU machine: ``generative.workers``.

A small seq2seq model does not keep two cores busy: one torch thread trains it about as fast as
two on the project's 2-core machine (``benchmarks/README_backbones.md``), so notebook 04 runs
``workers`` processes with ``cores // workers`` torch threads each, every one training or decoding
a whole model. That is ``concurrent.futures`` with spawned processes, not a scheduler: each job
calls the same ``train_model`` / ``predict`` the sequential path calls and writes the same cached
folder (under the artifact lock), so the result of a job does not depend on which process ran it.
The thread count does enter the floating-point sums, so the manifests record it (``torch_threads``)
and the default profile fixes it (2 workers on 2 cores: one thread each).

On a GPU keep ``workers: 1``: one process owns the device, and several GPUs are used through a
launcher instead (``python -m helpers.study jobs``).
"""
from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Callable, Sequence

log = logging.getLogger(__name__)


def available_cores() -> int:
    """CPU cores this process may run on (the affinity mask, as ``nproc``; containers included)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    return max(1, available_cores() // max(1, int(workers)))


def _start_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")


def run_jobs(function: Callable, cfg: dict, jobs: Sequence[tuple], workers: int = 1, desc: str = "jobs",
             progress: bool = True) -> dict:
    """``function(cfg, *job)`` for every job; ``workers`` > 1 runs them in as many processes.

    ``function`` must be importable (module level), since workers are spawned, not forked (a fork
    of a process holding torch threads or a Jupyter kernel is unsafe). Returns {job: result} in
    the order of ``jobs``; the first failing job's error is raised once the running ones finish.
    """
    from tqdm import tqdm  # text bars: notebooks without ipywidgets would warn with tqdm.auto

    jobs = [tuple(job) for job in jobs]
    workers = max(1, min(int(workers or 1), len(jobs)))
    if workers == 1:
        return {job: function(cfg, *job) for job in tqdm(jobs, desc=desc, disable=not progress)}
    threads = threads_per_worker(workers)
    log.info("%s: %d jobs in %d processes of %d torch thread(s)", desc, len(jobs), workers, threads)
    results = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(threads,)) as pool:
        futures = {pool.submit(function, cfg, *job): job for job in jobs}
        for future in tqdm(as_completed(futures), total=len(futures), desc=desc, disable=not progress):
            results[futures[future]] = future.result()
    return {job: results[job] for job in jobs}
