"""A second search test set, written by people: one free-text query per film, no titles.

The template paraphrases of notebook 01 are a narrow stand-in for what users type; these queries
describe a film the way a person would ("a space opera with a farm boy and an evil empire"): by
its plot, its theme or setting, the people in it, or its mood. They are never trained on; every
construction, the dense references and the baselines are scored on them in notebook 05.

A query set is a CSV file, shipped in ``helpers/data/human_queries/<name>.csv`` (``ml100k``: films
of MovieLens-100k across the popularity range) or anywhere on disk
(``evaluation.human_queries: path/to/file.csv``), with the header::

    source_id,title,query,kind

``source_id``  the film's id in the source data (``items.source_id``)
``title``      the catalogue's title of that film, copied exactly: it catches a wrong id
``query``      what a person would type, without the title (checked with the LLM generator's rule,
               :func:`helpers.data.llm_queries.leaks_title`)
``kind``       ``plot`` | ``theme`` | ``people`` | ``mood``

Films of the file that are not in a profile's catalogue (the smoke profile keeps the 150 most
popular films only) are left out, and :func:`load_human_queries` says how many remain.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ..errors import DataError
from .llm_queries import leaks_title

log = logging.getLogger(__name__)

SHIPPED = Path(__file__).parent / "human_queries"
COLUMNS = ["source_id", "title", "query", "kind"]
KINDS = ("plot", "theme", "people", "mood")
#: Columns of the frame :func:`load_human_queries` returns (``query_id`` = row number in that frame).
FRAME_COLUMNS = ["query_id", "item_id", "source_id", "title", "text", "kind"]


def shipped_sets() -> list[str]:
    return sorted(p.stem for p in SHIPPED.glob("*.csv"))


def human_queries_path(name: str | Path) -> Path:
    """The CSV of ``evaluation.human_queries``: a shipped set's name (``ml100k``) or a file path."""
    candidate = Path(str(name)).expanduser()
    if candidate.suffix == ".csv" or candidate.parent != Path("."):
        if not candidate.is_file():
            raise DataError(f"Human query file {candidate} does not exist. Give a CSV with columns "
                            f"{','.join(COLUMNS)}, or a shipped set: {', '.join(shipped_sets()) or 'none'}.")
        return candidate
    shipped = SHIPPED / f"{name}.csv"
    if not shipped.is_file():
        raise DataError(f"No shipped human query set named {name!r}; shipped: {', '.join(shipped_sets()) or 'none'}. "
                        "Pass a path to your own CSV, or set evaluation.human_queries: null to skip this test set.")
    return shipped


def read_human_queries(path: str | Path) -> pd.DataFrame:
    """The file's rows, validated on their own (columns, kinds, empty or repeated entries)."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype={"source_id": str, "title": str, "query": str, "kind": str},
                            keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"{path} is not a readable CSV: {err}") from err
    if list(frame.columns) != COLUMNS:
        raise DataError(f"{path} has columns {list(frame.columns)}; expected exactly {COLUMNS}.")
    if frame.empty:
        raise DataError(f"{path} holds no query.")
    for column in COLUMNS:
        blank = frame[column].str.strip() == ""
        if blank.any():
            raise DataError(f"{path}: {int(blank.sum())} row(s) with an empty {column} "
                            f"(first at line {int(blank.idxmax()) + 2}).")
    unknown = sorted(set(frame["kind"]) - set(KINDS))
    if unknown:
        raise DataError(f"{path}: unknown kind(s) {unknown}; use {', '.join(KINDS)}.")
    repeated = frame[frame.duplicated(["source_id", "query"])]
    if len(repeated):
        raise DataError(f"{path}: the query {repeated['query'].iloc[0]!r} appears twice for film "
                        f"{repeated['source_id'].iloc[0]}.")
    return frame


def load_human_queries(name: str | Path, items: pd.DataFrame) -> pd.DataFrame:
    """The query set ``name`` matched to a catalogue (``Dataset.items``): :data:`FRAME_COLUMNS`.

    Refuses a file whose title disagrees with the catalogue's title of the same ``source_id`` (a
    wrong id would score the query against another film) or whose query names the title. Rows
    for films the catalogue does not hold are dropped (logged); none left is an error.
    """
    path = human_queries_path(name)
    frame = read_human_queries(path)
    catalogue = items.assign(source_id=items["source_id"].astype(str)).set_index("source_id")
    known = frame["source_id"].isin(catalogue.index)
    if not known.any():
        raise DataError(f"None of the {len(frame)} films of {path} is in this catalogue ({len(items)} items): "
                        "the query set was written for another dataset.")
    if not known.all():
        log.info("%s: %d of %d queries are for films outside this catalogue and are left out",
                 path.name, int((~known).sum()), len(frame))
    frame = frame[known].reset_index(drop=True)
    expected = catalogue.loc[frame["source_id"], "title"].astype(str).to_numpy()
    wrong = frame["title"].str.strip().to_numpy() != pd.Series(expected).str.strip().to_numpy()
    if wrong.any():
        row = frame[wrong].iloc[0]
        raise DataError(f"{path}: film {row['source_id']} is titled {expected[wrong.argmax()]!r} in the catalogue, "
                        f"not {row['title']!r}; fix the source_id or the title ({int(wrong.sum())} such rows).")
    leaks = [leaks_title(q, t) for q, t in zip(frame["query"], frame["title"])]
    if any(leaks):
        row = frame[leaks].iloc[0]
        raise DataError(f"{path}: the query {row['query']!r} names its film's title {row['title']!r}; "
                        "human queries must describe a film without naming it.")
    return pd.DataFrame({
        "query_id": range(len(frame)),
        "item_id": catalogue.loc[frame["source_id"], "item_id"].to_numpy().astype("int64"),
        "source_id": frame["source_id"].to_numpy(),
        "title": frame["title"].to_numpy(),
        "text": frame["query"].str.strip().to_numpy(),
        "kind": frame["kind"].to_numpy(),
    }, columns=FRAME_COLUMNS)


def human_queries_for(cfg: dict, dataset) -> pd.DataFrame | None:
    """``evaluation.human_queries`` of the profile matched to ``dataset``, or None when it is null."""
    name = cfg["evaluation"].get("human_queries")
    if not name:
        return None
    return load_human_queries(name, dataset.items)
