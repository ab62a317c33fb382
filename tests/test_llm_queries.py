"""The LLM query generator against a stub OpenAI-compatible server on 127.0.0.1."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pandas as pd
import pytest

from helpers.data.llm_queries import PAPER_PROMPT, LLMQueryGenerator, parse_answer
from helpers.errors import DataError

N = 3


class StubChat(BaseHTTPRequestHandler):
    answers: list[str] = []
    requests: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        StubChat.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        content = StubChat.answers.pop(0) if StubChat.answers else "no more answers"
        if content == "HTTP500":
            self.send_response(500)
            self.end_headers()
            return
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def stub_server():
    server = HTTPServer(("127.0.0.1", 0), StubChat)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    StubChat.answers, StubChat.requests = [], []
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def good_answer(fenced: bool = False) -> str:
    text = json.dumps({"queries": [f"space adventure {i}" for i in range(N)],
                       "paraphrases": [f"a voyage among the stars {i}" for i in range(N)]})
    return f"Here you go:\n```json\n{text}\n```" if fenced else text


ITEMS = pd.DataFrame({"item_id": [0], "source_id": ["50"], "title": ["Star Wars"],
                      "text": ["Star Wars (1977). Genres: Action, Sci-Fi."]})


def make_generator(url, tmp_path, retries=2):
    return LLMQueryGenerator(base_url=url, model="stub-model", api_key="secret", per_item=N,
                             max_retries=retries, cache_dir=tmp_path / "cache", backoff_s=0.0)


def test_sends_the_papers_prompt_and_caches_the_answer(stub_server, tmp_path):
    StubChat.answers = [good_answer(fenced=True)]
    gen = make_generator(stub_server, tmp_path)
    train, test = gen.generate(ITEMS)[0]
    assert train[0] == "space adventure 0" and test[2] == "a voyage among the stars 2"
    sent = StubChat.requests[0]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer secret"
    assert PAPER_PROMPT.split("{METADATA}")[0] in sent["body"]["messages"][0]["content"]
    assert "Star Wars (1977)" in sent["body"]["messages"][0]["content"]
    # a rerun is answered from the disk cache: no second request
    assert make_generator(stub_server, tmp_path).generate(ITEMS)[0] == (train, test)
    assert len(StubChat.requests) == 1


def test_retries_after_server_errors_and_unparseable_answers(stub_server, tmp_path):
    StubChat.answers = ["HTTP500", "I cannot help with that.", good_answer()]
    train, _ = make_generator(stub_server, tmp_path).generate(ITEMS)[0]
    assert len(train) == N and len(StubChat.requests) == 3


def test_gives_up_with_a_clear_error_and_caches_nothing(stub_server, tmp_path):
    leaking = json.dumps({"queries": ["star wars sequel"] * N, "paraphrases": ["the wars in the stars"] * N})
    StubChat.answers = ["garbage", leaking, "HTTP500"]
    with pytest.raises(DataError, match="no usable queries.*Star Wars"):
        make_generator(stub_server, tmp_path).generate(ITEMS)
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_missing_configuration_is_explained(monkeypatch):
    for var in ("SID_LLM_BASE_URL", "OPENAI_BASE_URL", "SID_LLM_MODEL"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(DataError, match="SID_LLM_BASE_URL"):
        LLMQueryGenerator.from_env({"per_item": 10, "llm_model": None}, None)


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
