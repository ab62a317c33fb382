"""Training jobs outside the notebook: command lines, a SLURM array, and a lock per artifact."""
from __future__ import annotations

import shlex
import subprocess
import sys
import textwrap

import pytest

from helpers.config import PROJECT_ROOT, load_profile, parse_assignments
from helpers.generative.jobs import job_command, list_jobs, main, slurm_script
from helpers.study import main as study_main

BUILD_ONCE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from helpers import artifacts
    final, log = Path(sys.argv[1]), Path(sys.argv[2])
    with artifacts.lock(final):
        if not artifacts.is_complete(final):
            with artifacts.atomic_dir(final) as tmp:
                with open(log, "a") as f:
                    f.write("built\\n")
                time.sleep(1.0)
""")


def test_two_processes_never_build_the_same_artifact(tmp_path):
    final, log = tmp_path / "generative" / "m-seed0" / "abc", tmp_path / "builds.log"
    runs = [subprocess.Popen([sys.executable, "-c", BUILD_ONCE, str(final), str(log)], cwd=PROJECT_ROOT)
            for _ in range(2)]
    assert [run.wait(timeout=60) for run in runs] == [0, 0]
    assert log.read_text() == "built\n", "the second process waited, then found the artifact complete"


def test_every_model_of_the_profile_is_one_command_that_round_trips():
    jobs = list_jobs("smoke", ["generative.epochs=1"], include_done=True, threads=1)
    cfg = load_profile("smoke", {"generative": {"epochs": 1}})
    assert len(jobs) == len(cfg["semantic_ids"]["constructions"]) * len(cfg["generative"]["seeds"])
    first = shlex.split(jobs[0]["command"])
    assert first[:3] == ["python", "-m", "helpers.generative.train"]
    assert first[first.index("--set") + 1] == "generative.epochs=1" and first[-2:] == ["--threads", "1"]
    assert parse_assignments([first[first.index("--set") + 1]]) == {"generative": {"epochs": 1}}
    assert job_command("paper", "multitask", 3, launcher="torchrun --nproc_per_node=4").startswith(
        "torchrun --nproc_per_node=4 -m helpers.generative.train"), "a launcher's words stay separate"


def test_a_slurm_array_holds_one_task_per_job(tmp_path):
    jobs = list_jobs("smoke", include_done=True)
    script = slurm_script(jobs, PROJECT_ROOT)
    assert f"#SBATCH --array=0-{len(jobs) - 1}" in script
    assert script.count("helpers.generative.train") == len(jobs)
    out = tmp_path / "jobs.sbatch"
    assert study_main(["jobs", "--profile", "smoke", "--all", "--slurm", str(out)]) == 0
    assert out.read_text() == script
    result = subprocess.run(["bash", "-n", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_job_for_an_unknown_construction_is_refused(capsys):
    assert main(["--profile", "smoke", "--construction", "nope", "--seed", "0"]) == 1
    assert "Unknown construction 'nope'" in capsys.readouterr().err


@pytest.mark.smoke
def test_a_job_writes_the_folder_notebook_04_loads(smoke_cfg):
    from helpers.data.stage import build_dataset
    from helpers.generative.stage import load_model, model_dir
    from helpers.semantic_ids.stage import build_semantic_ids

    build_dataset(smoke_cfg)
    build_semantic_ids(smoke_cfg, "search")
    command = job_command("smoke", "search", 0, threads=1)
    run = subprocess.run([sys.executable] + shlex.split(command)[1:], cwd=PROJECT_ROOT, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == str(model_dir(smoke_cfg, "search", 0))
    assert load_model(smoke_cfg, "search", 0).path == model_dir(smoke_cfg, "search", 0)


@pytest.mark.smoke
def test_torchrun_trains_one_model_data_parallel_that_notebook_04_loads(smoke_cfg):
    """Two CPU processes (gloo) train one model through the trainer's DDP; rank 0 writes it."""
    from helpers.data.stage import build_dataset
    from helpers.generative.stage import load_model, model_dir
    from helpers.semantic_ids.stage import build_semantic_ids

    build_dataset(smoke_cfg)
    build_semantic_ids(smoke_cfg, "search")
    cfg = load_profile("smoke", {"generative": {"epochs": 1}})
    torchrun = str(PROJECT_ROOT / ".venv" / "bin" / "torchrun")
    torchrun = torchrun if __import__("os").path.exists(torchrun) else "torchrun"
    command = job_command("smoke", "search", 0, ["generative.epochs=1"], threads=1,
                          launcher=f"{torchrun} --nproc_per_node=2")
    run = subprocess.run(shlex.split(command), cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    trained = load_model(cfg, "search", 0)  # complete: notebook 04 would load it, not retrain
    assert trained.path == model_dir(cfg, "search", 0) and trained.card["processes"] == 2
