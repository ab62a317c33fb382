"""Run the study: execute notebooks/01..06 in order through papermill and render HTML reports.

    python -m helpers.study                          # default profile (ml100k)
    python -m helpers.study --profile smoke          # minutes, what the tests run
    python -m helpers.study --only 01 02             # some notebooks
    python -m helpers.study --set generative.epochs=3 --set generative.seeds=[0,1,2,3,4]

Executed notebooks and their HTML go to ``reports/<profile>/`` with an ``index.html`` linking
them. Stages cache their artifacts (``helpers.artifacts``), so a re-run recomputes only what a
changed parameter touches. A failing notebook stops the run with its name and cell.
"""
from __future__ import annotations

import argparse
import html
import json
import logging
import os
import sys
import time
from pathlib import Path

from .config import PROJECT_ROOT, load_profile, parse_assignments
from .errors import StudyError

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
log = logging.getLogger("helpers.study")


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


def render_html(executed: Path) -> Path:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_filename(str(executed))
    out = executed.with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    return out


def run_notebook(source: Path, out_dir: Path, parameters: dict) -> dict:
    """Execute one notebook; raise NotebookFailed naming the cell that failed."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / source.name
    started = time.time()
    try:
        papermill.execute_notebook(str(source), str(executed), parameters=parameters, kernel_name="python3",
                                   cwd=str(PROJECT_ROOT), progress_bar=sys.stderr.isatty(), log_output=False)
    except PapermillExecutionError as err:
        render_html(executed)
        raise NotebookFailed(
            f"{source.name} failed in cell {err.exec_count} ({err.ename}: {err.evalue}). "
            f"The executed notebook with the traceback is {executed} (and .html beside it)."
        ) from None
    seconds = time.time() - started
    page = render_html(executed)
    return {"notebook": source.name, "executed": executed.name, "html": page.name, "seconds": round(seconds, 1),
            "finished": time.strftime("%Y-%m-%d %H:%M")}


def merge_runs(out_dir: Path, profile: str, overrides: dict, runs: list[dict]) -> list[dict]:
    """This invocation's runs plus the earlier runs of other notebooks in ``out_dir``'s study.json.

    ``--only 05 06`` re-renders two notebooks; the index should still link 01..04 from the last
    run of the same profile and overrides. Runs of another profile or other overrides are dropped,
    so the index never mixes studies.
    """
    earlier: list[dict] = []
    previous = Path(out_dir) / "study.json"
    if previous.is_file():
        try:
            before = json.loads(previous.read_text())
        except json.JSONDecodeError:
            before = {}
        if before.get("profile") == profile and before.get("overrides", {}) == overrides:
            earlier = [r for r in before.get("runs", []) if (Path(out_dir) / r.get("html", "")).is_file()]
    merged = {r["notebook"]: r for r in earlier} | {r["notebook"]: r for r in runs}
    return [merged[name] for name in sorted(merged)]


def write_index(out_dir: Path, profile: str, runs: list[dict], wall: float) -> Path:
    rows = "\n".join(
        f'<tr><td><a href="{html.escape(r["html"])}">{html.escape(r["notebook"])}</a></td>'
        f'<td><a href="{html.escape(r["executed"])}">ipynb</a></td><td>{r["seconds"]:.0f} s</td>'
        f'<td>{html.escape(r.get("finished", ""))}</td></tr>'
        for r in runs)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Semantic IDs study: {profile}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:50em;margin:2em auto}}td{{padding:.2em 1em}}</style></head>
<body><h1>Semantic IDs for joint generative search and recommendation</h1>
<p>Profile <b>{html.escape(profile)}</b>, run {time.strftime('%Y-%m-%d %H:%M')} on {os.cpu_count()} CPU cores,
{wall / 60:.1f} minutes wall clock for the last invocation.</p>
<table><tr><th>notebook</th><th>executed</th><th>time</th><th>finished</th></tr>{rows}</table></body></html>"""
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def run_study(profile: str = "ml100k", overrides: dict | None = None, only: list[str] | None = None,
              reports_dir: Path | None = None, results_dir: Path | None = None) -> dict:
    """Execute the notebooks for ``profile``; return a summary with per-notebook timings."""
    load_profile(profile, overrides)  # refuse a bad profile or override before any work starts
    chosen = notebooks(only)
    out_dir = Path(reports_dir or PROJECT_ROOT / "reports" / Path(profile).stem)
    results_dir = Path(results_dir or out_dir / "results")
    parameters = {"PROFILE": str(profile), "OVERRIDES": overrides or {}, "RESULTS_DIR": str(results_dir.resolve())}
    started = time.time()
    runs = []
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    progress = tqdm(chosen, desc=f"study [{profile}]", unit="notebook") if tqdm else chosen
    for source in progress:
        if tqdm:
            progress.set_postfix_str(source.stem)
        runs.append(run_notebook(source, out_dir, parameters))
        log.info("%s done in %.0f s", source.name, runs[-1]["seconds"])
    wall = time.time() - started
    summary = {"profile": str(profile), "overrides": overrides or {}, "runs": runs, "wall_seconds": round(wall, 1)}
    # study.json and the index list the latest run of every notebook in the folder, this
    # invocation's and earlier ones'; the returned summary's "runs" are this invocation's only
    every = merge_runs(out_dir, str(profile), overrides or {}, runs)
    (out_dir / "study.json").write_text(json.dumps({**summary, "runs": every}, indent=2))
    summary["index"] = str(write_index(out_dir, str(profile), every, wall))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.study", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="ml100k", help="smoke | ml100k | paper | path to a YAML profile")
    parser.add_argument("--only", nargs="*", help="run only these notebooks (prefixes such as 01 02)")
    parser.add_argument("--set", dest="assignments", action="append", default=[],
                        help="override a parameter, e.g. --set generative.epochs=3 (repeatable)")
    parser.add_argument("--reports", type=Path, help="output folder (default reports/<profile>)")
    parser.add_argument("--results", type=Path, help="where notebooks 05/06 copy tables and figures")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        overrides = parse_assignments(args.assignments)
        summary = run_study(args.profile, overrides, args.only, args.reports, args.results)
    except StudyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"Study finished in {summary['wall_seconds'] / 60:.1f} min. Open {summary['index']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
