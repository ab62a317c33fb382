"""Natural-language queries per item: ``per_item`` train queries and as many test paraphrases.

Two generators behind one interface (``generate_queries``):

* ``template`` (default, offline, deterministic per seed): each item has *aspects* (genres, era,
  mood, rating, popularity, audience, themes). Query pair ``p`` picks an aspect plan; the train
  query renders it with vocabulary/template set A, the test query paraphrases it with set B:
  different words and sentence structure, same meaning. Genres are the exception by default
  (``paraphrase_genres: name``): the paper's prompt asks every query, paraphrases included, to
  "contain broad topics, themes and genres of the movie", so a paraphrase names the genre
  ("horror") where its train query may say "scary"; ``synonym`` paraphrases genres too
  ("frightening"), which leaves a test query almost no word in common with the train queries.
  Queries never contain a word of the item's own title (checked token by token), as the paper's
  prompt asks.
* ``llm``: the paper's prompt (footnote 1) sent to an OpenAI-compatible endpoint; see
  :mod:`helpers.data.llm_queries`.

Output columns: query_id, item_id, split (train|test), pair, text.
"""
from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import PARAPHRASE_GENRES
from ..errors import DataError

GENERATORS = ("template", "llm")

# Each entry: (vocabulary A for train queries, vocabulary B for test paraphrases).
GENRE_WORDS = {
    "Action": (["action", "action-packed"], ["high-octane", "adrenaline-fuelled"]),
    "Adventure": (["adventure", "swashbuckling"], ["adventurous", "epic quest"]),
    "Animation": (["animated", "cartoon"], ["animation", "toon"]),
    "Children's": (["kids", "children's"], ["family-friendly", "child-friendly"]),
    "Children": (["kids", "children's"], ["family-friendly", "child-friendly"]),
    "Comedy": (["comedy", "funny"], ["comedic", "hilarious"]),
    "Crime": (["crime", "gangster"], ["criminal underworld", "cops-and-robbers"]),
    "Documentary": (["documentary", "real-life"], ["non-fiction", "factual"]),
    "Drama": (["drama", "dramatic"], ["character-driven", "serious"]),
    "Fantasy": (["fantasy", "magical"], ["fantastical", "sword-and-sorcery"]),
    "Film-Noir": (["film noir", "noir"], ["hard-boiled", "shadowy detective"]),
    "Horror": (["horror", "scary"], ["frightening", "spine-chilling"]),
    "Musical": (["musical", "song-and-dance"], ["singing", "showtune"]),
    "Mystery": (["mystery", "whodunit"], ["puzzling", "sleuthing"]),
    "Romance": (["romance", "romantic"], ["love story", "date-night"]),
    "Sci-Fi": (["sci-fi", "science fiction"], ["futuristic", "space-age"]),
    "Thriller": (["thriller", "suspense"], ["nail-biting", "edge-of-your-seat"]),
    "War": (["war", "wartime"], ["battlefield", "military"]),
    "Western": (["western", "cowboy"], ["wild west", "frontier"]),
    "IMAX": (["IMAX", "big-screen"], ["large-format", "giant-screen"]),
}
MOOD_WORDS = {
    "Comedy": (["lighthearted", "feel-good"], ["cheerful", "upbeat"]),
    "Horror": (["creepy", "dark"], ["eerie", "sinister"]),
    "Drama": (["moving", "emotional"], ["touching", "heartfelt"]),
    "Romance": (["sweet", "heartwarming"], ["tender", "charming"]),
    "Thriller": (["tense", "gripping"], ["suspenseful", "intense"]),
    "Action": (["exciting", "explosive"], ["thrilling", "fast-paced"]),
    "Children's": (["wholesome", "playful"], ["innocent", "whimsical"]),
    "Children": (["wholesome", "playful"], ["innocent", "whimsical"]),
    "Animation": (["colourful", "playful"], ["vivid", "whimsical"]),
    "Crime": (["gritty", "violent"], ["hard-hitting", "brutal"]),
    "War": (["harrowing", "grim"], ["sobering", "bleak"]),
    "Sci-Fi": (["mind-bending", "imaginative"], ["visionary", "cerebral"]),
    "Mystery": (["intriguing", "twisty"], ["enigmatic", "baffling"]),
    "Fantasy": (["enchanting", "dreamlike"], ["otherworldly", "spellbinding"]),
    "Film-Noir": (["moody", "cynical"], ["brooding", "world-weary"]),
    "Western": (["rugged", "dusty"], ["gritty frontier", "sun-baked"]),
    "Musical": (["joyful", "toe-tapping"], ["melodic", "uplifting"]),
    "Documentary": (["eye-opening", "informative"], ["revealing", "insightful"]),
    "Adventure": (["rousing", "daring"], ["bold", "spirited"]),
}
# A genre as a paraphrase names it (``paraphrase_genres: name``): MovieLens's label, lower case.
GENRE_NAMES = {"Film-Noir": "film noir", "Children": "children's", "IMAX": "IMAX"}
DEFAULT_MOOD = (["entertaining", "engaging"], ["enjoyable", "absorbing"])
QUALITY_WORDS = {
    ("rating", "high"): (["highly rated", "acclaimed"], ["well-reviewed", "much-loved"]),
    ("rating", "low"): (["poorly rated", "badly reviewed"], ["panned", "low-rated"]),
    ("popularity", "hit"): (["popular", "blockbuster"], ["widely seen", "mainstream"]),
    ("popularity", "obscure"): (["little-known", "obscure"], ["lesser-known", "under-the-radar"]),
}
DECADE_WORDS = {1900: "nineteen-hundreds", 1910: "teens", 1920: "twenties", 1930: "thirties", 1940: "forties",
                1950: "fifties", 1960: "sixties", 1970: "seventies", 1980: "eighties", 1990: "nineties",
                2000: "two-thousands", 2010: "twenty-tens", 2020: "twenty-twenties"}
NOUNS = (["movie", "film"], ["picture", "flick"])

# Templates per aspect plan: (train templates, test templates). Slots: {mood} {genre} {genre2}
# {noun} {nouns} {era} {quality} {audience} {theme}.
PLANS = {
    "genre_era": (["{genre} {noun} {era}", "{mood} {genre} {noun} {era}"],
                  ["looking for a {genre} {noun}, {era}", "any {genre} {nouns} {era}?"]),
    "mood_genre": (["{mood} {genre} {noun}", "a {mood} {genre} {noun}"],
                   ["something {mood} and {genre}", "I want to watch a {mood} {genre} {noun}"]),
    "two_genres": (["{genre} {genre2} {noun}", "{genre} and {genre2} {noun}"],
                   ["a {noun} that mixes {genre} with {genre2}", "something both {genre2} and {genre}"]),
    "quality": (["{quality} {genre} {noun}", "{quality} {genre} {noun} {era}"],
                ["recommend a {quality} {genre} {noun}", "which {genre} {nouns} are {quality}?"]),
    "audience": (["{genre} {noun} popular with {audience}", "{mood} {noun} {audience} like"],
                 ["what {genre} {nouns} do {audience} enjoy", "a {noun} that {audience} love, {genre}"]),
    "theme": (["{genre} {noun} about {theme}", "{noun} about {theme}"],
              ["something involving {theme}", "a {genre} {noun} dealing with {theme}"]),
    "era_mood": (["{mood} {noun} {era}", "{mood} {genre} {noun} {era}"],
                 ["{mood} {nouns}, {era}", "show me {mood} {nouns} {era}"]),
}
_STOP = {"the", "and", "for", "with", "from", "that", "this", "are", "its", "not", "but", "you", "what"}


def title_tokens(title: str) -> set[str]:
    """Content words of a title: lower-case, possessives stripped, length >= 3, no stop words."""
    words = re.findall(r"[a-z0-9]+", title.lower().replace("'s", ""))
    return {w for w in words if len(w) >= 3 and w not in _STOP}


def contains_title(query: str, title: str) -> bool:
    return bool(title_tokens(title) & set(re.findall(r"[a-z0-9]+", query.lower().replace("'s", ""))))


def _era_words(year: int | None) -> tuple[list[str], list[str]]:
    if year is None:
        return ["of any era"], ["from whenever"]
    decade = year // 10 * 10
    part = "early" if year % 10 <= 3 else "mid" if year % 10 <= 6 else "late"
    word = DECADE_WORDS.get(decade, f"{decade}s")
    train = [f"from the {decade}s", f"released in {year}"] + (["classic"] if year < 1970 else [])
    test = [f"made in the {part} {word}", f"from around {year}"] + (["old-time vintage"] if year < 1970 else [])
    return train, test


def genre_name(genre: str) -> str:
    return GENRE_NAMES.get(genre, genre.lower())


def item_aspects(title: str, year, genres: list[str], facts: list[tuple[str, str]], themes: list[str],
                 paraphrase_genres: str = "name") -> dict:
    """Aspect vocabularies of one item: each value is (train options, test options)."""
    year = int(year) if year is not None and not pd.isna(year) else None
    aspects: dict = {"era": _era_words(year), "noun": NOUNS}
    known = [g for g in genres if g in GENRE_WORDS]
    other = [g for g in genres if g not in GENRE_WORDS]
    if paraphrase_genres == "name":
        aspects["genres"] = [(GENRE_WORDS[g][0], [genre_name(g)]) for g in known]
    else:
        aspects["genres"] = [GENRE_WORDS[g] for g in known]
    aspects["genres"] += [([g.lower()], [g.lower()]) for g in other]
    moods = [MOOD_WORDS[g] for g in known if g in MOOD_WORDS] or [DEFAULT_MOOD]
    aspects["mood"] = (sum((m[0] for m in moods), []), sum((m[1] for m in moods), []))
    qualities = [QUALITY_WORDS[f] for f in facts if f in QUALITY_WORDS]
    if qualities:
        aspects["quality"] = (sum((q[0] for q in qualities), []), sum((q[1] for q in qualities), []))
    audiences = [value for kind, value in facts if kind == "audience"]
    if audiences:
        aspects["audience"] = (audiences, audiences)
    if themes:
        aspects["theme"] = (list(themes), list(themes))
    return aspects


def _plans_for(aspects: dict) -> list[str]:
    plans = ["genre_era", "mood_genre", "era_mood"] if aspects["genres"] else ["era_mood"]
    if len(aspects["genres"]) >= 2:
        plans.append("two_genres")
    for optional in ("quality", "audience", "theme"):
        if optional in aspects:
            plans.append(optional)
    return plans


def _choose(aspects: dict, rng: np.random.Generator) -> dict:
    """Pick one option index per slot. Vocabularies A and B are parallel lists, so rendering the
    same choice on both sides gives a train query and its paraphrase with the same meaning."""
    genres = aspects["genres"] or [(["movie"], ["movie"])]
    order = rng.permutation(len(genres))
    choice = {"genre": (int(order[0]), int(rng.integers(len(genres[order[0]][0])))),
              "genre2": (int(order[1 % len(order)]), int(rng.integers(len(genres[order[1 % len(order)]][0]))))}
    for slot in ("noun", "mood", "era", "quality", "audience", "theme"):
        if slot in aspects:
            choice[slot] = int(rng.integers(len(aspects[slot][0])))
    return choice


def _render(template: str, aspects: dict, side: int, choice: dict) -> str:
    genres = aspects["genres"] or [(["movie"], ["movie"])]
    slots = {slot: aspects[slot][side][index] for slot, index in choice.items() if slot not in ("genre", "genre2")}
    for slot in ("genre", "genre2"):
        which, index = choice[slot]
        options = genres[which][side]
        slots[slot] = options[index % len(options)]
    slots["nouns"] = slots["noun"] + "s"
    text = re.sub(r"\s+", " ", template.format(**slots)).strip()
    return re.sub(r"\b([Aa]) (?=[aeiouAEIOU])", r"\1n ", text)  # "a upbeat" -> "an upbeat"


def template_queries(items: pd.DataFrame, facts: list[list[tuple[str, str]]], per_item: int, seed: int,
                     paraphrase_genres: str = "name") -> pd.DataFrame:
    """Deterministic template queries: per item ``per_item`` train queries + paraphrases."""
    if paraphrase_genres not in PARAPHRASE_GENRES:
        raise DataError(f"Unknown data.queries.paraphrase_genres {paraphrase_genres!r}. "
                        f"Choose one of: {', '.join(PARAPHRASE_GENRES)}.")
    rows = []
    for item in items.itertuples(index=False):
        # a per-item stream, so adding items never changes another item's queries
        rng = np.random.default_rng([seed, zlib.crc32(str(item.source_id).encode())])
        aspects = item_aspects(item.title, item.year, list(item.genres), facts[item.item_id], list(item.themes),
                               paraphrase_genres)
        plans = _plans_for(aspects)
        seen: set[str] = set()
        pairs: list[tuple[str, str]] = []
        attempts = 0
        while len(pairs) < per_item:
            attempts += 1
            plan = plans[len(pairs) % len(plans)] if attempts <= per_item else plans[int(rng.integers(len(plans)))]
            train_t, test_t = PLANS[plan]
            choice = _choose(aspects, rng)
            train = _render(train_t[int(rng.integers(len(train_t)))], aspects, 0, choice)
            test = _render(test_t[int(rng.integers(len(test_t)))], aspects, 1, choice)
            clean = not contains_title(train, item.title) and not contains_title(test, item.title)
            if clean and (train not in seen or attempts > 40 * per_item) and train != test:
                seen.add(train)
                pairs.append((train, test))
            elif attempts > 80 * per_item:
                raise DataError(f"Could not write {per_item} title-free queries for item {item.source_id} "
                                f"({item.title!r}); lower data.queries.per_item.")
        for pair, (train, test) in enumerate(pairs):
            rows.append((int(item.item_id), "train", pair, train))
            rows.append((int(item.item_id), "test", pair, test))
    return _frame(rows)


def paraphrase_overlap(queries: pd.DataFrame) -> float:
    """Mean word Jaccard between each train query and its test paraphrase (same item and pair).

    0 means a paraphrase shares no word with the query it paraphrases; a measure of how much a
    model must know about synonyms to find the item from the paraphrase.
    """
    words = lambda text: set(re.findall(r"[a-z0-9'-]+", text.lower()))  # noqa: E731
    by_pair = queries.pivot_table(index=["item_id", "pair"], columns="split", values="text", aggfunc="first")
    if not {"train", "test"} <= set(by_pair.columns):
        return float("nan")
    by_pair = by_pair.dropna(subset=["train", "test"])
    scores = [len(words(a) & words(b)) / max(1, len(words(a) | words(b)))
              for a, b in zip(by_pair["train"], by_pair["test"])]
    return float(np.mean(scores)) if scores else float("nan")


def _frame(rows: list[tuple[int, str, int, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["item_id", "split", "pair", "text"])
    frame = frame.sort_values(["split", "item_id", "pair"], key=lambda c: c.map({"train": 0, "test": 1}) if c.name == "split" else c,
                              kind="stable").reset_index(drop=True)
    frame.insert(0, "query_id", np.arange(len(frame), dtype=np.int64))
    frame["item_id"] = frame["item_id"].astype(np.int64)
    frame["pair"] = frame["pair"].astype(np.int64)
    return frame


def generate_queries(items: pd.DataFrame, facts: list[list[tuple[str, str]]], params: dict,
                     cache_dir: Path | None = None) -> pd.DataFrame:
    """Dispatch to the configured generator (``params`` is the profile's ``data.queries``)."""
    generator = params["generator"]
    if generator == "template":
        return template_queries(items, facts, params["per_item"], params["seed"],
                                params["paraphrase_genres"])
    if generator == "llm":
        from .llm_queries import LLMQueryGenerator

        generator = LLMQueryGenerator.from_env(params, cache_dir, concurrency=params.get("llm_concurrency"))
        pairs = generator.generate(items, facts)
        rows = [(item_id, split, pair, text) for item_id, (train, test) in pairs.items()
                for split, texts in (("train", train), ("test", test)) for pair, text in enumerate(texts)]
        frame = _frame(rows)
        frame.attrs["query_summary"] = generator.summary  # asked, cached, retried, fallen back: for the manifest
        return frame
    raise DataError(f"Unknown data.queries.generator '{generator}'. Choose one of: {', '.join(GENERATORS)}.")
