"""The study runner and notebook 01 (recommenders-style: execute, read records back, assert)."""
from __future__ import annotations

import json
import re
import time

import nbformat
import pytest

from helpers.config import PROJECT_ROOT
from helpers.errors import ProfileError, StudyError
from helpers.notebook_results import read_records
from helpers.report import broken_links
from helpers.study import (KernelEcho, LogTail, NotebookFailed, command_line, git_state, main, merge_runs, notebooks,
                           run_notebook, run_study)


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "language_info": {"name": "python"}}
    nb.cells = [nbformat.v4.new_code_cell("PROFILE = 'smoke'", metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(nb, path)
    return path


def test_notebooks_are_numbered_stripped_and_parameterised():
    found = notebooks()
    assert found and found[0].name == "01_data.ipynb"
    for path in found:
        nb = json.loads(path.read_text())
        assert nb["metadata"]["kernelspec"]["name"] == "python3" and nb["metadata"]["language_info"]["name"] == "python"
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert "parameters" in code[0]["metadata"].get("tags", []), f"{path.name}: first code cell must be tagged"
        assert "PROFILE" in "".join(code[0]["source"])
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), f"{path.name} has outputs"


def test_unknown_notebook_and_bad_profile_are_refused_before_work(tmp_path):
    with pytest.raises(StudyError, match="No notebook matches"):
        notebooks(["99"])
    with pytest.raises(ProfileError):
        run_study("smoke", {"generative": {"seeds": []}}, reports_dir=tmp_path)
    assert main(["--profile", "nope", "--reports", str(tmp_path)]) == 1
    assert not list(tmp_path.iterdir())


def test_a_failing_notebook_is_named_with_its_cell(tmp_path):
    source = _notebook(tmp_path / "07_broken.ipynb", "x = 1", "raise ValueError('boom')")
    with pytest.raises(NotebookFailed, match=r"07_broken.ipynb failed in cell \d+ \(ValueError: boom\)"):
        run_notebook(source, tmp_path / "out", {"PROFILE": "smoke"})
    assert (tmp_path / "out" / "07_broken.html").is_file(), "the failed run is rendered for reading"


def test_a_partial_rerun_keeps_the_other_notebooks_in_the_index(tmp_path):
    for name in ("01_data", "02_embeddings", "05_evaluation"):
        (tmp_path / f"{name}.html").write_text("<html></html>")
    earlier = [{"notebook": f"{n}.ipynb", "executed": f"{n}.ipynb", "html": f"{n}.html", "seconds": 1.0}
               for n in ("01_data", "02_embeddings", "03_semantic_ids", "05_evaluation")]
    (tmp_path / "study.json").write_text(json.dumps({"profile": "ml100k", "overrides": {}, "runs": earlier}))
    rerun = [{**earlier[3], "seconds": 9.0}]
    merged = merge_runs(tmp_path, "ml100k", {}, rerun)
    # 03 has no HTML left, so it is dropped; 05 is the new run
    assert [r["notebook"] for r in merged] == ["01_data.ipynb", "02_embeddings.ipynb", "05_evaluation.ipynb"]
    assert merged[-1]["seconds"] == 9.0
    assert merge_runs(tmp_path, "smoke", {}, rerun) == rerun, "another profile's runs are not mixed in"
    assert merge_runs(tmp_path, "ml100k", {"generative": {"epochs": 1}}, rerun) == rerun


@pytest.mark.smoke
def test_notebook_01_on_the_smoke_profile(tmp_path):
    summary = run_study("smoke", only=["01"], reports_dir=tmp_path)
    assert (tmp_path / "01_data.html").is_file() and (tmp_path / "index.html").is_file()
    assert summary["runs"][0]["notebook"] == "01_data.ipynb"
    records = read_records(tmp_path / "01_data.ipynb")
    assert records["chronological"] is True
    assert records["n_queries"] == 2 * records["n_items"] * 10
    assert 0 < records["n_head_items"] < records["n_items"]
    # the index links the notebook; 05 and 06 have not run, so it says who makes the results
    index = (tmp_path / "index.html").read_text()
    assert 'href="01_data.html"' in index and 'href="01_data.ipynb"' in index
    assert "is produced by notebook 05" in index and "is produced by notebook 06" in index and "<img" not in index
    for page in (tmp_path / "index.html", tmp_path / "01_data.html"):
        assert broken_links(page) == [], page.name


# ---- following a running notebook ----------------------------------------------------------------
class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_kernel_echo_passes_lines_and_shows_a_progress_bar_every_interval():
    shown, clock = [], FakeClock()
    echo = KernelEcho(shown.append, prefix="  04 | ", interval=10, clock=clock)
    echo.write("training starts\nhalf a ")
    echo.write("line\n\n")
    for step in range(1, 101):  # a tqdm bar redrawn 100 times over 50 s
        clock.now += 0.5
        echo.write(f"\rmodels: {step}/100 [00:{step // 2:02d}]")
    echo.write("\n")
    echo.write("multitask seed 0: epoch 1/3, train loss 3.210\n")
    echo.write("\rtest: 0/2 [00:00]")  # a new bar shows its first state at once
    clock.now += 20
    echo.write("\rtest: 2/2 [00:20]")
    echo.write("\rtest: 2/2 [00:21]\n")  # tqdm's closing redraw: only the timings changed
    echo.write("\rdecoding: 1/2")
    echo.close()
    assert shown[:2] == ["  04 | training starts", "  04 | half a line"]
    bars = [line for line in shown if "models:" in line]
    # first state, then one every 10 s, then the final one: 6 lines for 100 redraws
    assert bars == ["  04 | models: 1/100 [00:00]", "  04 | models: 21/100 [00:10]", "  04 | models: 41/100 [00:20]",
                    "  04 | models: 61/100 [00:30]", "  04 | models: 81/100 [00:40]", "  04 | models: 100/100 [00:50]"]
    assert shown[-4:] == ["  04 | multitask seed 0: epoch 1/3, train loss 3.210", "  04 | test: 0/2 [00:00]",
                          "  04 | test: 2/2 [00:20]", "  04 | decoding: 1/2"]
    assert not any("\r" in line or "\n" in line or not line.strip(" |04") for line in shown)


def test_log_tail_follows_a_growing_file(tmp_path):
    path, shown = tmp_path / "helpers.log", []
    path.write_text("")
    with LogTail(path, shown.append, prefix="> ", poll=0.01):
        with open(path, "a") as handle:
            handle.write("first\nsecond, in two ")
            handle.flush()
            time.sleep(0.1)
            handle.write("writes\n\nlast, unfinished")
    assert shown == ["> first", "> second, in two writes", "> last, unfinished"]


def test_a_notebook_run_echoes_prints_helpers_log_lines_and_bars(tmp_path):
    source = _notebook(tmp_path / "09_echo.ipynb",
                       "import logging\nfrom tqdm import tqdm\n"
                       "logging.getLogger('helpers.generative.train').info('model 1: epoch 1/2')\n"
                       "logging.getLogger('helpers.evaluation.stage').warning('only 3 of 5 queries predicted')\n"
                       "print('printed')\nfor _ in tqdm(range(50), desc='bar'):\n    pass")
    shown = []
    run_notebook(source, tmp_path / "out", {"PROFILE": "smoke"}, echo=shown.append, interval=60)
    assert "  09 | model 1: epoch 1/2" in shown and "  09 | printed" in shown
    assert shown.count("  09 | only 3 of 5 queries predicted") == 1
    bars = [line for line in shown if "bar:" in line]
    assert bars[-1].startswith("  09 | bar: 100%") and len(bars) <= 3
    # the executed notebook holds what Jupyter shows: the print, the warning, the bar's final state
    # only, and not the INFO line (a terminal's business)
    cells = json.loads((tmp_path / "out" / "09_echo.ipynb").read_text())["cells"]
    outputs = next(c for c in cells if "tqdm(range(50)" in "".join(c["source"]))["outputs"]
    text = {o["name"]: "".join(o["text"]) for o in outputs if o["output_type"] == "stream"}
    assert text["stdout"] == "printed\n" and "model 1" not in text["stderr"]
    assert "only 3 of 5 queries predicted" in text["stderr"]
    assert text["stderr"].count("bar:") == 1 and "\r" not in text["stderr"]
    # without echo, the kernel logs nothing more than Jupyter would
    quiet = run_notebook(source, tmp_path / "quiet", {"PROFILE": "smoke"})
    assert quiet["notebook"] == "09_echo.ipynb"


def test_the_command_line_and_the_commit_are_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("SID_DATA_ROOT", "/tmp/my data")
    assert command_line(["--profile", "smoke", "--only", "01"]) == \
        "SID_DATA_ROOT='/tmp/my data' python -m helpers.study --profile smoke --only 01"
    monkeypatch.delenv("SID_DATA_ROOT")
    assert command_line(profile="smoke", overrides={"generative": {"seeds": [0, 1]}}, only=["05", "06"],
                        results_dir=tmp_path) == \
        f"python -m helpers.study --profile smoke '--set=generative.seeds=[0, 1]' --only 05 06 --results {tmp_path}"
    assert git_state(tmp_path) is None, "outside a git checkout: no commit, no error"
    if (PROJECT_ROOT / ".git").exists():
        state = git_state()
        assert re.fullmatch(r"[0-9a-f]{4,40}", state["commit"]) and isinstance(state["dirty"], bool)
