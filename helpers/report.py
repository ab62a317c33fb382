"""The study's front page, ``reports/<profile>/index.html``, and a check that its links resolve.

:func:`render_index` is pure: from the study summary (what ``helpers.study`` records in
``study.json``) and two folders it returns the page, reading only the results files that exist.
The page shows what a reader wants first (which of the paper's findings hold, the Pareto figure,
Table 2), then links every executed notebook and every file of the results folder, then how the
study was run (profile, command, date, commit, wall time).

Links are relative to the page, so the reports folder (with its results folder inside it, the
default) can be zipped and shared. :func:`broken_links` lists the links and images of a page that
do not resolve to a file beside it; the tests run it on the index and on the notebook pages.
"""
from __future__ import annotations

import csv
import html
import json
import os
import re
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

#: Files of the results folder the index shows, and the notebook that writes each one.
PRODUCED_BY = {
    "findings.csv": "05_evaluation",
    "table2_display.csv": "05_evaluation",
    "pareto.png": "06_pareto",
}
FIGURE_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg", ".pdf")
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet")

STYLE = """
body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;max-width:64rem;
 margin:0 auto;padding:1rem 1.25rem 3rem}
h1{font-size:1.6rem;line-height:1.25;margin:.5rem 0}h2{font-size:1.25rem;margin:2rem 0 .5rem;
 border-bottom:1px solid #d0d7de;padding-bottom:.2rem}
a{color:#0969da}code{font-size:.9em;background:#f6f8fa;padding:.1em .3em;border-radius:3px;
 overflow-wrap:anywhere}
.lead{color:#57606a;margin-top:0}.note{color:#57606a;font-size:.9rem}
.missing{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:.6rem .8rem}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;font-size:.9rem;margin:.5rem 0}
th,td{padding:.3rem .6rem;border-bottom:1px solid #d0d7de;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.paper{color:#57606a}tr.group td{background:#f6f8fa;font-weight:600;font-size:.85rem}
ul.findings{list-style:none;padding:0}ul.findings li{margin:.6rem 0;padding-left:.2rem}
.verdict{display:inline-block;min-width:6.5em;font-size:.8rem;font-weight:600;border-radius:1em;
 padding:0 .6em;margin-right:.4em;text-align:center}
.holds{background:#dafbe1;color:#116329}.fails{background:#ffebe9;color:#a40e26}
.unchecked{background:#eaeef2;color:#57606a}.evidence{display:block;color:#57606a;font-size:.88rem}
figure{margin:1rem 0}figure img{display:block;width:100%;max-width:52rem;height:auto;border:1px solid #d0d7de}
figcaption{color:#57606a;font-size:.9rem}dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}
dt{font-weight:600}dd{margin:0;min-width:0}
@media (max-width:40rem){body{padding:.5rem .75rem 2rem}dl{grid-template-columns:1fr}dd{margin-bottom:.4rem}}
"""


# ---- paths and small formatting helpers ----------------------------------------------------------
def href(target: Path, page_dir: Path) -> str:
    """``target`` as a URL relative to ``page_dir`` (an absolute file URL across Windows drives)."""
    try:
        relative = os.path.relpath(Path(target).resolve(), Path(page_dir).resolve())
    except ValueError:  # pragma: no cover - different drives
        return Path(target).resolve().as_uri()
    return quote(Path(relative).as_posix())


def _e(text) -> str:
    return html.escape(str(text))


def _minutes(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def flatten_overrides(tree: dict, prefix: str = "") -> list[str]:
    """``{"generative": {"epochs": 3}}`` -> ``["generative.epochs=3"]`` (as ``--set`` takes them)."""
    out = []
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out += flatten_overrides(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={json.dumps(value)}")
    return out


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def notebook_title(executed: Path) -> str | None:
    """The first Markdown heading of a notebook, without its ``#``s, or None."""
    try:
        cells = json.loads(Path(executed).read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError):
        return None
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            for line in "".join(cell.get("source", "")).splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return None


def _missing(name: str, results_dir: Path, page_dir: Path) -> str:
    producer = PRODUCED_BY.get(name, "")
    number = producer.split("_")[0]
    return (f'<p class="missing">Not available yet: <code>{_e(name)}</code> is produced by notebook {_e(number)} '
            f"(<code>{_e(producer)}.ipynb</code>), which has not written it to the results folder "
            f"<code>{_e(href(results_dir, page_dir))}</code>. Run the whole study, or "
            f"<code>--only {_e(number)}</code> once the notebooks before it have run.</p>")


# ---- the sections --------------------------------------------------------------------------------
def _verdict(holds: str) -> tuple[str, str]:
    value = str(holds).strip().lower()
    if value in ("true", "1"):
        return "holds", "holds"
    if value in ("false", "0"):
        return "fails", "does not hold"
    return "unchecked", "not checked"


def findings_section(results_dir: Path, page_dir: Path) -> str:
    path = results_dir / "findings.csv"
    if not path.is_file():
        return "<h2>Which findings of the paper hold</h2>" + _missing("findings.csv", results_dir, page_dir)
    rows = read_csv(path)
    verdicts = [_verdict(r.get("holds", "")) for r in rows]
    checked = [v for v, _ in verdicts if v != "unchecked"]
    items = "\n".join(
        f'<li><span class="verdict {css}">{label}</span><b>{_e(r.get("where", ""))}</b> · {_e(r.get("finding", ""))}'
        f'<span class="evidence">Here: {_e(r.get("evidence", ""))}</span></li>'
        for r, (css, label) in zip(rows, verdicts))
    return (f"<h2>Which findings of the paper hold</h2>"
            f'<p><b>{checked.count("holds")} of {len(checked)}</b> checkable findings hold on these numbers '
            f"(computed in notebook 05 from the mean recalls, not written by hand; "
            f'<a href="{href(path, page_dir)}">findings.csv</a>).</p><ul class="findings">{items}</ul>')


def pareto_section(results_dir: Path, page_dir: Path) -> str:
    png = results_dir / "pareto.png"
    if not png.is_file():
        return "<h2>Search versus recommendation</h2>" + _missing("pareto.png", results_dir, page_dir)
    svg = png.with_suffix(".svg")
    vector = f' (<a href="{href(svg, page_dir)}">SVG</a>)' if svg.is_file() else ""
    return (f"<h2>Search versus recommendation</h2><figure>"
            f'<a href="{href(png, page_dir)}"><img src="{href(png, page_dir)}" '
            f'alt="Search Recall@K against recommendation Recall@K for every Semantic ID construction"></a>'
            f"<figcaption>Each Semantic ID construction is one joint model: its search recall against its "
            f"recommendation recall. The Pareto frontier joins the constructions no other one beats on both "
            f"tasks; dotted lines are the baselines. Drawn by notebook 06{vector}.</figcaption></figure>")


#: A table cell that is a number: ``0.093``, ``0.093 ²³⁴``, ``0.093 ± 0.004 ¹``, ``-1e-05``, ``12%``.
NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?%?(\s*±\s*\d*\.?\d+)?\s*[⁰¹²³⁴⁵⁶⁷⁸⁹]*")


def _is_number(text: str) -> bool:
    return bool(NUMBER.fullmatch(str(text).strip()))


def csv_table(path: Path, group_column: str = "group") -> str:
    """A CSV as an HTML table. Column pairs ``X (ours)`` / ``X (paper)`` share a two-row header;
    a ``group`` column becomes a row that opens each group."""
    rows = read_csv(path)
    columns = [c for c in (list(rows[0]) if rows else []) if c != group_column]
    grouped = bool(rows) and group_column in rows[0]
    pairs = [c[: -len(" (ours)")] for c in columns if c.endswith(" (ours)") and f"{c[:-7]} (paper)" in columns]
    if pairs:
        top, sub = [], []
        for column in columns:
            base = column.rsplit(" (", 1)[0]
            if base in pairs:
                if column.endswith(" (ours)"):
                    top.append(f'<th colspan="2" class="num">{_e(base)}</th>')
                sub.append(f'<th class="num">{"ours" if column.endswith(" (ours)") else "paper"}</th>')
            else:
                top.append(f'<th rowspan="2">{_e(column)}</th>')
        header = f"<tr>{''.join(top)}</tr><tr>{''.join(sub)}</tr>"
    else:
        header = "<tr>" + "".join(f"<th>{_e(c)}</th>" for c in columns) + "</tr>"
    body, group = [], None
    for row in rows:
        if grouped and row[group_column] != group:
            group = row[group_column]
            body.append(f'<tr class="group"><td colspan="{len(columns)}">{_e(group)}</td></tr>')
        cells = []
        for column in columns:
            value = row.get(column, "")
            css = " ".join(filter(None, ["num" if _is_number(value) else "",
                                         "paper" if column.endswith(" (paper)") else ""]))
            cells.append(f'<td class="{css}">{_e(value)}</td>' if css else f"<td>{_e(value)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f'<div class="scroll"><table>{header}{"".join(body)}</table></div>'


def table2_section(results_dir: Path, page_dir: Path) -> str:
    path = results_dir / "table2_display.csv"
    title = "<h2>Table 2 · every construction, Recall@K</h2>"
    if not path.is_file():
        return title + _missing("table2_display.csv", results_dir, page_dir)
    numbers = results_dir / "table2.csv"
    raw = f', unformatted numbers in <a href="{href(numbers, page_dir)}">table2.csv</a>' if numbers.is_file() else ""
    return (title + csv_table(path) +
            f'<p class="note">Ours (mean over seeds) beside the paper\'s published numbers (MovieLens-25M). '
            f"A superscript <i>j</i> marks a result significantly better than row <i>j</i> (paired t-test over "
            f"queries or users, Bonferroni-corrected). From notebook 05 "
            f'(<a href="{href(path, page_dir)}">{_e(path.name)}</a>{raw}).</p>')


def notebooks_section(runs: list[dict], out_dir: Path) -> str:
    if not runs:
        return "<h2>Notebooks</h2><p>No notebook has run into this folder yet.</p>"
    rows = []
    for run in runs:
        page, executed = out_dir / run["html"], out_dir / run["executed"]
        title = notebook_title(executed) or Path(run["notebook"]).stem
        rows.append(f'<tr><td><a href="{href(page, out_dir)}">{_e(title)}</a></td>'
                    f'<td><a href="{href(executed, out_dir)}">{_e(Path(run["executed"]).name)}</a></td>'
                    f'<td class="num">{_minutes(run.get("seconds", 0))}</td>'
                    f'<td>{_e(run.get("finished", ""))}</td></tr>')
    return ("<h2>Notebooks</h2><p>Each executed notebook as a page to read, and as the <code>.ipynb</code> "
            "to open in Jupyter.</p><div class=\"scroll\"><table><tr><th>notebook</th><th>executed</th>"
            f'<th class="num">time</th><th>finished</th></tr>{"".join(rows)}</table></div>')


def results_section(results_dir: Path, page_dir: Path) -> str:
    title = "<h2>Result tables and figures</h2>"
    where = f"<code>{_e(href(results_dir, page_dir))}/</code>"
    files = sorted(p for p in results_dir.iterdir() if p.is_file() and not p.name.startswith(".")) \
        if results_dir.is_dir() else []
    if not files:
        return (title + f'<p class="missing">The results folder {where} holds nothing yet: notebook 05 '
                f"(<code>05_evaluation.ipynb</code>) writes the tables there and notebook 06 "
                f"(<code>06_pareto.ipynb</code>) the figures.</p>")

    def written(path: Path) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))

    def link(path: Path, label: str | None = None) -> str:
        return f'<a href="{href(path, page_dir)}">{_e(label or path.name)}</a>'

    tables = [p for p in files if p.suffix.lower() in TABLE_SUFFIXES]
    figures: dict[str, list[Path]] = {}
    for path in files:
        if path.suffix.lower() in FIGURE_SUFFIXES:
            figures.setdefault(path.stem, []).append(path)
    other = [p for p in files if p not in tables and p.suffix.lower() not in FIGURE_SUFFIXES]
    rows = [f"<tr><td>{link(p)}</td><td>table</td><td>{_e(written(p))}</td></tr>" for p in tables]
    rows += [f"<tr><td>{_e(stem)}: {' · '.join(link(p, p.suffix.lstrip('.').upper()) for p in paths)}</td>"
             f"<td>figure</td><td>{_e(written(paths[0]))}</td></tr>" for stem, paths in figures.items()]
    rows += [f"<tr><td>{link(p)}</td><td>other</td><td>{_e(written(p))}</td></tr>" for p in other]
    return (title + f"<p>Everything in {where}: <code>&lt;table&gt;.csv</code> holds the numbers, "
            f"<code>&lt;table&gt;_display.csv</code> the formatted cells with significance superscripts.</p>"
            f'<div class="scroll"><table><tr><th>file</th><th>kind</th><th>written</th></tr>{"".join(rows)}'
            f"</table></div>")


def run_section(summary: dict) -> str:
    git = summary.get("git")
    if git and git.get("commit"):
        code = f"commit <code>{_e(git['commit'])}</code>" + (" + uncommitted changes" if git.get("dirty") else "")
    else:
        code = "unknown (not run from a git checkout)"
    overrides = flatten_overrides(summary.get("overrides") or {})
    runs = summary.get("runs") or []
    total = sum(float(r.get("seconds", 0)) for r in runs)
    this = summary.get("invocation_notebooks")
    covered = f" (notebooks {', '.join(Path(n).name[:2] for n in this)})" if this else ""
    items = [
        ("Profile", f"<code>{_e(summary.get('profile', '?'))}</code>"
         + (f", overrides {', '.join(f'<code>{_e(o)}</code>' for o in overrides)}" if overrides else ", no overrides")),
        ("Command", f"<code>{_e(summary.get('command') or 'unknown')}</code>"),
        ("Started", _e(summary.get("started") or "unknown")),
        ("Code", code),
        ("Wall time", f"{_minutes(summary.get('wall_seconds', 0))} for this invocation{_e(covered)}; "
                      f"{_minutes(total)} for all {len(runs)} notebooks listed above"),
    ]
    if summary.get("machine"):
        items.append(("Machine", _e(summary["machine"])))
    body = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in items)
    return f"<h2>How this was run</h2><dl>{body}</dl>"


# ---- the page ------------------------------------------------------------------------------------
def render_index(summary: dict, out_dir: Path, results_dir: Path) -> str:
    """The index page of a study folder as HTML text; reads the results files, writes nothing.

    ``summary`` holds ``profile``, ``overrides``, ``runs`` (each with ``notebook``, ``executed``,
    ``html``, ``seconds``, ``finished``; paths relative to ``out_dir``), ``wall_seconds`` and,
    when known, ``command``, ``started``, ``git`` (``{"commit", "dirty"}``) and ``machine``.
    """
    out_dir, results_dir = Path(out_dir), Path(results_dir)
    profile = summary.get("profile", "?")
    sections = [
        findings_section(results_dir, out_dir),
        pareto_section(results_dir, out_dir),
        table2_section(results_dir, out_dir),
        notebooks_section(summary.get("runs") or [], out_dir),
        results_section(results_dir, out_dir),
        run_section(summary),
    ]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Semantic IDs study: {_e(profile)}</title><style>{STYLE}</style></head>
<body><h1>Semantic IDs for joint generative search and recommendation</h1>
<p class="lead">A reproduction of Penha et al., <i>Semantic IDs for Joint Generative Search and Recommendation</i>
(RecSys 2025), profile <b>{_e(profile)}</b>{f", run {_e(summary['started'])}" if summary.get('started') else ""}.</p>
{chr(10).join(sections)}
</body></html>
"""


def write_index(summary: dict, out_dir: Path, results_dir: Path) -> Path:
    index = Path(out_dir) / "index.html"
    index.write_text(render_index(summary, out_dir, results_dir), encoding="utf-8")
    return index


# ---- link checking -------------------------------------------------------------------------------
class _Targets(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.targets: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.targets += [value for name, value in attrs if name in ("href", "src") and value]


def link_targets(page_html: str) -> list[str]:
    """Every ``href`` and ``src`` value of a page, in order."""
    parser = _Targets()
    parser.feed(page_html)
    parser.close()
    return parser.targets


def broken_links(page: Path) -> list[str]:
    """The links and images of ``page`` that do not resolve to a file beside it.

    Web links (http, https, mailto), in-page anchors and ``data:`` URIs are not checked. A link a
    shared copy of the folder could not follow (``file:`` or another scheme, an absolute path) is
    reported as broken, as is a relative target that does not exist.
    """
    page = Path(page)
    broken = []
    for target in link_targets(page.read_text(encoding="utf-8")):
        parts = urlsplit(target)
        if parts.scheme in ("http", "https", "mailto", "data") or target.startswith("#"):
            continue
        if parts.scheme or parts.netloc or parts.path.startswith("/"):
            broken.append(target)
            continue
        if parts.path and not (page.parent / unquote(parts.path)).exists():
            broken.append(target)
    return broken
