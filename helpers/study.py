"""Run the study: execute the numbered notebooks (notebooks/01_*.ipynb, 02_*, ...) in order through
papermill and render HTML reports.

    python -m helpers.study                          # default profile (ml100k)
    python -m helpers.study --profile smoke          # minutes, what the tests run
    python -m helpers.study --only 01 02             # some notebooks
    python -m helpers.study --set generative.epochs=3 --set generative.seeds=[0,1,2,3,4]
    python -m helpers.study jobs --profile paper     # one training command per model (or --slurm FILE)
    python -m helpers.study verify --results results/ml100k --run   # do the committed tables reproduce?

Executed notebooks and their HTML go to ``reports/<profile>/`` with an ``index.html`` that a
reader opens first: which of the paper's findings hold, the Pareto figure, Table 2, links to every
notebook and result file, and how the study was run (see ``helpers.report``). Stages cache their
artifacts (``helpers.artifacts``), so a re-run recomputes only what a changed parameter touches.
A failing notebook stops the run with its name and cell.

While a notebook runs, what it prints and what the helpers log (one line per trained epoch, per
model decoded, per stage written) is echoed to the terminal, prefixed with the notebook's number;
progress bars are shown as a line every few seconds rather than redrawn. ``--quiet`` keeps only
one line per notebook.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

from . import report
from .config import PROJECT_ROOT, load_profile, parse_assignments
from .errors import StudyError

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
log = logging.getLogger("helpers.study")

#: Run in the kernel before the notebook when its output is followed: the helpers' INFO lines
#: (``log.info`` of every stage: each epoch and model trained, predictions decoded, artifacts
#: written) go to a file the runner reads as it grows, so they reach the terminal without entering
#: the executed notebook. Warnings (level 30 and up) still go to the notebook's stderr, as in Jupyter.
KERNEL_LOGGING = (
    "import logging as _l, sys as _s; _g = _l.getLogger('helpers'); _g.setLevel(_l.INFO); _g.propagate = False; "
    "_f = _l.FileHandler({path!r}, encoding='utf-8'); _f.addFilter(lambda r: r.levelno < 30); "
    "_w = _l.StreamHandler(_s.stderr); _w.setLevel(_l.WARNING); "
    "[(h.setFormatter(_l.Formatter('%(message)s')), _g.addHandler(h)) for h in (_f, _w)]; del _l, _s, _g, _f, _w"
)


class NotebookFailed(StudyError):
    pass


def notebooks(only: list[str] | None = None) -> list[Path]:
    """The numbered notebooks, in order; ``only`` filters by prefix (``01``) or name."""
    found = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    if not only:
        return found
    chosen = [nb for nb in found if any(nb.name.startswith(o) or nb.stem == o for o in only)]
    unknown = [o for o in only if not any(nb.name.startswith(o) or nb.stem == o for nb in found)]
    if unknown:
        raise StudyError(f"No notebook matches {unknown}; available: {', '.join(nb.stem for nb in found)}.")
    return chosen


# ---- following a running notebook ----------------------------------------------------------------
class KernelEcho:
    """A file-like sink for one output stream of a kernel (papermill's ``stdout_file``/``stderr_file``)
    that passes whole lines to ``emit``, each prefixed.

    A progress bar (tqdm) redraws its line with carriage returns, many times a second. Here a
    redrawn line is passed on when it first appears, then at most once every ``interval`` seconds,
    and in its final state when it ends (unless only its timings changed since it was last shown);
    so a terminal or a log file gets a readable line per update instead of a flood, and no
    carriage return.
    """

    def __init__(self, emit: Callable[[str], None], prefix: str = "", interval: float = 15.0,
                 clock: Callable[[], float] = time.monotonic):
        self.emit, self.prefix, self.interval, self.clock = emit, prefix, interval, clock
        self.partial = ""            # text after the last newline
        self.last_bar_at = None      # when a redrawn line was last passed on
        self.shown_of_line = None    # what was passed on of the unfinished line

    @staticmethod
    def _state(line: str) -> str:
        """What a terminal would show of ``line``: the last non-empty carriage-return segment."""
        segments = [s for s in line.split("\r") if s.strip()]
        return segments[-1].rstrip() if segments else ""

    @staticmethod
    def _progress(state: str) -> str:
        """A tqdm line without its timings (``[00:54<00:00, 4.93s/it]``), which change on every redraw."""
        return state.split(" [")[0]

    def _show(self, text: str) -> None:
        if text:
            self.emit(self.prefix + text)

    def write(self, text: str) -> int:
        self.partial += text
        *lines, self.partial = self.partial.split("\n")
        for line in lines:
            state = self._state(line)
            # a bar's final redraw repeats the state already shown but for its timings: skip it
            if not (self.shown_of_line and self._progress(self.shown_of_line) == self._progress(state)):
                self._show(state)
            self.last_bar_at = self.shown_of_line = None  # the next bar shows its first state at once
        if "\r" in self.partial:
            now, state = self.clock(), self._state(self.partial)
            due = self.last_bar_at is None or now - self.last_bar_at >= self.interval
            if due and state and state != self.shown_of_line:
                self._show(state)
                self.last_bar_at, self.shown_of_line = now, state
        return len(text)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        """Pass on what is left of an unfinished line."""
        if self._state(self.partial) != self.shown_of_line:
            self._show(self._state(self.partial))
        self.partial, self.shown_of_line = "", None


class LogTail:
    """Follow a growing text file from a thread and pass each new line to ``emit``, prefixed
    (the kernel's log file, see ``KERNEL_LOGGING``). ``stop`` passes on what is left."""

    def __init__(self, path: Path, emit: Callable[[str], None], prefix: str = "", poll: float = 0.5):
        self.path, self.emit, self.prefix, self.poll = Path(path), emit, prefix, poll
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name=f"tail {self.path.name}", daemon=True)

    def __enter__(self) -> "LogTail":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _follow(self) -> None:
        partial = ""
        with open(self.path, encoding="utf-8", errors="replace") as handle:
            while True:
                stopping = self._stop.is_set()  # read once more after the kernel is done
                partial += handle.read()
                *lines, partial = partial.split("\n")
                for line in lines:
                    if line.strip():
                        self.emit(self.prefix + line.rstrip())
                if stopping:
                    break
                self._stop.wait(self.poll)
        if partial.strip():
            self.emit(self.prefix + partial.rstrip())


def render_html(executed: Path) -> Path:
    from nbconvert import HTMLExporter

    # nbconvert warns for every plot that it has no alternative text; a plot cannot say more
    quiet = logging.getLogger("helpers.study.nbconvert")
    quiet.setLevel(logging.ERROR)
    body, _ = HTMLExporter(log=quiet).from_filename(str(executed))
    out = executed.with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    return out


def run_notebook(source: Path, out_dir: Path, parameters: dict,
                 echo: Callable[[str], None] | None = None, interval: float = 15.0) -> dict:
    """Execute one notebook; raise NotebookFailed naming the cell that failed.

    With ``echo``, what the notebook prints (:class:`KernelEcho`) and what the helpers log at INFO
    level (:class:`LogTail`) are passed to it line by line as the notebook runs, each prefixed with
    the notebook's number. The executed notebook holds what Jupyter would show, nothing more.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / source.name
    prefix = f"  {source.name[:2]} | "
    streams = [KernelEcho(echo, prefix, interval), KernelEcho(echo, prefix, interval)] if echo else [None, None]
    # the kernel's own start-up warnings would go to the terminal unprefixed: keep only its errors
    kernel_args = ["--IPKernelApp.log_level=ERROR"]
    with tempfile.TemporaryDirectory(prefix="sid-study-") as scratch:
        kernel_log = Path(scratch) / "helpers.log"
        kernel_log.touch()
        if echo:
            kernel_args.append("--IPKernelApp.exec_lines=" + KERNEL_LOGGING.format(path=str(kernel_log)))
        started = time.time()
        try:
            with LogTail(kernel_log, echo, prefix) if echo else nullcontext():
                papermill.execute_notebook(str(source), str(executed), parameters=parameters, kernel_name="python3",
                                           cwd=str(PROJECT_ROOT), progress_bar=not echo and sys.stderr.isatty(),
                                           log_output=False, stdout_file=streams[0], stderr_file=streams[1],
                                           coalesce_streams=True,  # a progress bar is kept in its final state only
                                           extra_arguments=kernel_args)
        except PapermillExecutionError as err:
            render_html(executed)
            raise NotebookFailed(
                f"{source.name} failed in cell {err.exec_count} ({err.ename}: {err.evalue}). "
                f"The executed notebook with the traceback is {executed} (and .html beside it)."
            ) from None
        finally:
            for stream in streams:
                if stream:
                    stream.close()
    seconds = time.time() - started
    page = render_html(executed)
    return {"notebook": source.name, "executed": executed.name, "html": page.name, "seconds": round(seconds, 1),
            "finished": time.strftime("%Y-%m-%d %H:%M")}


# ---- the study folder ----------------------------------------------------------------------------
def _earlier_study(out_dir: Path, profile: str, overrides: dict) -> dict:
    """``out_dir``'s study.json if it records the same profile and overrides, else {}."""
    previous = Path(out_dir) / "study.json"
    if not previous.is_file():
        return {}
    try:
        before = json.loads(previous.read_text())
    except json.JSONDecodeError:
        return {}
    same = before.get("profile") == profile and before.get("overrides", {}) == overrides
    return before if same else {}


def merge_runs(out_dir: Path, profile: str, overrides: dict, runs: list[dict]) -> list[dict]:
    """This invocation's runs plus the earlier runs of other notebooks in ``out_dir``'s study.json.

    ``--only 05 06`` re-renders two notebooks; the index should still link 01..04 from the last
    run of the same profile and overrides. Runs of another profile or other overrides are dropped,
    so the index never mixes studies.
    """
    before = _earlier_study(out_dir, profile, overrides)
    earlier = [r for r in before.get("runs", []) if (Path(out_dir) / r.get("html", "")).is_file()]
    merged = {r["notebook"]: r for r in earlier} | {r["notebook"]: r for r in runs}
    return [merged[name] for name in sorted(merged)]


def git_state(root: Path = PROJECT_ROOT) -> dict | None:
    """``{"commit": short hash, "dirty": tracked files changed}``, or None outside a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True,
                              timeout=30).stdout.strip()
    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty} if commit else None


def command_line(argv: list[str] | None = None, *, profile: str = "ml100k", overrides: dict | None = None,
                 only: list[str] | None = None, reports_dir: Path | None = None,
                 results_dir: Path | None = None) -> str:
    """The command that runs this study: ``argv`` as given, or the equivalent of run_study's arguments.

    ``SID_DATA_ROOT`` (where the caches live) is named when set, as it decides what is recomputed.
    """
    if argv is None:
        argv = ["--profile", str(profile)]
        argv += [f"--set={item}" for item in report.flatten_overrides(overrides or {})]
        argv += (["--only", *only] if only else [])
        argv += (["--reports", str(reports_dir)] if reports_dir else [])
        argv += (["--results", str(results_dir)] if results_dir else [])
    env = [f"SID_DATA_ROOT={shlex.quote(os.environ['SID_DATA_ROOT'])}"] if os.environ.get("SID_DATA_ROOT") else []
    return " ".join([*env, "python -m helpers.study", shlex.join(argv)]).strip()


def machine() -> str:
    description = f"{os.cpu_count()} CPU cores"
    try:
        import torch

        if torch.cuda.is_available():
            description += f", {torch.cuda.get_device_name(0)}"
    except ImportError:  # pragma: no cover
        pass
    return description


def write_index(out_dir: Path, summary: dict, results_dir: Path) -> Path:
    """``out_dir/index.html`` for ``summary`` (see ``helpers.report.render_index``)."""
    return report.write_index(summary, out_dir, results_dir)


def run_study(profile: str = "ml100k", overrides: dict | None = None, only: list[str] | None = None,
              reports_dir: Path | None = None, results_dir: Path | None = None, *,
              command: str | None = None, echo: bool = True, interval: float = 15.0) -> dict:
    """Execute the notebooks for ``profile``; return a summary with per-notebook timings.

    ``echo`` logs (logger ``helpers.study``, INFO) what each notebook prints and logs as it runs;
    ``command`` is the command line recorded on the index page (by default, the equivalent one).
    """
    load_profile(profile, overrides)  # refuse a bad profile or override before any work starts
    chosen = notebooks(only)
    overrides = overrides or {}
    out_dir = Path(reports_dir or PROJECT_ROOT / "reports" / Path(profile).stem)
    results_dir = Path(results_dir or out_dir / "results")
    parameters = {"PROFILE": str(profile), "OVERRIDES": overrides, "RESULTS_DIR": str(results_dir.resolve())}
    command = command or command_line(profile=profile, overrides=overrides, only=only,
                                      reports_dir=reports_dir, results_dir=results_dir)
    earlier = _earlier_study(out_dir, str(profile), overrides).get("runs", [])
    last_time = {r["notebook"]: r.get("seconds") for r in earlier}
    started = time.time()
    summary = {"profile": str(profile), "overrides": overrides, "command": command,
               "started": time.strftime("%Y-%m-%d %H:%M %Z"), "git": git_state(), "machine": machine(),
               "invocation_notebooks": [nb.name for nb in chosen]}
    log.info("Study [%s]: %d notebook(s) -> %s", profile, len(chosen), out_dir)
    runs = []
    for number, source in enumerate(chosen, 1):
        before = f" (took {last_time[source.name]:.0f} s last time)" if last_time.get(source.name) else ""
        log.info("[%d/%d] %s: running%s", number, len(chosen), source.stem, before)
        runs.append(run_notebook(source, out_dir, parameters, log.info if echo else None, interval))
        log.info("[%d/%d] %s: done in %.0f s", number, len(chosen), source.stem, runs[-1]["seconds"])
    wall = time.time() - started
    summary.update(runs=runs, wall_seconds=round(wall, 1))
    # study.json and the index list the latest run of every notebook in the folder, this
    # invocation's and earlier ones'; the returned summary's "runs" are this invocation's only
    every = {**summary, "runs": merge_runs(out_dir, str(profile), overrides, runs)}
    (out_dir / "study.json").write_text(json.dumps(every, indent=2))
    summary["index"] = str(write_index(out_dir, every, results_dir))
    return summary


def jobs_main(argv: list[str]) -> int:
    """``python -m helpers.study jobs``: every generative model as a command line, or a SLURM array."""
    from .generative.jobs import list_jobs, slurm_script

    parser = argparse.ArgumentParser(prog="python -m helpers.study jobs",
                                     description="List one training command per (construction, seed) model "
                                                 "not trained yet; notebook 04 then loads what they wrote.")
    parser.add_argument("--profile", default="ml100k")
    parser.add_argument("--set", dest="assignments", action="append", default=[])
    parser.add_argument("--all", action="store_true", help="list trained models too")
    parser.add_argument("--threads", type=int, help="torch threads per job (1 for several CPU jobs side by side)")
    parser.add_argument("--launcher", default="python",
                        help='what runs each job, e.g. "torchrun --nproc_per_node=4" (default: python)')
    parser.add_argument("--slurm", type=Path, help="write a SLURM array script of the jobs to this file")
    parser.add_argument("--gpus-per-job", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        jobs = list_jobs(args.profile, args.assignments, args.all, args.threads, args.launcher)
        if args.slurm:
            args.slurm.write_text(slurm_script(jobs, PROJECT_ROOT, args.gpus_per_job))
            print(f"{len(jobs)} jobs in {args.slurm}: sbatch {args.slurm}", file=sys.stderr)
            return 0
    except StudyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for job in jobs:
        print(job["command"])
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["jobs"]:
        return jobs_main(argv[1:])
    if argv[:1] == ["verify"]:
        from .verify import main as verify_main

        return verify_main(argv[1:], prog="python -m helpers.study verify")
    parser = argparse.ArgumentParser(prog="python -m helpers.study", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="ml100k", help="smoke | ml100k | paper | path to a YAML profile")
    parser.add_argument("--only", nargs="*", help="run only these notebooks (prefixes such as 01 02)")
    parser.add_argument("--set", dest="assignments", action="append", default=[],
                        help="override a parameter, e.g. --set generative.epochs=3 (repeatable)")
    parser.add_argument("--reports", type=Path, help="output folder (default reports/<profile>)")
    parser.add_argument("--results", type=Path, help="where notebooks 05/06 copy tables and figures "
                                                     "(default <reports>/results)")
    parser.add_argument("--quiet", action="store_true", help="one line per notebook, not what it prints")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("papermill").setLevel(logging.WARNING)  # its INFO lines repeat the paths of each notebook
    command = command_line(argv)
    try:
        overrides = parse_assignments(args.assignments)
        summary = run_study(args.profile, overrides, args.only, args.reports, args.results,
                            command=command, echo=not args.quiet)
    except StudyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"Study finished in {summary['wall_seconds'] / 60:.1f} min. Open {summary['index']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
