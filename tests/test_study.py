"""The study runner and notebook 01 (recommenders-style: execute, read records back, assert)."""
from __future__ import annotations

import json

import nbformat
import pytest

from helpers.errors import ProfileError, StudyError
from helpers.notebook_results import read_records
from helpers.study import NotebookFailed, main, merge_runs, notebooks, run_notebook, run_study


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
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "language_info": {"name": "python"}}
    nb.cells = [nbformat.v4.new_code_cell("PROFILE = 'smoke'", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_code_cell("raise ValueError('boom')")]
    source = tmp_path / "07_broken.ipynb"
    nbformat.write(nb, source)
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
