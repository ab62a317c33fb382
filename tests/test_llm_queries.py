"""The LLM query generator against a stub OpenAI-compatible server on 127.0.0.1."""
from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from helpers.data.llm_queries import (PAPER_PROMPT, LLMQueryGenerator, backoff_delay, common_vocabulary,
                                      distinctive_words, leaks_title, parse_answer, retry_after_seconds)
from helpers.data.queries import template_queries
from helpers.errors import DataError

N = 3
MAX_REQUESTS = 300      # the stub refuses (HTTP 503) beyond this: a runaway client cannot loop for ever
LIFETIME_S = 30.0       # and shuts itself down after this


class StubServer(ThreadingHTTPServer):
    """Answers each chat request with ``script(prompt, n_asked, server)`` -> (status, headers, content)."""

    daemon_threads = True

    def __init__(self, script, delay_s: float = 0.0):
        super().__init__(("127.0.0.1", 0), StubHandler)
        self.script, self.delay_s = script, delay_s
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.in_flight = self.max_in_flight = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def prompts(self, marker: str) -> list[str]:
        return [r["prompt"] for r in self.requests if marker in r["prompt"]]


class StubHandler(BaseHTTPRequestHandler):
    server: StubServer

    def do_POST(self):  # noqa: N802 - http.server API
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][0]["content"]
        with srv.lock:
            srv.requests.append({"path": self.path, "body": body, "prompt": prompt,
                                 "auth": self.headers.get("Authorization")})
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
            too_many = len(srv.requests) > MAX_REQUESTS
        try:
            time.sleep(srv.delay_s)
            n = int(re.search(r"\[(\d+) strings\]", prompt).group(1))
            status, headers, content = (503, {}, "") if too_many else srv.script(prompt, n, srv)
        finally:
            with srv.lock:
                srv.in_flight -= 1
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def stub():
    """``stub(script, delay_s)`` starts a server on a free loopback port; all stop after the test."""
    servers = []

    def start(script, delay_s: float = 0.0) -> StubServer:
        server = StubServer(script, delay_s)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        watchdog = threading.Timer(LIFETIME_S, server.shutdown)
        watchdog.daemon = True
        watchdog.start()
        servers.append((server, watchdog))
        return server

    yield start
    for server, watchdog in servers:
        watchdog.cancel()
        server.shutdown()
        server.server_close()


def answer(n: int, tag: str = "", fenced: bool = False) -> str:
    text = json.dumps({"queries": [f"space adventure {tag}{i}" for i in range(n)],
                       "paraphrases": [f"a voyage among the stars {tag}{i}" for i in range(n)]})
    return f"Here you go:\n```json\n{text}\n```" if fenced else text


def ok(content: str) -> tuple[int, dict, str]:
    return 200, {}, content


def items_frame(titles: list[str]) -> pd.DataFrame:
    return pd.DataFrame({
        "item_id": range(len(titles)), "source_id": [str(100 + i) for i in range(len(titles))], "title": titles,
        "year": [1990 + i for i in range(len(titles))], "genres": [["Comedy", "Horror"] for _ in titles],
        "themes": [[] for _ in titles], "text": [f"{t} ({1990 + i}). Genres: Comedy, Horror." for i, t in enumerate(titles)]})


ITEMS = items_frame(["Star Wars"])


def make_generator(url, tmp_path, retries=2, concurrency=4, **kwargs):
    return LLMQueryGenerator(base_url=url, model="stub-model", api_key="secret", per_item=N, max_retries=retries,
                             cache_dir=tmp_path / "cache", backoff_s=0.0, concurrency=concurrency, **kwargs)


# ---- the title rule ------------------------------------------------------------------------------
@pytest.mark.parametrize("title, leaking, clean", [
    ("Toy Story", ["a movie like Toy Story", "an animated toy comes alive", "toy story sequel"],
     ["a story about friendship and growing up", "animated buddy comedy", "toys come alive when kids leave"]),
    ("Scary Movie", ["a scary movie spoof", "that Scary-Movie parody"],
     ["a scary horror parody", "a movie that spoofs slasher films", "funny scary comedy"]),
    ("Horror Express", ["horror express on a train", "an express train full of monsters"],
     ["a horror film set on a train", "vintage horror with a creature from the ice"]),
    ("Love Actually", ["love actually style ensemble", "Love, Actually at christmas"],
     ["a romantic comedy about love at christmas", "ensemble love stories in London"]),
])
def test_title_rule_refuses_the_title_not_its_common_words(title, leaking, clean):
    common = common_vocabulary(["Comedy", "Horror", "Romance", "Animation", "Children"])
    assert [q for q in leaking if not leaks_title(q, title, common)] == []
    assert [q for q in clean if leaks_title(q, title, common)] == []


def test_distinctive_words_drop_stop_genre_and_common_film_words():
    assert distinctive_words("Toy Story") == {"toy"}
    assert distinctive_words("Scary Movie") == set()
    assert distinctive_words("Horror Express") == {"express"}
    assert distinctive_words("Love Actually") == set()
    assert distinctive_words("The Lord of the Rings") == {"lord", "rings"}
    # the catalogue's own genre names are common vocabulary too
    assert distinctive_words("Zombie Express", common_vocabulary(["Zombie"])) == {"express"}
    # a title made of one stop word cannot be told from the word: nothing is refused for it
    assert not leaks_title("it is a clown horror film", "It")
    assert leaks_title("the sequel to Toy Story 2", "Toy Story 2") and leaks_title("toy story", "Toy Story 2")


# ---- prompt, cache, parsing ----------------------------------------------------------------------
def test_sends_the_papers_prompt_and_caches_the_answer(stub, tmp_path):
    server = stub(lambda prompt, n, srv: ok(answer(n, fenced=True)))
    gen = make_generator(server.url, tmp_path)
    train, test = gen.generate(ITEMS)[0]
    assert train[0] == "space adventure 0" and test[2] == "a voyage among the stars 2"
    sent = server.requests[0]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer secret"
    assert PAPER_PROMPT.split("{METADATA}")[0] in sent["prompt"] and "Star Wars (1990)" in sent["prompt"]
    assert gen.summary["asked"] == 1 and gen.summary["cached"] == 0
    # a rerun is answered from the disk cache: no second request; no temporary file is left behind
    again = make_generator(server.url, tmp_path)
    assert again.generate(ITEMS)[0] == (train, test)
    assert len(server.requests) == 1 and again.summary["cached"] == 1 and again.summary["asked"] == 0
    assert [p.suffix for p in (tmp_path / "cache").iterdir()] == [".json"]


def test_retries_after_server_errors_and_unparseable_answers(stub, tmp_path):
    script = iter([(500, {}, ""), ok("I cannot help with that."), ok(answer(N))])
    server = stub(lambda prompt, n, srv: next(script))
    gen = make_generator(server.url, tmp_path)
    train, _ = gen.generate(ITEMS)[0]
    assert len(train) == N and len(server.requests) == 3
    assert gen.summary["http_retries"] == 1 and gen.summary["unparseable_answers"] == 1
    assert gen.summary["retried"] == 1 and gen.summary["fallback"] == 0


@pytest.mark.parametrize("content", [
    json.dumps([[f"q{i}" for i in range(N)], [f"p{i}" for i in range(N)]]),
    json.dumps([f"q{i}" for i in range(N)] + [f"p{i}" for i in range(N)]),
    json.dumps({"original": [f"q{i}" for i in range(N)], "paraphrased": [f"p{i}" for i in range(N)]}),
    "Queries:\n" + "\n".join(f"{i + 1}. q{i}" for i in range(N)) + "\nParaphrases:\n"
    + "\n".join(f"{i + 1}) p{i}" for i in range(N)),
])
def test_parse_answer_accepts_common_shapes(content):
    assert parse_answer(content, N) == ([f"q{i}" for i in range(N)], [f"p{i}" for i in range(N)])


def test_parse_answer_refuses_short_lists():
    with pytest.raises(ValueError):
        parse_answer(json.dumps({"queries": ["a"], "paraphrases": ["b"]}), N)


# ---- scale: concurrency, transport retries ---------------------------------------------------------
def test_requests_run_concurrently_and_results_keep_the_item_order(stub, tmp_path):
    titles = [f"Film{i}" for i in range(20)]
    server = stub(lambda prompt, n, srv: ok(answer(n, tag=re.search(r"(Film\d+) \(", prompt).group(1))),
                  delay_s=0.2)
    gen = make_generator(server.url, tmp_path, concurrency=8)
    started = time.perf_counter()
    result = gen.generate(items_frame(titles))
    elapsed = time.perf_counter() - started
    assert server.max_in_flight >= 4, server.max_in_flight
    assert elapsed < 0.5 * 20 * 0.2, elapsed          # sequential would take 4 s; 8 at a time about 0.6 s
    assert list(result) == list(range(20))
    assert all(result[i][0][0] == f"space adventure Film{i}0" for i in range(20))
    assert gen.summary["asked"] == 20 and gen.summary["requests"] == 20 and gen.summary["concurrency"] == 8


def test_concurrency_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SID_LLM_CONCURRENCY", "5")
    assert LLMQueryGenerator("http://127.0.0.1:9/v1", "m").concurrency == 5
    assert LLMQueryGenerator("http://127.0.0.1:9/v1", "m", concurrency=2).concurrency == 2
    monkeypatch.delenv("SID_LLM_CONCURRENCY")
    assert LLMQueryGenerator("http://127.0.0.1:9/v1", "m").concurrency == 16
    monkeypatch.setenv("SID_LLM_CONCURRENCY", "many")
    with pytest.raises(DataError, match="SID_LLM_CONCURRENCY"):
        LLMQueryGenerator("http://127.0.0.1:9/v1", "m")


def test_rate_limit_is_retried_after_retry_after(stub, tmp_path):
    limited = []

    def script(prompt, n, srv):
        if not limited:
            limited.append(time.perf_counter())
            return 429, {"Retry-After": "0.3"}, ""
        limited.append(time.perf_counter())
        return ok(answer(n))

    server = stub(script)
    gen = make_generator(server.url, tmp_path)
    assert len(gen.generate(ITEMS)[0][0]) == N
    assert len(server.requests) == 2 and gen.summary["http_retries"] == 1 and gen.summary["retried"] == 0
    assert limited[1] - limited[0] >= 0.25        # waited as the server asked, although backoff_s is 0


def test_backoff_grows_with_jitter_and_honours_retry_after():
    import random

    rng = random.Random(0)
    delays = [backoff_delay(a, 1.0, 60.0, rng=rng) for a in range(8)]
    assert all(0.5 * min(60, 2 ** a) <= d <= min(60, 2 ** a) for a, d in enumerate(delays))
    assert backoff_delay(0, 1.0, 60.0, retry_after=7.0) == 7.0
    assert retry_after_seconds("12") == 12.0 and retry_after_seconds(None) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_seconds("soon") is None


def test_a_refused_request_stops_at_once_with_a_clear_error(stub, tmp_path):
    server = stub(lambda prompt, n, srv: (401, {}, "bad key"))
    with pytest.raises(DataError, match="HTTP 401"):
        make_generator(server.url, tmp_path).generate(items_frame(["A", "B", "C"]))
    assert len(server.requests) <= 4          # no retries of a refusal; the pool stops


def test_an_endpoint_that_stays_down_stops_the_stage(stub, tmp_path):
    server = stub(lambda prompt, n, srv: (503, {}, ""))
    with pytest.raises(DataError, match="kept failing.*rerun to resume"):
        make_generator(server.url, tmp_path, http_retries=2).generate(ITEMS)
    assert len(server.requests) == 3
    assert not (tmp_path / "cache").exists()


def test_connection_errors_are_retried_then_stop_the_stage(tmp_path):
    import socket

    with socket.socket() as sock:            # a loopback port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gen = make_generator(f"http://127.0.0.1:{port}/v1", tmp_path, http_retries=1, timeout_s=2.0)
    with pytest.raises(DataError, match="kept failing"):
        gen.generate(ITEMS)
    assert gen._counts["requests"] == 2 and gen._counts["http_retries"] == 1


# ---- bad answers: resample only what is bad, else fall back to templates ---------------------------
def test_only_the_title_leaking_pair_is_asked_again(stub, tmp_path):
    titles = ["Toy Story", "Scary Movie", "Horror Express", "Love Actually"]

    def script(prompt, n, srv):
        if "Toy Story (" in prompt and n == N:       # the first answer for Toy Story leaks in pair 1
            return ok(json.dumps({"queries": ["animated buddy comedy", "a movie like Toy Story", "a cowboy doll"],
                                  "paraphrases": ["cartoon about friends", "similar to that pixar hit", "a doll"]}))
        if "Toy Story (" in prompt:
            return ok(json.dumps({"queries": [f"fresh query {i}" for i in range(n)],
                                  "paraphrases": [f"fresh paraphrase {i}" for i in range(n)]}))
        # the other films' answers use their genre words: "scary", "horror", "love", "movie"
        return ok(json.dumps({"queries": ["a scary horror parody", "love and horror on a train", "funny movie"][:n],
                              "paraphrases": ["spooky spoof", "romance and fear", "comic film"][:n]}))

    server = stub(script)
    gen = make_generator(server.url, tmp_path)
    result = gen.generate(items_frame(titles))
    toy = server.prompts("Toy Story (")
    assert len(toy) == 2 and "[1 strings]" in toy[1] and '"toy"' in toy[1]   # only the missing pair, naming what to avoid
    assert result[0] == (["animated buddy comedy", "a cowboy doll", "fresh query 0"],
                         ["cartoon about friends", "a doll", "fresh paraphrase 0"])
    assert all(len(server.prompts(f"{t} (")) == 1 for t in titles[1:])     # genre words are not the title
    assert gen.summary["retried"] == 1 and gen.summary["rejected_pairs"] == 1 and gen.summary["fallback"] == 0


def test_garbage_for_one_item_falls_back_to_its_template_queries(stub, tmp_path):
    titles = ["Good One", "Hopeless Case", "Good Two"]

    def script(prompt, n, srv):
        return ok("I'd rather talk about the weather." if "Hopeless Case (" in prompt else answer(n))

    server = stub(script)
    items = items_frame(titles)
    gen = make_generator(server.url, tmp_path, retries=2, seed=7)
    result = gen.generate(items)
    assert len(server.prompts("Hopeless Case (")) == 3                      # first ask + 2 rounds
    expected = template_queries(items.iloc[[1]], {1: []}, N, 7)
    assert result[1] == (list(expected[expected.split == "train"].text), list(expected[expected.split == "test"].text))
    assert result[0][0][0] == "space adventure 0" and result[2][0][0] == "space adventure 0"
    assert gen.summary["fallback"] == 1 and gen.summary["fallback_source_ids"] == ["101"]
    assert gen.summary["retried"] == 1 and gen.summary["unparseable_answers"] == 3
    # the fallback is cached: a rerun asks nothing and gives the same queries
    again = make_generator(server.url, tmp_path, retries=2, seed=7)
    assert again.generate(items) == result and len(server.requests) == 5
    assert again.summary["cached"] == 3 and again.summary["fallback"] == 1


def test_generate_queries_builds_the_frame_from_the_llm(stub, tmp_path, monkeypatch):
    from helpers.data.queries import generate_queries

    server = stub(lambda prompt, n, srv: ok(answer(n)))
    monkeypatch.setenv("SID_LLM_BASE_URL", server.url)
    monkeypatch.setenv("SID_LLM_MODEL", "stub-model")
    params = {"generator": "llm", "per_item": N, "seed": 0, "paraphrase_genres": "name", "llm_model": None,
              "llm_max_retries": 1}
    frame = generate_queries(items_frame(["A Film", "B Film"]), [[], []], params, cache_dir=tmp_path / "cache")
    assert len(frame) == 2 * 2 * N and set(frame.split) == {"train", "test"}


def test_missing_configuration_is_explained(monkeypatch):
    for var in ("SID_LLM_BASE_URL", "OPENAI_BASE_URL", "SID_LLM_MODEL"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(DataError, match="SID_LLM_BASE_URL"):
        LLMQueryGenerator.from_env({"per_item": 10, "llm_model": None}, None)
