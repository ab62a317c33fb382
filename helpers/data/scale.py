"""A synthetic catalogue shaped like MovieLens-25M, at any size, written as MovieLens CSV files.

The paper's data (MovieLens-25M: 62,423 movies, 59,047 of them rated, 162,541 users, 25,000,095
ratings, 1,093,360 tag applications, a tag genome of 1,128 tags over 13,816 movies; GroupLens's
README) cannot ship with the project. This module writes a folder with the same five files and
columns, so that the existing ``movielens_csv`` source reads it unchanged::

    python -m helpers.data.scale --items 62423 --out data/ml-25m-synthetic
    bash run.sh study --profile paper --set data.path=data/ml-25m-synthetic --set data.queries.generator=template

What is shaped like MovieLens-25M (``ScaleShape``; every count scales with ``n_items``):

* **users and ratings**: ``users_per_item`` = 162,541 / 62,423 = 2.6 users per catalogue item; a
  user's number of ratings is a shifted log-normal, ``20 + 50 * exp(1.403 * z)``: at least 20 (as
  MovieLens keeps only users with 20 or more ratings), median 70, mean 153.8 (25,000,095 /
  162,541), heavy right tail (LensKit's description of ML-25M fits a log-normal with shape 1.59
  and location 18.6 to it), capped at ``max_history_fraction`` = 32,202 / 59,047 of the rated
  items (ML-25M's most active user). That is about 400 ratings per catalogue item at full size.
* **item popularity**: Zipf-Mandelbrot weights ``(rank + offset) ** -exponent`` over the rated
  items (94.6% of the catalogue, as 59,047 / 62,423; ``offset`` = ``zipf_offset`` x rated items /
  59,047, so the curve over rank fractions is the same at every size), drawn without repetition
  per user, half of a user's draws from one favourite genre. The defaults give an item Gini of
  0.92 at full size (LensKit reports 0.942 for ML-25M's rated items) and a most-rated item that
  34% of the users rated.
* **time**: each user rates within a span inside ML-25M's window (1995-01-09 .. 2019-11-21); a
  user's items are in random order, with ties on the second possible (as in MovieLens).
* **text**: titles are made-up words (so a query can never contain a title word by accident),
  a year in the title, 1-4 of MovieLens's 19 genre labels (or ``(no genres listed)``), half-star
  ratings around a per-item quality, user tags concentrated on popular items (about 17.5 tag
  applications per item) from a vocabulary of theme phrases, and a tag genome (relevance of
  every one of ``genome_tags`` tags) for the most popular ``genome_fraction`` of the items.

Everything is a deterministic function of ``(n_items, seed, shape)``: each part draws from its
own random stream. It is data to measure speed and memory with; nothing in it is meant to be
learnt, although users' favourite genres and items' tags give the stages some signal.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

#: MovieLens-25M's counts (GroupLens README; the most active user's count from its ratings.csv).
ML25M = {"items": 62_423, "rated_items": 59_047, "users": 162_541, "ratings": 25_000_095,
         "tag_applications": 1_093_360, "genome_items": 13_816, "genome_tags": 1_128,
         "max_user_ratings": 32_202}
#: MovieLens's genre labels (ML-25M writes "Children"; IMAX came with the later releases).
GENRES = ("Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
          "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")
NO_GENRES = "(no genres listed)"
#: Relative genre frequencies, chosen to resemble MovieLens (drama and comedy common, noir and IMAX rare).
GENRE_WEIGHTS = (7.3, 4.1, 2.9, 2.9, 16.8, 5.3, 5.6, 25.6, 2.7, 0.35, 5.9, 0.2, 1.0, 2.9, 7.7, 3.6, 8.6, 1.9, 1.4)
FILES = ("movies.csv", "ratings.csv", "tags.csv", "genome-tags.csv", "genome-scores.csv")

_THEMES = ("time travel", "heist", "revenge", "friendship", "robots", "small town", "high school", "space",
           "road trip", "family", "betrayal", "survival", "prison", "magic", "vampires", "zombies", "aliens",
           "artificial intelligence", "dystopia", "serial killer", "courtroom", "boxing", "music", "dance",
           "cooking", "sailing", "mountains", "desert", "jungle", "ocean", "winter", "christmas", "wedding",
           "divorce", "coming of age", "old age", "twins", "ghosts", "witches", "dragons", "pirates", "spies",
           "politics", "journalism", "medicine", "teachers", "gambling", "cars", "trains", "aviation",
           "submarines", "cold war", "world war", "revolution", "immigration", "poverty", "wealth",
           "addiction", "memory loss", "conspiracy")
_MODIFIERS = ("", "dark", "funny", "true story", "based on a book", "slow burn", "visually stunning", "quirky",
              "violent", "philosophical", "atmospheric", "satire", "cult", "underrated", "feel-good",
              "twist ending", "nonlinear", "great soundtrack", "strong female lead", "ensemble cast")
_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kl", "st", "tr", "vr")
_VOWELS = ("a", "e", "i", "o", "u", "ae", "ou")
_CODAS = ("", "", "n", "r", "l", "s", "th", "x")
#: ML-25M's window: 1995-01-09 .. 2019-11-21 (seconds since the epoch).
_FIRST_SECOND, _LAST_SECOND = 789_652_009, 1_574_327_703


@dataclass(frozen=True)
class ScaleShape:
    """How the synthetic data is shaped; the defaults follow MovieLens-25M (module docstring)."""

    users_per_item: float = ML25M["users"] / ML25M["items"]
    rated_fraction: float = ML25M["rated_items"] / ML25M["items"]
    history_min: int = 20
    history_median: float = 70.0
    history_mean: float = ML25M["ratings"] / ML25M["users"]
    max_history_fraction: float = ML25M["max_user_ratings"] / ML25M["rated_items"]
    zipf_exponent: float = 2.0
    zipf_offset: float = 300.0
    taste_share: float = 0.5
    tag_applications_per_item: float = ML25M["tag_applications"] / ML25M["items"]
    tags_per_item: int = 4
    genome_fraction: float = ML25M["genome_items"] / ML25M["items"]
    genome_tags: int = ML25M["genome_tags"]
    no_genre_fraction: float = 0.08
    genre_count_weights: tuple = (0.45, 0.33, 0.16, 0.06)  # 1, 2, 3, 4 genres


@dataclass
class ScaleData:
    """The five MovieLens frames (columns exactly as MovieLens writes them) and a summary."""

    movies: pd.DataFrame
    ratings: pd.DataFrame
    tags: pd.DataFrame
    genome_tags: pd.DataFrame
    genome_scores: pd.DataFrame
    summary: dict = field(default_factory=dict)

    def frames(self) -> dict[str, pd.DataFrame]:
        return dict(zip(FILES, (self.movies, self.ratings, self.tags, self.genome_tags, self.genome_scores)))


def _stream(seed: int, part: int) -> np.random.Generator:
    """An independent random stream per part, so changing one part never shifts another."""
    return np.random.default_rng([int(seed), int(part)])


# ---- vocabulary -------------------------------------------------------------------------------------
def tag_vocabulary(size: int) -> list[str]:
    """``size`` distinct theme phrases ('time travel', 'dark heist', ...), deterministic."""
    phrases = [f"{m} {t}".strip() if m else t for m in _MODIFIERS for t in _THEMES]
    if size > len(phrases):
        raise ValueError(f"At most {len(phrases)} tags can be made, asked for {size}.")
    return phrases[:size]


def _forbidden_words(tags: list[str]) -> set[str]:
    """Every word a template query can contain: a title must share none of them."""
    import re

    from . import queries as q

    texts: list[str] = list(tags)
    for table in (q.GENRE_WORDS, q.MOOD_WORDS, q.QUALITY_WORDS):
        for train, test in table.values():
            texts += train + test
    texts += [w for side in q.NOUNS + q.DEFAULT_MOOD for w in side] + list(q.DECADE_WORDS.values())
    texts += [t for plan in q.PLANS.values() for side in plan for t in side]
    texts += ["early mid late classic vintage old-time any era whenever released made around from"]
    return {w for text in texts for w in re.findall(r"[a-z0-9]+", text.lower())}


def _titles(rng: np.random.Generator, n: int, forbidden: set[str]) -> list[str]:
    """Made-up titles of 1-3 words, 8% with MovieLens's trailing article ('Vorak, The')."""
    def word() -> str:
        while True:
            syllables = int(rng.integers(2, 4))
            w = "".join(_ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))]
                        for _ in range(syllables)) + _CODAS[rng.integers(len(_CODAS))]
            if w not in forbidden:
                return w.capitalize()

    n_words = rng.choice([1, 2, 3], size=n, p=[0.35, 0.45, 0.2])
    article = rng.random(n) < 0.08
    return [" ".join(word() for _ in range(k)) + (", The" if a else "") for k, a in zip(n_words, article)]


# ---- the parts --------------------------------------------------------------------------------------
def _movies(n_items: int, seed: int, shape: ScaleShape, forbidden: set[str]) -> tuple[pd.DataFrame, list[np.ndarray]]:
    rng = _stream(seed, 1)
    titles = _titles(rng, n_items, forbidden)
    years = np.clip(2019 - np.floor(rng.exponential(22.0, n_items)).astype(int), 1902, 2019)
    has_year = rng.random(n_items) >= 0.005
    p = np.asarray(GENRE_WEIGHTS) / np.sum(GENRE_WEIGHTS)
    how_many = np.asarray(shape.genre_count_weights) / sum(shape.genre_count_weights)
    counts = rng.choice(np.arange(1, len(how_many) + 1), size=n_items, p=how_many)
    none = rng.random(n_items) < shape.no_genre_fraction
    genre_sets: list[np.ndarray] = []
    labels = []
    for k, empty in zip(counts, none):
        chosen = np.sort(rng.choice(len(GENRES), size=int(k), replace=False, p=p)) if not empty else np.zeros(0, int)
        genre_sets.append(chosen)
        labels.append("|".join(GENRES[g] for g in chosen) if len(chosen) else NO_GENRES)
    movies = pd.DataFrame({
        "movieId": np.arange(1, n_items + 1, dtype=np.int64),
        "title": [f"{t} ({y})" if h else t for t, y, h in zip(titles, years, has_year)],
        "genres": labels,
    })
    return movies, genre_sets


def history_lengths(n_users: int, n_rated: int, seed: int, shape: ScaleShape) -> np.ndarray:
    """Ratings per user: ``min + scale * exp(sigma * z)`` with the shape's median and mean, capped."""
    rng = _stream(seed, 2)
    scale = shape.history_median - shape.history_min
    sigma = float(np.sqrt(2 * np.log((shape.history_mean - shape.history_min) / scale)))
    lengths = shape.history_min + np.floor(scale * np.exp(sigma * rng.standard_normal(n_users))).astype(np.int64)
    cap = max(3, int(shape.max_history_fraction * n_rated))
    return np.clip(lengths, min(shape.history_min, cap), cap)


def _popularity(n_items: int, seed: int, shape: ScaleShape) -> tuple[np.ndarray, np.ndarray]:
    """(rated item indices in popularity order, their normalised draw weights)."""
    rng = _stream(seed, 3)
    n_rated = max(1, int(round(shape.rated_fraction * n_items)))
    by_rank = rng.permutation(n_items)[:n_rated]
    offset = shape.zipf_offset * n_rated / ML25M["rated_items"]  # the same curve over rank fractions at any size
    weights = (np.arange(1, n_rated + 1) + offset) ** -shape.zipf_exponent
    return by_rank, weights / weights.sum()


def _sample_histories(lengths: np.ndarray, taste: np.ndarray, by_rank: np.ndarray, weights: np.ndarray,
                      genre_sets: list[np.ndarray], seed: int, shape: ScaleShape) -> tuple[np.ndarray, np.ndarray]:
    """(user, item) rows: each user's ``lengths[u]`` distinct items, drawn without repetition.

    A user's draws come with probability ``taste_share`` from their favourite genre's items and
    otherwise from the whole catalogue, both by popularity. Most users take the first distinct
    items of an i.i.d. stream of such draws (drawn in vectorised rounds); users who need a large
    part of the catalogue use the Efraimidis-Spirakis keys instead (exact, O(items) per user).
    """
    rng = _stream(seed, 4)
    n_users, n_rated = len(lengths), len(by_rank)
    cdf = np.cumsum(weights)
    member = np.zeros((n_rated, len(GENRES)), dtype=bool)
    for rank, item in enumerate(by_rank):
        member[rank, genre_sets[item]] = True
    in_genre = [np.flatnonzero(member[:, g]) for g in range(len(GENRES))]
    genre_cdf = [np.cumsum(weights[idx]) / weights[idx].sum() if len(idx) else None for idx in in_genre]
    share = np.array([shape.taste_share if genre_cdf[g] is not None else 0.0 for g in range(len(GENRES))])

    def draw(users: np.ndarray) -> np.ndarray:
        """One draw (a popularity rank) per entry of ``users``."""
        ranks = np.searchsorted(cdf, rng.random(len(users)) * cdf[-1]).clip(max=n_rated - 1)
        from_genre = rng.random(len(users)) < share[taste[users]]
        for g in np.unique(taste[users][from_genre]):
            rows = np.flatnonzero(from_genre & (taste[users] == g))
            pick = np.searchsorted(genre_cdf[g], rng.random(len(rows))).clip(max=len(in_genre[g]) - 1)
            ranks[rows] = in_genre[g][pick]
        return ranks

    heavy = lengths > max(30, 0.05 * n_rated)
    todo = np.flatnonzero(~heavy)
    kept_users, kept_ranks = np.zeros(0, np.int64), np.zeros(0, np.int64)
    factor = 1.3
    for _ in range(6):  # stream rounds; a user keeps the first distinct items of their draws
        if len(todo) == 0:
            break
        need = lengths[todo] - np.bincount(kept_users, minlength=n_users)[todo]
        new_users = np.repeat(todo, np.ceil(need * factor).astype(np.int64) + 4)
        users = np.concatenate([kept_users, new_users])
        ranks = np.concatenate([kept_ranks, draw(new_users)])
        _, first = np.unique(users * n_rated + ranks, return_index=True)
        first.sort()  # earlier draws first: rows kept in earlier rounds stay ahead of this round's
        users, ranks = users[first], ranks[first]
        order = np.argsort(users, kind="stable")
        users, ranks = users[order], ranks[order]
        position = np.arange(len(users)) - np.searchsorted(users, users)
        keep = position < lengths[users]
        kept_users, kept_ranks = users[keep], ranks[keep]
        todo = np.flatnonzero((np.bincount(kept_users, minlength=n_users) < lengths) & ~heavy)
        factor *= 2
    complete = ~np.isin(kept_users, todo)
    users_out, ranks_out = [kept_users[complete]], [kept_ranks[complete]]
    slow = np.concatenate([np.flatnonzero(heavy), todo])
    for g in np.unique(taste[slow]):
        mix = (1 - share[g]) * weights
        if share[g] > 0:
            mix[in_genre[g]] += share[g] * np.diff(np.concatenate([[0.0], genre_cdf[g]]))
        for user in slow[taste[slow] == g]:  # Efraimidis-Spirakis: the k largest log(u) / w
            keys = np.log(rng.random(n_rated)) / mix
            top = np.argpartition(-keys, lengths[user] - 1)[: lengths[user]]
            users_out.append(np.full(len(top), user, dtype=np.int64))
            ranks_out.append(top.astype(np.int64))
    return np.concatenate(users_out), by_rank[np.concatenate(ranks_out)]


def _ratings(n_items: int, seed: int, shape: ScaleShape,
             genre_sets: list[np.ndarray]) -> tuple[pd.DataFrame, np.ndarray]:
    by_rank, weights = _popularity(n_items, seed, shape)
    n_users = max(1, int(round(shape.users_per_item * n_items)))
    lengths = history_lengths(n_users, len(by_rank), seed, shape)
    rng = _stream(seed, 5)
    p = np.asarray(GENRE_WEIGHTS) / np.sum(GENRE_WEIGHTS)
    taste = rng.choice(len(GENRES), size=n_users, p=p)
    users, items = _sample_histories(lengths, taste, by_rank, weights, genre_sets, seed, shape)
    # time: a start in ML-25M's window and a log-normal span (median ~60 days); random order within it
    rng = _stream(seed, 6)
    start = rng.integers(_FIRST_SECOND, _LAST_SECOND - 86_400, size=n_users)
    span = np.minimum(np.exp(rng.normal(np.log(60 * 86_400), 2.0, n_users)), _LAST_SECOND - start).astype(np.int64)
    timestamps = start[users] + (rng.random(len(users)) * (span[users] + 1)).astype(np.int64)
    quality = rng.normal(0.0, 0.45, n_items)
    stars = np.clip(np.round((3.55 + quality[items] + rng.normal(0.0, 0.95, len(items))) * 2) / 2, 0.5, 5.0)
    order = np.lexsort((items, users))  # MovieLens's ratings.csv is sorted by user, then movie
    ratings = pd.DataFrame({"userId": users[order] + 1, "movieId": items[order] + 1,
                            "rating": stars[order].astype(np.float64), "timestamp": timestamps[order]})
    popularity = np.bincount(items, minlength=n_items)
    return ratings, popularity


def _tags(n_items: int, n_users: int, popularity: np.ndarray, vocabulary: list[str], seed: int,
          shape: ScaleShape) -> tuple[pd.DataFrame, np.ndarray]:
    """User tags concentrated on popular items; each item's tags come from its own small profile."""
    rng = _stream(seed, 7)
    profiles = np.stack([rng.choice(len(vocabulary), size=shape.tags_per_item, replace=False) for _ in range(n_items)])
    reach = popularity.astype(np.float64) ** 0.75
    total = int(round(shape.tag_applications_per_item * n_items))
    counts = rng.multinomial(total, reach / reach.sum()) if reach.sum() > 0 else np.zeros(n_items, int)
    items = np.repeat(np.arange(n_items), counts)
    slot_p = 0.5 ** np.arange(1, shape.tags_per_item + 1)
    slots = rng.choice(shape.tags_per_item, size=len(items), p=slot_p / slot_p.sum())
    tag_ids = profiles[items, slots]
    tags = pd.DataFrame({"userId": rng.integers(1, n_users + 1, size=len(items)), "movieId": items + 1,
                         "tag": np.asarray(vocabulary, dtype=object)[tag_ids],
                         "timestamp": rng.integers(_FIRST_SECOND, _LAST_SECOND, size=len(items))})
    return tags.sort_values(["userId", "movieId", "timestamp"], kind="stable").reset_index(drop=True), profiles


def _genome(n_items: int, popularity: np.ndarray, profiles: np.ndarray, vocabulary: list[str], seed: int,
            shape: ScaleShape) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Relevance of every genome tag for the most popular items (high for the item's own tags)."""
    rng = _stream(seed, 8)
    n_tags = min(shape.genome_tags, len(vocabulary))
    n_genome = int(round(shape.genome_fraction * n_items))
    covered = np.sort(np.argsort(-popularity, kind="stable")[:n_genome])
    relevance = rng.beta(0.6, 6.0, size=(len(covered), n_tags))
    own = profiles[covered]
    rows = np.repeat(np.arange(len(covered)), own.shape[1])
    inside = own.reshape(-1) < n_tags
    relevance[rows[inside], own.reshape(-1)[inside]] = rng.uniform(0.6, 1.0, size=int(inside.sum()))
    scores = pd.DataFrame({"movieId": np.repeat(covered + 1, n_tags),
                           "tagId": np.tile(np.arange(1, n_tags + 1), len(covered)),
                           "relevance": np.round(relevance.reshape(-1), 5)})
    tags = pd.DataFrame({"tagId": np.arange(1, n_tags + 1), "tag": vocabulary[:n_tags]})
    return tags, scores


# ---- the whole folder -------------------------------------------------------------------------------
def make_movielens_scale(n_items: int, seed: int = 0, shape: ScaleShape | None = None) -> ScaleData:
    """The five MovieLens-25M-shaped frames for a catalogue of ``n_items`` movies (see module doc)."""
    if n_items < 10:
        raise ValueError(f"n_items must be at least 10, got {n_items}.")
    shape = shape or ScaleShape()
    vocabulary = tag_vocabulary(max(shape.genome_tags, 1))
    movies, genre_sets = _movies(n_items, seed, shape, _forbidden_words(vocabulary))
    ratings, popularity = _ratings(n_items, seed, shape, genre_sets)
    n_users = int(ratings["userId"].max())
    tags, profiles = _tags(n_items, n_users, popularity, vocabulary, seed, shape)
    genome_tags, genome_scores = _genome(n_items, popularity, profiles, vocabulary, seed, shape)
    data = ScaleData(movies, ratings, tags, genome_tags, genome_scores)
    data.summary = summarize(ratings, n_items)
    data.summary.update(n_items=n_items, seed=seed, shape=asdict(shape),
                        rows={name: len(frame) for name, frame in data.frames().items()})
    return data


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts (0: all equal, 1: one holds everything)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    if len(x) == 0 or x.sum() == 0:
        return 0.0
    ranks = np.arange(1, len(x) + 1)
    return float((2 * ranks - len(x) - 1) @ x / (len(x) * x.sum()))


def summarize(ratings: pd.DataFrame, n_items: int) -> dict:
    """The shape of a ratings frame: per-user and per-item counts, head share, Gini."""
    per_user = ratings.groupby("userId").size().to_numpy()
    per_item = np.bincount(ratings["movieId"].to_numpy() - 1, minlength=n_items)
    rated = per_item[per_item > 0]
    top = np.sort(per_item)[::-1][: max(1, int(round(0.01 * n_items)))]
    return {
        "users": int(len(per_user)), "ratings": int(len(ratings)), "rated_items": int(len(rated)),
        "ratings_per_user": {"min": int(per_user.min()), "median": float(np.median(per_user)),
                             "mean": round(float(per_user.mean()), 1), "max": int(per_user.max())},
        "ratings_per_item": round(len(ratings) / n_items, 1),
        "users_per_item": round(len(per_user) / n_items, 3),
        "top1pct_share": round(float(top.sum() / len(ratings)), 4),
        "item_gini_rated": round(gini(rated), 4),
        "most_rated_item_users_share": round(float(per_item.max() / len(per_user)), 4),
        "sum_history_squared": int((per_user.astype(np.int64) ** 2).sum()),
    }


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """MovieLens-style CSV: a bare header line, then the rows (text fields quoted), written by pyarrow
    (about 20x faster than pandas' writer at 25M rows)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    table = pa.Table.from_pandas(frame, preserve_index=False)
    with open(path, "wb") as out:
        out.write((",".join(frame.columns) + "\n").encode())
        pacsv.write_csv(table, out, write_options=pacsv.WriteOptions(include_header=False, quoting_style="needed"))


def write_movielens_scale(folder: str | Path, n_items: int, seed: int = 0, shape: ScaleShape | None = None) -> dict:
    """Write ``movies.csv``, ``ratings.csv``, ``tags.csv``, ``genome-tags.csv``, ``genome-scores.csv``
    into ``folder`` (created) and a ``scale.json`` summary; return the summary.

    ``data.source: movielens_csv`` with ``data.path: <folder>`` reads it (``helpers.data.movielens``).
    """
    started = time.time()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = make_movielens_scale(n_items, seed, shape)
    for name, frame in data.frames().items():
        write_csv(frame, folder / name)
    summary = {**data.summary, "bytes": {name: (folder / name).stat().st_size for name in FILES},
               "seconds": round(time.time() - started, 2)}
    (folder / "scale.json").write_text(json.dumps(summary, indent=2))
    log.info("wrote a %d-item MovieLens-shaped folder to %s in %.1f s", n_items, folder, summary["seconds"])
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.data.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=ML25M["items"], help="catalogue size (default: ML-25M's 62,423)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="folder to write the CSV files into")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    summary = write_movielens_scale(args.out, args.items, args.seed)
    print(json.dumps({k: v for k, v in summary.items() if k != "shape"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
