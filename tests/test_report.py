"""The index page (helpers.report): what it shows, and that every link and image on it resolves."""
from __future__ import annotations

import json

import nbformat
import pytest

from helpers.report import broken_links, csv_table, link_targets, notebook_title, render_index, write_index

FINDINGS = """claim,where,finding,holds,evidence
trade_off,Table 1,Optimising the IDs for one task sacrifices the other.,True,search: Search based 0.093 vs Rec. based 0.023
multitask_balanced,Table 2,Multi-task gives the best trade-off <balanced>.,False,"worst-task share: Search based 0.69, Multi-task 0.49"
unknown,Table 3,A finding about methods not run.,,not run here
"""
TABLE2 = """method,group,Search All (ours),Search All (paper),Rec. All (ours),Rec. All (paper)
1. Search based,Task-specific,0.093 ²³,0.072,0.161,0.026
2. Rec. based,Task-specific,0.023,0.004,0.233 ¹,0.062
3. Separate,Cross-task,0.018,0.028,0.153,0.032
"""
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


def _notebook(path, title):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\nSome prose."), nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nb, path)


def make_study(out_dir, results_dir=None, with_results=True):
    """A reports folder as the study runner leaves it, without executing anything."""
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for stem, title in (("01_data", "01 · Data"), ("05_evaluation", "05 · Evaluation: Recall@K")):
        _notebook(out_dir / f"{stem}.ipynb", title)
        (out_dir / f"{stem}.html").write_text(f'<html><body><h1>{title}</h1><a href="#cell-1">anchor</a>'
                                              '<img src="data:image/png;base64,AA=="></body></html>')
        runs.append({"notebook": f"{stem}.ipynb", "executed": f"{stem}.ipynb", "html": f"{stem}.html",
                     "seconds": 12.3, "finished": "2026-11-22 10:00"})
    results_dir = results_dir or out_dir / "results"
    if with_results:
        results_dir.mkdir(parents=True, exist_ok=True)
        (results_dir / "findings.csv").write_text(FINDINGS, encoding="utf-8")
        (results_dir / "table2_display.csv").write_text(TABLE2, encoding="utf-8")
        (results_dir / "table2.csv").write_text("method,search_all\nsearch,0.093\n")
        (results_dir / "pareto.png").write_bytes(PNG)
        (results_dir / "pareto.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
        (results_dir / "RUN.md").write_text("# how\n")
    summary = {"profile": "smoke", "overrides": {"generative": {"epochs": 3}}, "runs": runs, "wall_seconds": 125.0,
               "command": "SID_DATA_ROOT=/tmp/x python -m helpers.study --profile smoke --set generative.epochs=3",
               "started": "2026-11-22 09:58 UTC", "git": {"commit": "abc1234", "dirty": True},
               "machine": "2 CPU cores", "invocation_notebooks": ["01_data.ipynb", "05_evaluation.ipynb"]}
    return summary, results_dir


def test_the_index_shows_findings_figure_table_notebooks_results_and_the_run(tmp_path):
    out = tmp_path / "reports" / "smoke"
    summary, results = make_study(out)
    page = render_index(summary, out, results)
    # findings: counted over the checkable ones, the unknown one said to be not checked, text escaped
    assert "<b>1 of 2</b> checkable findings hold" in page
    assert page.count('class="verdict holds"') == 1 and page.count('class="verdict fails"') == 1
    assert 'class="verdict unchecked">not checked' in page
    assert "&lt;balanced&gt;" in page and "<balanced>" not in page
    # the figure and Table 2, with paths relative to the page
    assert '<img src="results/pareto.png"' in page and 'href="results/pareto.svg"' in page
    assert "<th colspan=\"2\" class=\"num\">Search All</th>" in page and "0.093 ²³" in page
    assert '<tr class="group"><td colspan="5">Cross-task</td></tr>' in page
    # every notebook as HTML and ipynb, titled from its first heading
    assert '<a href="05_evaluation.html">05 · Evaluation: Recall@K</a>' in page
    assert 'href="05_evaluation.ipynb"' in page and 'href="01_data.html"' in page
    # every results file
    for name in ("findings.csv", "table2.csv", "table2_display.csv", "RUN.md"):
        assert f'href="results/{name}"' in page
    # how it was run
    assert "abc1234</code> + uncommitted changes" in page
    assert "python -m helpers.study --profile smoke --set generative.epochs=3" in page
    assert "generative.epochs=3" in page and "2026-11-22 09:58 UTC" in page and "2.1 min" in page
    assert "produced by notebook" not in page
    assert '<meta name="viewport"' in page and "<script" not in page


def test_every_link_and_image_of_the_index_resolves(tmp_path):
    out = tmp_path / "reports" / "smoke"
    summary, results = make_study(out)
    index = write_index(summary, out, results)
    assert len(link_targets(index.read_text())) >= 12
    assert broken_links(index) == []
    for page in out.glob("*.html"):
        assert broken_links(page) == [], page.name


def test_results_outside_the_reports_folder_are_linked_relatively(tmp_path):
    out = tmp_path / "reports" / "ml100k"
    summary, results = make_study(out, results_dir=tmp_path / "results" / "ml100k")
    index = write_index(summary, out, results)
    page = index.read_text()
    assert '<img src="../../results/ml100k/pareto.png"' in page
    assert 'href="../../results/ml100k/findings.csv"' in page
    assert str(tmp_path) not in page.split("<h2>How this was run")[0], "no absolute paths in the links"
    assert broken_links(index) == []


def test_missing_results_name_the_notebook_that_produces_them(tmp_path):
    out = tmp_path / "reports" / "smoke"
    summary, results = make_study(out, with_results=False)
    summary["git"] = None
    index = write_index(summary, out, results)
    page = index.read_text()
    assert "findings.csv</code> is produced by notebook 05" in page
    assert "table2_display.csv</code> is produced by notebook 05" in page
    assert "pareto.png</code> is produced by notebook 06" in page
    assert "<img" not in page
    assert "unknown (not run from a git checkout)" in page
    assert broken_links(index) == []


def test_broken_links_finds_missing_absolute_and_file_targets_and_skips_web_ones(tmp_path):
    (tmp_path / "sub dir").mkdir()
    (tmp_path / "sub dir" / "a b.csv").write_text("x\n1\n")
    (tmp_path / "there.png").write_bytes(PNG)
    page = tmp_path / "page.html"
    page.write_text("""<html><head><link rel="stylesheet" href="https://cdn.example/x.css">
<script src="//cdn.example/y.js"></script></head><body>
<a href="sub%20dir/a%20b.csv">ok</a><a href="sub dir/a b.csv#row">ok too</a><img src="there.png">
<a href="#top">anchor</a><a href="mailto:someone@example.org">mail</a><img src="data:image/png;base64,AA==">
<a href="http://example.org/page">web</a>
<a href="missing.html">gone</a><img src="figures/nope.png"><a href="/etc/hosts">absolute</a>
<a href="file:///tmp/x.html">file</a></body></html>""")
    assert broken_links(page) == ["//cdn.example/y.js", "missing.html", "figures/nope.png", "/etc/hosts",
                                  "file:///tmp/x.html"]


def test_a_table_without_pairs_or_groups_and_a_notebook_without_a_heading(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("name,value\nalpha,0.5\nbeta,n/a\n")
    table = csv_table(path)
    assert "<th>name</th><th>value</th>" in table and '<td class="num">0.5</td>' in table and "<td>n/a</td>" in table
    nb = tmp_path / "x.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), nb)
    assert notebook_title(nb) is None and notebook_title(tmp_path / "missing.ipynb") is None


@pytest.mark.parametrize("holds", ["True", "true", "1"])
def test_verdicts_read_what_pandas_writes(tmp_path, holds):
    out = tmp_path / "r"
    summary, results = make_study(out)
    (results / "findings.csv").write_text(f"claim,where,finding,holds,evidence\nx,Table 1,F.,{holds},e\n")
    assert "<b>1 of 1</b>" in render_index(summary, out, results)
    json.dumps(summary)  # the summary the page is drawn from is what study.json stores
