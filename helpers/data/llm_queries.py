"""Queries from an LLM with the paper's prompt (footnote 1), over an OpenAI-compatible API.

Configure with environment variables (nothing is hard-coded, nothing is sent unless asked):
``SID_LLM_BASE_URL`` (e.g. ``http://localhost:8000/v1``; falls back to ``OPENAI_BASE_URL``),
``SID_LLM_API_KEY`` (falls back to ``OPENAI_API_KEY``; may be empty for local servers) and
``SID_LLM_MODEL`` (or the profile's ``data.queries.llm_model``).

Answers are cached on disk by a hash of (model, prompt), so a rerun costs nothing; a failed or
unparseable answer is retried ``llm_max_retries`` times and then raises ``DataError`` naming the
item, without caching anything for it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from ..errors import DataError
from .queries import contains_title

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


@dataclass
class LLMQueryGenerator:
    base_url: str
    model: str
    api_key: str = ""
    per_item: int = 10
    max_retries: int = 3
    cache_dir: Path | None = None
    timeout_s: float = 60.0
    backoff_s: float = 1.0

    @classmethod
    def from_env(cls, params: dict, cache_dir: Path | None) -> "LLMQueryGenerator":
        base = os.environ.get("SID_LLM_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
        model = params.get("llm_model") or os.environ.get("SID_LLM_MODEL")
        if not base or not model:
            raise DataError("The llm query generator needs SID_LLM_BASE_URL (an OpenAI-compatible /v1 URL) and "
                            "SID_LLM_MODEL (or data.queries.llm_model). Set them, or use generator: template.")
        key = os.environ.get("SID_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY") or ""
        return cls(base.rstrip("/"), model, key, params["per_item"], params.get("llm_max_retries", 3), cache_dir)

    def prompt(self, item) -> str:
        metadata = item.text
        return PAPER_PROMPT.format(METADATA=metadata) + FORMAT_HINT.format(n=self.per_item)

    def _cache_path(self, prompt: str) -> Path | None:
        if self.cache_dir is None:
            return None
        digest = hashlib.sha256(f"{self.model}\n{prompt}".encode()).hexdigest()[:24]
        return Path(self.cache_dir) / f"{digest}.json"

    def _ask(self, prompt: str) -> str:
        body = json.dumps({"model": self.model, "messages": [{"role": "user", "content": prompt}],
                           "temperature": 0.7}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(f"{self.base_url}/chat/completions", data=body, headers=headers)
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            payload = json.loads(response.read())
        return payload["choices"][0]["message"]["content"]

    def queries_for(self, item) -> tuple[list[str], list[str]]:
        prompt = self.prompt(item)
        cache = self._cache_path(prompt)
        if cache is not None and cache.is_file():
            cached = json.loads(cache.read_text())
            return cached["queries"], cached["paraphrases"]
        problem = ""
        for attempt in range(self.max_retries + 1):
            try:
                train, test = parse_answer(self._ask(prompt), self.per_item)
                leaked = [q for q in train + test if contains_title(q, item.title)]
                if leaked:
                    raise ValueError(f"queries contain the title: {leaked[:2]}")
                if cache is not None:
                    cache.parent.mkdir(parents=True, exist_ok=True)
                    tmp = cache.with_suffix(".tmp")
                    tmp.write_text(json.dumps({"queries": train, "paraphrases": test, "model": self.model}))
                    tmp.replace(cache)
                return train, test
            except (urllib.error.URLError, TimeoutError, KeyError, ValueError, json.JSONDecodeError) as err:
                problem = str(err)
                time.sleep(self.backoff_s * attempt)
        raise DataError(f"The LLM at {self.base_url} gave no usable queries for item {item.source_id} "
                        f"({item.title!r}) after {self.max_retries + 1} tries: {problem}. "
                        "Check the endpoint and model, or use generator: template.")

    def generate(self, items: pd.DataFrame) -> dict[int, tuple[list[str], list[str]]]:
        return {int(item.item_id): self.queries_for(item)
                for item in tqdm(items.itertuples(index=False), total=len(items), desc="LLM queries")}
