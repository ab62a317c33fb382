"""Check that a run of the study reproduces committed results, table by table, within a stated tolerance.

    python -m helpers.verify --results results/ml100k --against /tmp/run/results   # a finished run's results folder
    python -m helpers.verify --results results/ml100k --reports reports/ml100k      # a finished run's reports folder
    python -m helpers.verify --results results/ml100k --run [--cold]                # rerun the study, then compare

``--results`` is the folder of committed tables (the expected numbers). The run to check is either a
results folder (``--against``), a reports folder of ``python -m helpers.study`` (``--reports``: its
``results/`` subfolder), or a fresh run of the whole study (``--run``: notebooks 01-06 through
``helpers.study.run_study`` into a temporary reports folder, or into ``--reports`` if given;
``--cold`` also points ``SID_DATA_ROOT`` at an empty temporary folder so that no cached artifact is
reused). The profile is ``--profile``, by default the results folder's name when it names a profile.

Every CSV table of the committed folder is compared (the ``*_display.csv`` files are skipped: they
are strings formatted from ``table1/2/3.csv``, which are compared):

* rows are matched by their key columns (``method`` in tables 1-3 and the human queries, ``space,
  method`` in the dense references, ``construction`` in the memorisation table, ``claim`` in the findings, ``metric, method_a, method_b`` in the significance tests,
  the row label in the baselines);
* numbers: ``|expected - actual| <= tolerance`` (``--tolerance``, default 0.005: the recalls and
  their means and standard deviations); the paper's published numbers (``*_paper*`` columns)
  exactly; NaN equals only NaN;
* test statistics (``t``, ``p``, ``p_adjusted`` of the significance tables) are not compared as
  numbers: they move with every hit, and their decisions (``significant``, ``better``, the ``*_sig``
  superscripts) are compared exactly;
* counts (integer columns such as ``n_seeds``, ``n_queries``, ``n``) and strings exactly, except
  text with numbers in it (the findings' ``evidence``), whose numbers get the tolerance and whose
  words must match.

Prints one line per difference (table, row, column, expected, actual) and exits 1 if there is any,
0 if everything agrees, 2 if a folder or table is missing.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

#: Default absolute tolerance on recall-like numbers (recall, means, stds over seeds).
TOLERANCE = 0.005
#: Columns that identify a row, per table (file stem); the first column when not listed.
KEYS = {
    "table1": ["method"], "table2": ["method"], "table3": ["method"],
    "dense_references": ["space", "method"],
    "findings": ["claim"],
    "memorisation": ["construction"], "human_queries": ["method"],
    "baselines": [0],  # the unnamed index column: Random, Most popular (...), Lexical (...)
}
SIGNIFICANCE_KEYS = ["metric", "method_a", "method_b"]
#: Columns not compared as numbers (see the module docstring).
STATISTICS = {"t", "p", "p_adjusted"}
#: String columns whose embedded numbers are compared with the tolerance.
TEXT_WITH_NUMBERS = {"evidence"}
_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class Difference:
    """One disagreement: which table, which row (by its keys), which column, the two values."""

    table: str
    row: str
    column: str
    expected: object
    actual: object
    why: str

    def __str__(self) -> str:
        where = ", ".join(([f"row {self.row}"] if self.row else []) + ([f"column {self.column}"] if self.column else []))
        return f"{self.table}: {where + ': ' if where else ''}expected {_show(self.expected)}, got {_show(self.actual)} ({self.why})"


def _show(value) -> str:
    if isinstance(value, float) and not math.isnan(value):
        return f"{value:.6g}"
    return repr(value) if isinstance(value, str) else str(value)


def table_files(folder: Path) -> list[Path]:
    """The CSV tables of a results folder that are compared (everything but ``*_display.csv``)."""
    return sorted(p for p in Path(folder).glob("*.csv") if not p.stem.endswith("_display"))


def read_table(path: Path) -> pd.DataFrame:
    """A results CSV with every cell as text (empty cells NaN), so numbers keep what was written."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=True)
    first = frame.columns[0]
    if str(first).startswith("Unnamed"):  # an index written by to_csv() without a name
        frame = frame.rename(columns={first: ""})
    return frame


_INTEGER = re.compile(r"^[-+]?\d+$")


def column_kind(name: str, *columns: pd.Series) -> str:
    """``integer`` (counts), ``number`` or ``text`` for a column, from its name and both sides' cells.

    ``*_sig`` superscript columns ("13") and boolean columns are text; a column is numeric only if
    every non-empty cell on both sides parses as a number.
    """
    if name.endswith("_sig") or name in TEXT_WITH_NUMBERS:
        return "text"
    cells = [str(v) for column in columns for v in column.dropna()]
    if not cells:
        return "number"
    if all(_INTEGER.match(c) for c in cells):
        return "integer"
    if all(_as_float(c) is not None for c in cells):
        return "number"
    return "text"


def key_columns(name: str, frame: pd.DataFrame) -> list[str]:
    if name.startswith("significance"):
        keys = SIGNIFICANCE_KEYS
    else:
        keys = KEYS.get(name, [0])
    keys = [frame.columns[k] if isinstance(k, int) else k for k in keys]
    return keys if all(k in frame.columns for k in keys) else [frame.columns[0]]


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _as_float(value):
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def compare_values(column: str, expected, actual, tolerance: float, kind: str = "number") -> str | None:
    """Why ``expected`` and ``actual`` (cells of ``column``, of ``kind``) differ, or None if they agree."""
    if _is_missing(expected) or _is_missing(actual):
        return None if _is_missing(expected) and _is_missing(actual) else "one side is empty"
    if column in STATISTICS:
        return None
    if kind == "text":
        expected_text, actual_text = _text(column, expected), _text(column, actual)
        if column in TEXT_WITH_NUMBERS:
            return _compare_text_with_numbers(expected_text, actual_text, tolerance)
        return None if expected_text == actual_text else "text differs"
    a, b = _as_float(expected), _as_float(actual)
    if a is None or b is None:
        return None if str(expected) == str(actual) else "values differ"
    if kind == "integer" or "_paper" in column:
        return None if a == b else "exact value differs"
    diff = abs(a - b)
    return None if diff <= tolerance + 1e-12 else f"|diff| {diff:.4g} > {tolerance:g}"


def _text(column: str, value) -> str:
    """A text cell; superscripts read back as a float by a spreadsheet ("13.0") count as "13"."""
    text = str(value)
    if column.endswith("_sig") and re.fullmatch(r"\d+\.0", text):
        return text[:-2]
    return text


def _compare_text_with_numbers(expected: str, actual: str, tolerance: float) -> str | None:
    if _NUMBER.sub("#", expected) != _NUMBER.sub("#", actual):
        return "text differs"
    for a, b in zip(_NUMBER.findall(expected), _NUMBER.findall(actual)):
        # a number printed with d decimals may be off by half a unit of its last place
        allowed = tolerance + _half_unit(a) + _half_unit(b)
        if abs(float(a) - float(b)) > allowed + 1e-12:
            return f"number {a} -> {b} (|diff| {abs(float(a) - float(b)):.4g} > {allowed:g})"
    return None


def _half_unit(number: str) -> float:
    """Half a unit of the last printed decimal place of ``number`` (0 for an integer)."""
    mantissa = number.lower().split("e")[0]
    if "." not in mantissa:
        return 0.0
    decimals = len(mantissa.split(".")[1])
    exponent = int(number.lower().split("e")[1]) if "e" in number.lower() else 0
    return 0.5 * 10.0 ** (exponent - decimals)


def _row_label(keys: list[str], values: tuple) -> str:
    return ", ".join(f"{k}={v}" if k else str(v) for k, v in zip(keys, values))


def compare_tables(name: str, expected: pd.DataFrame, actual: pd.DataFrame,
                   tolerance: float = TOLERANCE) -> list[Difference]:
    """Every difference between two versions of one table (see the module docstring for the rules)."""
    table = f"{name}.csv"
    out: list[Difference] = []
    missing_cols = [c for c in expected.columns if c not in actual.columns]
    extra_cols = [c for c in actual.columns if c not in expected.columns]
    out += [Difference(table, "", str(c), "present", "missing", "column missing") for c in missing_cols]
    out += [Difference(table, "", str(c), "absent", "present", "unexpected column") for c in extra_cols]
    keys = key_columns(name, expected)
    if any(k not in actual.columns for k in keys):
        return out
    if expected.duplicated(keys).any() or actual.duplicated(keys).any():  # fall back to row order
        expected = expected.assign(_position=range(len(expected)))
        actual = actual.assign(_position=range(len(actual)))
        keys = keys + ["_position"]
    exp_rows = {tuple(r): i for i, r in enumerate(expected[keys].itertuples(index=False, name=None))}
    act_rows = {tuple(r): i for i, r in enumerate(actual[keys].itertuples(index=False, name=None))}
    for row in exp_rows:
        if row not in act_rows:
            out.append(Difference(table, _row_label(keys, row), "", "present", "missing", "row missing"))
    for row in act_rows:
        if row not in exp_rows:
            out.append(Difference(table, _row_label(keys, row), "", "absent", "present", "unexpected row"))
    columns = [c for c in expected.columns if c in actual.columns and c not in keys]
    kinds = {c: column_kind(str(c), expected[c], actual[c]) for c in columns}
    for row, i in exp_rows.items():
        if row not in act_rows:
            continue
        j = act_rows[row]
        label = _row_label(keys, row)
        for column in columns:
            why = compare_values(str(column), expected[column].iloc[i], actual[column].iloc[j], tolerance,
                                 kinds[column])
            if why:
                out.append(Difference(table, label, str(column), _cell(expected[column].iloc[i], kinds[column]),
                                      _cell(actual[column].iloc[j], kinds[column]), why))
    return out


def _cell(value, kind: str):
    """A cell as reported: a float for numbers, the text otherwise (NaN stays NaN)."""
    if _is_missing(value):
        return float("nan")
    if kind != "text" and _as_float(value) is not None:
        return int(value) if kind == "integer" else float(value)
    return value


def compare_folders(expected_dir: Path, actual_dir: Path, tolerance: float = TOLERANCE) -> list[Difference]:
    """Compare every table of ``expected_dir`` with the same-named table of ``actual_dir``."""
    expected_dir, actual_dir = Path(expected_dir), Path(actual_dir)
    files = table_files(expected_dir)
    if not files:
        raise FileNotFoundError(f"{expected_dir} holds no CSV tables to compare with.")
    out: list[Difference] = []
    for path in files:
        other = actual_dir / path.name
        if not other.is_file():
            out.append(Difference(path.name, "", "", "present", "missing", f"table missing from {actual_dir}"))
            continue
        out += compare_tables(path.stem, read_table(path), read_table(other), tolerance)
    return out


def report(differences: list[Difference], expected_dir: Path, actual_dir: Path, tolerance: float,
           stream=None) -> None:
    stream = stream or sys.stdout
    files = table_files(expected_dir)
    print(f"Compared {len(files)} tables of {expected_dir} with {actual_dir} "
          f"(numbers within {tolerance:g}; counts and text exactly; t and p not compared).", file=stream)
    if not differences:
        print("OK: every table agrees.", file=stream)
        return
    tables = sorted({d.table for d in differences})
    print(f"{len(differences)} differences in {len(tables)} tables ({', '.join(tables)}):", file=stream)
    for diff in differences:
        print(f"  {diff}", file=stream)


def _default_profile(results: Path) -> str:
    from .config import PROFILE_DIR

    name = Path(results).resolve().name
    return name if (PROFILE_DIR / f"{name}.yaml").is_file() else "ml100k"


def run_and_collect(profile: str, overrides: dict, reports: Path | None, cold: bool) -> Path:
    """Run the whole study into ``reports`` (a temp folder if None); return its results folder."""
    from .study import run_study

    reports = Path(reports) if reports else Path(tempfile.mkdtemp(prefix="sid-verify-"))
    if cold:
        os.environ["SID_DATA_ROOT"] = tempfile.mkdtemp(prefix="sid-verify-data-")
        print(f"cold run: SID_DATA_ROOT={os.environ['SID_DATA_ROOT']}")
    results = reports / "results"
    run_study(profile, overrides, None, reports, results)
    return results


def main(argv: list[str] | None = None, prog: str = "python -m helpers.verify") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, required=True,
                        help="the committed results folder with the expected tables, e.g. results/ml100k")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--against", type=Path, help="a finished run's results folder to check")
    source.add_argument("--run", action="store_true", help="rerun the study (notebooks 01-06), then check it")
    parser.add_argument("--reports", type=Path,
                        help="a finished run's reports folder (its results/ subfolder is checked); with --run, "
                             "where the rerun writes (default: a temporary folder)")
    parser.add_argument("--profile", help="profile to rerun (default: the results folder's name, else ml100k)")
    parser.add_argument("--set", dest="assignments", action="append", default=[],
                        help="parameter override for --run, as in helpers.study (repeatable)")
    parser.add_argument("--cold", action="store_true",
                        help="with --run: use an empty temporary SID_DATA_ROOT (nothing cached is reused)")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE,
                        help=f"absolute tolerance on numbers (default {TOLERANCE})")
    # --reports alone (no --against/--run) names a finished run: allow it by relaxing the group
    args_list = list(sys.argv[1:] if argv is None else argv)
    if "--reports" in args_list and "--run" not in args_list and "--against" not in args_list:
        at = args_list.index("--reports")
        if at + 1 < len(args_list):
            args_list += ["--against", str(Path(args_list[at + 1]) / "results")]
    args = parser.parse_args(args_list)

    expected = args.results
    if not expected.is_dir() or not table_files(expected):
        print(f"error: {expected} is not a results folder with CSV tables.", file=sys.stderr)
        return 2
    if args.run:
        import logging

        from .config import parse_assignments
        from .errors import StudyError

        logging.basicConfig(level=logging.INFO, format="%(message)s")

        try:
            actual = run_and_collect(args.profile or _default_profile(expected),
                                     parse_assignments(args.assignments), args.reports, args.cold)
        except StudyError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    else:
        actual = args.against
    if not Path(actual).is_dir():
        print(f"error: {actual} is not a folder (a finished run's results, e.g. reports/<profile>/results).",
              file=sys.stderr)
        return 2
    differences = compare_folders(expected, actual, args.tolerance)
    report(differences, expected, actual, args.tolerance)
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
