"""Queries from an LLM with the paper's prompt (footnote 1), over an OpenAI-compatible API.

Configure with environment variables (nothing is hard-coded, nothing is sent unless asked):

* ``SID_LLM_BASE_URL`` (e.g. ``http://localhost:8000/v1``; falls back to ``OPENAI_BASE_URL``);
* ``SID_LLM_API_KEY`` (falls back to ``OPENAI_API_KEY``; may be empty for local servers);
* ``SID_LLM_MODEL`` (or the profile's ``data.queries.llm_model``);
* ``SID_LLM_CONCURRENCY``: requests in flight at once (default ``DEFAULT_CONCURRENCY`` = 16). It
  changes only the speed, never the queries, so it is not part of the dataset's cache key.

Built for the paper's scale (62k MovieLens-25M movies):

* **Concurrent requests.** A bounded thread pool sends ``concurrency`` requests at a time; the
  result is in the order of the items whatever order the answers arrive in.
* **Transport retries.** HTTP 429, 408 and 5xx answers, timeouts and connection errors are retried
  with exponential backoff and jitter (``backoff_s * 2**attempt``, at most ``max_backoff_s``),
  honouring a ``Retry-After`` header; ``http_retries`` times, then the stage stops with a
  ``DataError`` (the endpoint is down: better stop than fill the dataset with fallbacks). Any
  other HTTP error (401, 404 for an unknown model, ...) stops it at once. Finished items are cached,
  so a rerun resumes where it stopped.
* **Bad answers never stop the stage.** A query pair (query + its paraphrase) that is empty or
  leaks the title (:func:`leaks_title`) is dropped, and only the missing pairs are asked for again
  (``llm_max_retries`` rounds); an unparseable answer counts as all pairs missing. An item still
  short after those rounds gets its template queries (:func:`helpers.data.queries.template_queries`,
  same seed as the template generator) and is counted as a fallback.
* **Disk cache.** Each item's outcome is stored under a hash of (model, first prompt), written
  atomically (a unique temporary file, then a rename), so a rerun sends nothing and concurrent
  writers never leave half a file. A fallback is cached as a marker, so reruns do not ask again
  (delete the cache file to retry that item) and re-derive the template queries for the run's seed.

After :meth:`LLMQueryGenerator.generate`, ``generator.summary`` holds the counts for the data
stage's manifest (they are also logged): ``items``; ``cached`` (answered from the disk cache) and
``asked`` (sent to the LLM); ``retried`` (asked again for dropped pairs); ``fallback`` (items whose
queries are template queries, cached fallbacks included) with up to ``SUMMARY_EXAMPLES`` of their
source ids; ``requests``, ``http_retries``, ``rejected_pairs`` and ``unparseable_answers``.
"""
from __future__ import annotations

import email.utils
import hashlib
import http.client
import json
import logging
import os
import random
import re
import tempfile
import threading
import time
import unicodedata
import urllib.error
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import pandas as pd
from tqdm.auto import tqdm

from ..errors import DataError
from .queries import GENRE_WORDS, MOOD_WORDS, NOUNS, template_queries

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 16
CONCURRENCY_ENV = "SID_LLM_CONCURRENCY"
#: Fallback source ids listed in the summary (the count covers all of them).
SUMMARY_EXAMPLES = 20

PAPER_PROMPT = (
    "Your task is to return a list with 10 queries for a given movie (title of the movie, year and description "
    "and tags) After generating the initial set of queries, you should also generate a list of the same size with "
    "paraphrased of the first queries. The paraphrased queries should be similar to the original queries, but with "
    "different words, structure and slight variations in the meaning. The queries should be realistic things that a "
    "user would ask to find the movie. The queries should be diverse and cover different aspects of the movie. The "
    "queries should not include the title of the movie, but be broader descriptions of the movie and its content. "
    "The queries should also contain broad topics, themes and genres of the movie. Movie: {METADATA}"
)
#: Appended so answers are machine-readable; the paper's wording above is unchanged.
FORMAT_HINT = ('\nAnswer with JSON only: {{"queries": [{n} strings], "paraphrases": [{n} strings]}}, '
               "where paraphrases[i] paraphrases queries[i].")
#: Appended when asking again for pairs that were dropped because they named the title.
AVOID_HINT = "\nEarlier queries were rejected for naming the movie: do not use {words}."

# ---- the title rule ------------------------------------------------------------------------------
#: Function words, sequel/part markers and fillers: never evidence of a title on their own.
STOP_WORDS = frozenset("""
a an the and or but nor of in on at to for from by with without into onto upon about above below over under
after before between through during against among within along across behind beyond around near off out up down
is are was were be been being am do does did done has have had having will would shall should can could may might
must i me my mine you your yours he him his she her hers it its we us our ours they them their theirs
this that these those there here who whom whose what which when where why how not no yes
all any some each every both either neither few many much more most other another such own same so than too very
just only also even still again ever never always once actually really quite rather now then
one two three ii iii iv v vi vii viii ix x xi xii part chapter episode vol volume vs versus oh
le la les el los las il lo der die das des du de di del et und y
""".split())
#: Words so common in film titles and in queries about films that they do not identify one.
FILM_WORDS = frozenset("""
movie movies film films cinema picture pictures flick flicks show series sequel story stories tale tales legend
life lives love man men woman women boy boys girl girls kid kids child children family friends day days night
nights time world home house city town king true real big little great good bad best last first final new old
young dark black white red american return returns revenge
""".split())


def _words(text: str) -> list[str]:
    """Lower-case ascii word tokens; accents folded, possessive 's dropped, hyphens split."""
    text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"['\u2019]s\b", "", text.replace("\u2019", "'"))
    return re.findall(r"[a-z0-9]+", text)


def common_vocabulary(genres: Iterable[str] = ()) -> frozenset[str]:
    """Words that never identify a title by themselves: :data:`STOP_WORDS`, :data:`FILM_WORDS`, the
    words of the catalogue's genre names (``genres``) and the project's genre and mood vocabulary
    (the words queries use for genres: "scary", "love story", "feel-good", ...)."""
    vocabulary = set(STOP_WORDS) | set(FILM_WORDS)
    phrases = list(genres) + list(GENRE_WORDS) + [w for side in NOUNS for w in side]
    for table in (GENRE_WORDS, MOOD_WORDS):
        phrases += [w for sides in table.values() for side in sides for w in side]
    for phrase in phrases:
        vocabulary.update(_words(phrase))
    return frozenset(vocabulary)


COMMON_WORDS = common_vocabulary()


def distinctive_words(title: str, common: frozenset[str] = COMMON_WORDS) -> set[str]:
    """Words of ``title`` that point at it: at least 3 characters, not all digits, not in ``common``.

    ``"Toy Story"`` -> ``{"toy"}``; ``"Scary Movie"`` -> ``set()``; ``"Horror Express"`` -> ``{"express"}``.
    """
    return {w for w in _words(title) if len(w) >= 3 and not w.isdigit() and w not in common}


def title_phrases(title: str) -> list[tuple[str, ...]]:
    """The title as word sequences: in full, the main title (before ``:`` or `` - ``), each also
    without a leading article or a trailing sequel number. A phrase made of one stop word only
    ("It", "Up", "Her") is left out: it cannot be told apart from the ordinary word."""
    main = re.split(r":| - | -- ", title, maxsplit=1)[0]
    phrases: set[tuple[str, ...]] = set()
    for text in {title, main}:
        words = _words(text)
        variants = [words]
        if words and words[0] in {"the", "a", "an"}:
            variants.append(words[1:])
        for variant in list(variants):
            if len(variant) > 1 and (variant[-1].isdigit() or variant[-1] in {"ii", "iii", "iv", "v", "vi"}):
                variants.append(variant[:-1])
        phrases.update(tuple(v) for v in variants if v)
    return sorted(p for p in phrases if not (len(p) == 1 and p[0] in STOP_WORDS))


def leaks_title(query: str, title: str, common: frozenset[str] = COMMON_WORDS) -> bool:
    """Whether ``query`` names the movie ``title``: it holds the title (or its main part) as a
    phrase, or one of the title's :func:`distinctive_words`. Pure; ``common`` is the vocabulary that
    does not count as distinctive (:func:`common_vocabulary` of the catalogue's genres).

    Genre and everyday words of a title are fine alone: for "Toy Story" the query "a story about
    friendship" passes but "a toy that comes alive" and "a movie like Toy Story" do not; for
    "Scary Movie" only the phrase "scary movie" is refused, not "a scary horror parody".
    """
    words = _words(query)
    if distinctive_words(title, common) & set(words):
        return True
    for phrase in title_phrases(title):
        n = len(phrase)
        if any(tuple(words[i:i + n]) == phrase for i in range(len(words) - n + 1)):
            return True
    return False


def avoid_words(title: str, common: frozenset[str] = COMMON_WORDS) -> list[str]:
    """What a resample prompt tells the model to avoid: the title's phrases and distinctive words."""
    return sorted({" ".join(p) for p in title_phrases(title)} | distinctive_words(title, common))


# ---- answers -------------------------------------------------------------------------------------
def parse_answer(content: str, n: int) -> tuple[list[str], list[str]]:
    """Extract (queries, paraphrases) from a chat answer; raise ValueError if impossible.

    Accepts JSON objects with two lists (any key names, e.g. queries/paraphrases), a JSON list of
    2n strings or of two lists, JSON inside ```code fences```, or two numbered lists in plain text.
    """
    text = re.sub(r"```(?:json)?", "", content).strip()
    candidates = [text] + re.findall(r"(\{.*\}|\[.*\])", text, flags=re.S)
    for candidate in candidates:
        try:
            data = json.loads(candidate)
        except (json.JSONDecodeError, TypeError):
            continue
        lists = None
        if isinstance(data, dict):
            lists = [v for v in data.values() if isinstance(v, list)]
        elif isinstance(data, list) and len(data) == 2 and all(isinstance(v, list) for v in data):
            lists = data
        elif isinstance(data, list) and len(data) == 2 * n:
            lists = [data[:n], data[n:]]
        if lists and len(lists) >= 2:
            first, second = [[str(q).strip() for q in lst] for lst in lists[:2]]
            if len(first) >= n and len(second) >= n:
                return first[:n], second[:n]
    numbered = [m.strip() for m in re.findall(r"^\s*\d+[.)]\s*(.+)$", text, flags=re.M)]
    if len(numbered) >= 2 * n:
        return numbered[:n], numbered[n:2 * n]
    raise ValueError(f"expected {n} queries and {n} paraphrases, could not parse: {content[:200]!r}")


# ---- transport -----------------------------------------------------------------------------------
RETRYABLE_STATUS = {408, 425, 429}
#: Longest ``Retry-After`` honoured (seconds); a longer one is cut to this.
MAX_RETRY_AFTER_S = 600.0


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent/invalid."""
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(attempt: int, base_s: float, cap_s: float, retry_after: float | None = None,
                  rng: random.Random | None = None) -> float:
    """Wait before retry ``attempt`` (0-based): ``Retry-After`` when the server gave one (at most
    :data:`MAX_RETRY_AFTER_S`), else ``base_s * 2**attempt`` capped at ``cap_s``, times a jitter in [0.5, 1]."""
    if retry_after is not None:
        return min(retry_after, MAX_RETRY_AFTER_S)
    jitter = (rng or random).uniform(0.5, 1.0)
    return min(cap_s, base_s * 2 ** attempt) * jitter


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class _Stopped(Exception):
    """Another item stopped the run; this worker gives up quietly."""


def _concurrency_from_env() -> int:
    raw = os.environ.get(CONCURRENCY_ENV, "").strip()
    if not raw:
        return DEFAULT_CONCURRENCY
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise DataError(f"{CONCURRENCY_ENV}={raw!r}: expected a whole number of requests in flight, at least 1.")
    return value


# ---- the generator -------------------------------------------------------------------------------
@dataclass
class LLMQueryGenerator:
    base_url: str
    model: str
    api_key: str = ""
    per_item: int = 10
    max_retries: int = 3          # rounds that ask again for dropped pairs (data.queries.llm_max_retries)
    cache_dir: Path | None = None
    timeout_s: float = 60.0       # per request
    backoff_s: float = 1.0        # first transport retry waits about this (doubling each time)
    concurrency: int | None = None  # None: $SID_LLM_CONCURRENCY, else DEFAULT_CONCURRENCY
    http_retries: int = 6         # transport retries per request before the stage stops
    max_backoff_s: float = 60.0
    seed: int = 0                 # for fallback template queries (data.queries.seed)
    paraphrase_genres: str = "name"
    temperature: float = 0.7
    summary: dict = field(default_factory=dict, init=False)

    def __post_init__(self):
        self.concurrency = _concurrency_from_env() if self.concurrency is None else int(self.concurrency)
        if self.concurrency < 1:
            raise DataError(f"LLM concurrency must be at least 1, got {self.concurrency}.")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._counts: dict = {}

    @classmethod
    def from_env(cls, params: dict, cache_dir: Path | None, concurrency: int | None = None) -> "LLMQueryGenerator":
        base = os.environ.get("SID_LLM_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
        model = params.get("llm_model") or os.environ.get("SID_LLM_MODEL")
        if not base or not model:
            raise DataError("The llm query generator needs SID_LLM_BASE_URL (an OpenAI-compatible /v1 URL) and "
                            "SID_LLM_MODEL (or data.queries.llm_model). Set them, or use generator: template.")
        key = os.environ.get("SID_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY") or ""
        return cls(base.rstrip("/"), model, key, params["per_item"], params.get("llm_max_retries", 3), cache_dir,
                   concurrency=concurrency, seed=params.get("seed", 0),
                   paraphrase_genres=params.get("paraphrase_genres", "name"))

    # -- prompts and cache
    def prompt(self, item, n: int | None = None, avoid: list[str] | None = None) -> str:
        text = PAPER_PROMPT.format(METADATA=item.text) + FORMAT_HINT.format(n=self.per_item if n is None else n)
        if avoid:
            text += AVOID_HINT.format(words=", ".join(f'"{w}"' for w in avoid))
        return text

    def _cache_path(self, prompt: str) -> Path | None:
        if self.cache_dir is None:
            return None
        digest = hashlib.sha256(f"{self.model}\n{prompt}".encode()).hexdigest()[:24]
        return Path(self.cache_dir) / f"{digest}.json"

    def _read_cache(self, path: Path | None) -> dict | None:
        if path is None or not path.is_file():
            return None
        try:
            entry = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if entry.get("fallback") is True:
            return entry
        train, test = entry.get("queries"), entry.get("paraphrases")
        if isinstance(train, list) and isinstance(test, list) and len(train) == len(test) == self.per_item:
            return entry
        return None

    @staticmethod
    def _write_cache(path: Path | None, entry: dict) -> None:
        """Atomic: a unique temporary file in the same folder, then a rename over the target."""
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(entry, handle)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- one request, with transport retries
    def _count(self, key: str, by: int = 1) -> None:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + by

    def _post(self, prompt: str) -> str:
        body = json.dumps({"model": self.model, "messages": [{"role": "user", "content": prompt}],
                           "temperature": self.temperature}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(f"{self.base_url}/chat/completions", data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            retry_after = retry_after_seconds(err.headers.get("Retry-After") if err.headers else None)
            if err.code in RETRYABLE_STATUS or err.code >= 500:
                raise _Retryable(f"HTTP {err.code}", retry_after) from err
            detail = err.read()[:300].decode(errors="replace") if err.fp else ""
            raise DataError(f"The LLM endpoint {self.base_url} refused the request with HTTP {err.code} "
                            f"{err.reason}: {detail!r}. Check SID_LLM_BASE_URL, SID_LLM_API_KEY and the model "
                            f"name {self.model!r}.") from err
        except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException, OSError) as err:
            raise _Retryable(f"{type(err).__name__}: {getattr(err, 'reason', err)}") from err
        try:
            content = json.loads(raw)["choices"][0]["message"]["content"]
        except (json.JSONDecodeError, KeyError, IndexError, TypeError) as err:
            raise ValueError(f"not a chat completion: {raw[:200]!r}") from err
        if not isinstance(content, str):
            raise ValueError(f"no text in the answer: {content!r}")
        return content

    def _ask(self, prompt: str) -> str:
        """One chat completion; transport failures retried with backoff, then DataError."""
        for attempt in range(self.http_retries + 1):
            if self._stop.is_set():
                raise _Stopped()
            self._count("requests")
            try:
                return self._post(prompt)
            except _Retryable as err:
                if attempt == self.http_retries:
                    raise DataError(f"The LLM endpoint {self.base_url} kept failing ({err}) after "
                                    f"{self.http_retries + 1} tries. Items answered so far are cached: "
                                    "rerun to resume.") from err
                self._count("http_retries")
                delay = backoff_delay(attempt, self.backoff_s, self.max_backoff_s, err.retry_after)
                if self._stop.wait(delay):
                    raise _Stopped() from err
        raise AssertionError("unreachable")

    # -- one item
    def _fallback(self, item, facts) -> tuple[list[str], list[str]]:
        row = pd.DataFrame({"item_id": [int(item.item_id)], "source_id": [str(item.source_id)],
                            "title": [item.title], "year": [getattr(item, "year", None)],
                            "genres": [list(getattr(item, "genres", None) or [])],
                            "themes": [list(getattr(item, "themes", None) or [])]})
        item_facts = {int(item.item_id): list(facts[int(item.item_id)]) if facts is not None else []}
        frame = template_queries(row, item_facts, self.per_item, self.seed, self.paraphrase_genres)
        by_split = {split: list(group.sort_values("pair").text) for split, group in frame.groupby("split")}
        return by_split["train"], by_split["test"]

    def _from_llm(self, item, common: frozenset[str]) -> tuple[list[tuple[str, str]], int]:
        """Ask for the item's pairs, then only for the dropped ones; returns (good pairs, rounds used)."""
        pairs: list[tuple[str, str]] = []
        avoid: list[str] | None = None
        rounds = 0
        for rounds in range(self.max_retries + 1):
            missing = self.per_item - len(pairs)
            content = self._ask(self.prompt(item, missing, avoid))
            try:
                train, test = parse_answer(content, missing)
            except ValueError as err:
                self._count("unparseable_answers")
                log.debug("item %s: %s", item.source_id, err)
                continue
            for query, paraphrase in zip(train, test):
                if query and paraphrase and not leaks_title(query, item.title, common) \
                        and not leaks_title(paraphrase, item.title, common):
                    pairs.append((query, paraphrase))
                else:
                    self._count("rejected_pairs")
                    avoid = avoid_words(item.title, common) or None
            if len(pairs) == self.per_item:
                break
        return pairs, rounds

    def _item(self, item, common: frozenset[str], facts) -> tuple[list[str], list[str]]:
        cache = self._cache_path(self.prompt(item))
        pairs, rounds = self._from_llm(item, common)
        if rounds:
            self._count("retried")
        if len(pairs) == self.per_item:
            train, test = [q for q, _ in pairs], [p for _, p in pairs]
            self._write_cache(cache, {"queries": train, "paraphrases": test, "model": self.model, "rounds": rounds + 1})
            return train, test
        self._fallback_item(item)
        self._write_cache(cache, {"fallback": True, "model": self.model, "rounds": rounds + 1,
                                  "usable_pairs": len(pairs)})
        return self._fallback(item, facts)

    def _fallback_item(self, item) -> None:
        with self._lock:
            self._counts["fallback"] = self._counts.get("fallback", 0) + 1
            self._counts.setdefault("fallback_source_ids", []).append(str(item.source_id))

    # -- all items
    def generate(self, items: pd.DataFrame, facts=None) -> dict[int, tuple[list[str], list[str]]]:
        """``{item_id: (train queries, test paraphrases)}`` in the order of ``items``.

        ``facts`` (the data stage's per-item audience facts, indexed by item_id) only enrich the
        template queries of items that fall back; without them the fallback uses title, year and genres.
        """
        self._stop.clear()
        self._counts = {}
        genres = sorted({g for gs in items["genres"] for g in (gs.split("|") if isinstance(gs, str) else gs)}) \
            if "genres" in items else []
        common = common_vocabulary(genres)
        rows = list(items.itertuples(index=False))
        results: dict[int, tuple[list[str], list[str]]] = {}
        todo = []
        for item in rows:
            entry = self._read_cache(self._cache_path(self.prompt(item)))
            if entry is None:
                todo.append(item)
            elif entry.get("fallback"):
                self._count("cached")
                self._fallback_item(item)
                results[int(item.item_id)] = self._fallback(item, facts)
            else:
                self._count("cached")
                results[int(item.item_id)] = (list(entry["queries"]), list(entry["paraphrases"]))
        started = time.perf_counter()
        bar = tqdm(total=len(rows), initial=len(rows) - len(todo), desc="LLM queries")
        executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="llm-queries")
        try:
            futures: dict[Future, object] = {executor.submit(self._item, item, common, facts): item for item in todo}
            for future in as_completed(futures):
                results[int(futures[future].item_id)] = future.result()  # an item's DataError stops the run
                bar.update(1)
                bar.set_postfix(retried=self._counts.get("retried", 0), fallback=self._counts.get("fallback", 0),
                                refresh=False)
        finally:
            self._stop.set()
            executor.shutdown(wait=False, cancel_futures=True)
            bar.close()
        fallback_ids = self._counts.get("fallback_source_ids", [])
        self.summary = {
            "generator": "llm", "model": self.model, "items": len(rows), "cached": self._counts.get("cached", 0),
            "asked": len(todo), "retried": self._counts.get("retried", 0), "fallback": len(fallback_ids),
            "requests": self._counts.get("requests", 0), "http_retries": self._counts.get("http_retries", 0),
            "rejected_pairs": self._counts.get("rejected_pairs", 0),
            "unparseable_answers": self._counts.get("unparseable_answers", 0),
            "fallback_source_ids": sorted(fallback_ids, key=str)[:SUMMARY_EXAMPLES],
            "concurrency": self.concurrency, "seconds": round(time.perf_counter() - started, 3),
        }
        log.info("LLM queries: %(items)d items, %(cached)d cached, %(asked)d asked (%(requests)d requests, "
                 "%(http_retries)d transport retries), %(retried)d resampled, %(fallback)d fell back to template "
                 "queries", self.summary)
        return {int(item.item_id): results[int(item.item_id)] for item in rows}
