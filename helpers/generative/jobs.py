"""Every (construction, seed) model as one job: a command line that trains exactly notebook 04's artifact.

    python -m helpers.generative.train --profile ml100k --construction multitask --seed 0
    torchrun --nproc_per_node=4 -m helpers.generative.train --profile paper --construction multitask --seed 0
    accelerate launch -m helpers.generative.train --profile paper --construction multitask --seed 0
    python -m helpers.study jobs --profile paper                      # every job's command line
    python -m helpers.study jobs --profile paper --slurm jobs.sbatch  # a SLURM array script of them
    python -m helpers.study jobs --profile ml100k --threads 1 | xargs -P 2 -I CMD sh -c CMD  # 2 CPU jobs

A job writes the same cached folder ``train_model`` (and so notebook 04) would; notebook 04 then
loads what exists and trains only what is missing. Under ``torchrun``/``accelerate`` the
``Seq2SeqTrainer`` runs data-parallel (DDP) and only rank 0 writes the artifact. A lock on the
artifact (``helpers.artifacts.lock``) keeps two jobs, or a job and a notebook, from training the
same model: the second waits and then finds it done. The first job of a construction also saves
its train examples (``helpers.generative.example_cache``); the other seeds' jobs, and the other
ranks, map those files. No scheduler of our own: a SLURM array, ``xargs -P`` or any runner that
executes command lines spreads the jobs.
"""
from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from pathlib import Path

from .. import artifacts
from ..config import load_profile, parse_assignments
from ..errors import StudyError
from ..registry import construction_names

log = logging.getLogger(__name__)


def distributed_rank() -> tuple[int, int]:
    """``(rank, world_size)`` of this process under torchrun/accelerate (``(0, 1)`` when alone)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def job_command(profile: str, construction: str, seed: int, assignments: list[str] | None = None,
                threads: int | None = None, launcher: str = "python") -> str:
    """The shell command that trains (construction, seed) of ``profile`` with ``--set`` assignments."""
    parts = shlex.split(launcher) + ["-m", "helpers.generative.train", "--profile", str(profile),
             "--construction", construction, "--seed", str(int(seed))]
    for assignment in assignments or []:
        parts += ["--set", assignment]
    if threads:
        parts += ["--threads", str(int(threads))]
    return " ".join(shlex.quote(p) for p in parts)


def list_jobs(profile: str, assignments: list[str] | None = None, include_done: bool = False,
              threads: int | None = None, launcher: str = "python") -> list[dict]:
    """One entry per (construction, seed) of the profile: its command, folder and whether it is done."""
    from .stage import model_dir

    cfg = load_profile(profile, parse_assignments(assignments or []))
    jobs = []
    for construction in construction_names(cfg):
        for seed in cfg["generative"]["seeds"]:
            folder = model_dir(cfg, construction, seed)
            done = artifacts.is_complete(folder)
            if done and not include_done:
                continue
            jobs.append({"construction": construction, "seed": int(seed), "done": done, "folder": str(folder),
                         "command": job_command(profile, construction, seed, assignments, threads, launcher)})
    return jobs


def slurm_script(jobs: list[dict], workdir: Path, gpus_per_job: int = 1, hours: int = 24) -> str:
    """A SLURM array script running one job per array task, in the repository's environment."""
    if not jobs:
        raise StudyError("No job to write: every model of this profile is trained already.")
    commands = "\n".join(f"  {shlex.quote(job['command'])}" for job in jobs)
    return f"""#!/usr/bin/env bash
# One generative model per array task ({len(jobs)} jobs): python -m helpers.study jobs --slurm wrote it.
#SBATCH --job-name=sid-generative
#SBATCH --array=0-{len(jobs) - 1}
#SBATCH --gres=gpu:{gpus_per_job}
#SBATCH --time={hours}:00:00
#SBATCH --output=slurm-%A_%a.out
set -euo pipefail
cd {shlex.quote(str(workdir))}
source .venv/bin/activate
export HF_HUB_OFFLINE=${{HF_HUB_OFFLINE:-1}} TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
commands=(
{commands}
)
eval "${{commands[$SLURM_ARRAY_TASK_ID]}}"
"""


def train_job(profile: str, construction: str, seed: int, assignments: list[str] | None = None,
              force: bool = False) -> Path:
    """Train one model exactly as notebook 04 would (same folder); returns it. Upstream must exist."""
    from .stage import train_model

    cfg = load_profile(profile, parse_assignments(assignments or []))
    if construction not in construction_names(cfg):
        raise StudyError(f"Unknown construction {construction!r}; this profile defines "
                         f"{', '.join(construction_names(cfg))}.")
    return train_model(cfg, construction, int(seed), force=force)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.generative.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="ml100k")
    parser.add_argument("--construction", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--set", dest="assignments", action="append", default=[],
                        help="override a parameter, as for the study (repeatable)")
    parser.add_argument("--threads", type=int, help="torch threads (1 for several CPU jobs side by side)")
    parser.add_argument("--force", action="store_true", help="train again even if the model exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        folder = train_job(args.profile, args.construction, args.seed, args.assignments, args.force)
    except StudyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if distributed_rank()[0] == 0:
        print(folder)
    return 0
