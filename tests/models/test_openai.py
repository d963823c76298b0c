"""OpenAIBackend against a real HTTP server running in the test process (no mock objects).

The server speaks enough of the OpenAI chat-completions protocol (plain and SSE) and can be
told to misbehave the ways real servers do: fail with 503, refuse the key, be slow, reject
`response_format`. It records every request body and the most requests it saw in flight at
once, which is how the tests prove that a batch is sent concurrently.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from stepgraph.errors import ModelError
from stepgraph.models.base import Request
from stepgraph.models.openai import OpenAIBackend

MODEL = "tiny-chat"


@dataclass
class FakeServerState:
    """Knobs a test turns, and what the server observed."""

    fail_first: int = 0  # answer the first N chat calls with 503
    fail_status: int = 503
    status: int | None = None  # answer every chat call with this status (e.g. 401)
    delay: float = 0.0  # seconds to sleep before answering
    reject_response_format: bool = False
    include_usage: bool = True
    max_model_len: int | None = 4096
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    calls: int = 0
    active: int = 0
    max_active: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _reply_text(body: dict[str, Any]) -> str:
    """Deterministic reply: echo the last message, or a JSON object when asked for one."""
    if "response_format" in body:
        return json.dumps({"answer": body["messages"][-1]["content"]})
    return f"echo: {body['messages'][-1]['content']}"


class _Handler(BaseHTTPRequestHandler):
    server: _FakeServer

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        state = self.server.state
        if self.path == "/v1/models":
            entry: dict[str, Any] = {"id": MODEL, "object": "model"}
            if state.max_model_len:
                entry["max_model_len"] = state.max_model_len
            self._json(200, {"object": "list", "data": [entry]})
        else:
            self._json(404, {"error": {"message": "Not Found"}})

    def do_POST(self) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path != "/v1/chat/completions":
            self._json(404, {"detail": "Not Found"})
            return
        with state.lock:
            state.calls += 1
            call = state.calls
            state.bodies.append(body)
            state.headers.append(dict(self.headers))
            state.active += 1
            state.max_active = max(state.max_active, state.active)
        try:
            if state.delay:
                time.sleep(state.delay)
            if call <= state.fail_first:
                self._json(state.fail_status, {"error": {"message": "overloaded, try again"}})
            elif state.status is not None:
                self._json(state.status, {"error": {"message": f"status {state.status}"}})
            elif state.reject_response_format and "response_format" in body:
                self._json(
                    400, {"error": {"message": "response_format json_schema is not supported"}}
                )
            elif body.get("model") != MODEL:
                self._json(
                    404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}}
                )
            elif body.get("stream"):
                self._stream(body)
            else:
                self._complete(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test); nothing to answer
        finally:
            with state.lock:
                state.active -= 1

    def _complete(self, body: dict[str, Any]) -> None:
        text = _reply_text(body)
        finish = "stop"
        words = text.split(" ")
        if len(words) > body.get("max_tokens", 10**9):
            text, finish = " ".join(words[: body["max_tokens"]]), "length"
        payload: dict[str, Any] = {
            "id": "cmpl-1",
            "object": "chat.completion",
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish,
                }
            ],
        }
        if self.server.state.include_usage:
            payload["usage"] = {
                "prompt_tokens": 11,
                "completion_tokens": len(text.split(" ")),
                "total_tokens": 11 + len(text.split(" ")),
            }
        self._json(200, payload)

    def _stream(self, body: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        words = _reply_text(body).split(" ")
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            event = {"choices": [{"index": 0, "delta": {"content": piece}}]}
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()
        final = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        self.wfile.write(f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n".encode())
        self.wfile.flush()


class _FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = FakeServerState()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@pytest.fixture
def oai_server() -> Iterator[_FakeServer]:
    server = _FakeServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def oai_backend(oai_server: _FakeServer) -> Iterator[OpenAIBackend]:
    backend = OpenAIBackend(oai_server.base_url, MODEL, api_key="sk-test", backoff=0.01)
    yield backend
    backend.close()


def test_generate_returns_text_usage_and_sends_options(
    oai_server: _FakeServer, oai_backend: OpenAIBackend
) -> None:
    request = Request.chat(
        "hello there",
        system="be brief",
        max_tokens=50,
        temperature=0.7,
        top_p=0.9,
        seed=7,
        stop=["###"],
    )
    [completion] = oai_backend.generate([request])
    assert completion.text == "echo: hello there"
    assert completion.prompt_tokens == 11 and completion.completion_tokens == 3
    assert completion.finish_reason == "stop" and completion.model == MODEL
    assert completion.seconds > 0
    body = oai_server.state.bodies[0]
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello there"},
    ]
    sent = {k: body[k] for k in ("max_tokens", "temperature", "top_p", "seed")}
    assert sent == {"max_tokens": 50, "temperature": 0.7, "top_p": 0.9, "seed": 7}
    assert body["stop"] == ["###"] and "response_format" not in body
    assert oai_server.state.headers[0]["Authorization"] == "Bearer sk-test"


def test_length_finish_reason_and_missing_usage_is_estimated(
    oai_server: _FakeServer, oai_backend: OpenAIBackend
) -> None:
    oai_server.state.include_usage = False
    [completion] = oai_backend.generate([Request.chat("one two three four", max_tokens=2)])
    assert completion.text == "echo: one"
    assert completion.finish_reason == "length"
    assert completion.prompt_tokens >= 1 and completion.completion_tokens >= 1


def test_stop_string_echoed_by_server_is_cut(oai_backend: OpenAIBackend) -> None:
    [completion] = oai_backend.generate([Request.chat("alpha STOP beta", stop=["STOP"])])
    assert completion.text == "echo: alpha "


def test_batch_is_sent_concurrently_and_kept_in_order(
    oai_server: _FakeServer, oai_backend: OpenAIBackend
) -> None:
    oai_server.state.delay = 0.3
    requests = [Request.chat(f"question {i}") for i in range(6)]
    completions = oai_backend.generate(requests)
    assert [c.text for c in completions] == [f"echo: question {i}" for i in range(6)]
    assert oai_server.state.max_active >= 4, "requests of one batch must overlap in time"


def test_max_concurrency_bounds_requests_in_flight(oai_server: _FakeServer) -> None:
    oai_server.state.delay = 0.15
    backend = OpenAIBackend(oai_server.base_url, MODEL, max_concurrency=2)
    try:
        backend.generate([Request.chat(str(i)) for i in range(6)])
    finally:
        backend.close()
    assert oai_server.state.max_active == 2


def test_503_is_retried_until_it_succeeds(
    oai_server: _FakeServer, oai_backend: OpenAIBackend
) -> None:
    oai_server.state.fail_first = 2
    [completion] = oai_backend.generate([Request.chat("persist")])
    assert completion.text == "echo: persist"
    assert oai_server.state.calls == 3


def test_429_is_retried(oai_server: _FakeServer, oai_backend: OpenAIBackend) -> None:
    oai_server.state.fail_first, oai_server.state.fail_status = 1, 429
    assert oai_backend.generate([Request.chat("x")])[0].text == "echo: x"
    assert oai_server.state.calls == 2


def test_persistent_5xx_becomes_model_error(oai_server: _FakeServer) -> None:
    oai_server.state.fail_first = 100
    backend = OpenAIBackend(oai_server.base_url, MODEL, retries=2, backoff=0.01)
    with pytest.raises(ModelError, match="HTTP 503 after 3 attempts"):
        backend.generate([Request.chat("x")])
    assert oai_server.state.calls == 3
    backend.close()


def test_401_is_a_model_error_about_the_api_key(
    oai_server: _FakeServer, oai_backend: OpenAIBackend
) -> None:
    oai_server.state.status = 401
    with pytest.raises(ModelError, match="OPENAI_API_KEY"):
        oai_backend.generate([Request.chat("x")])
    assert oai_server.state.calls == 1, "an auth failure must not be retried"


def test_api_key_comes_from_the_environment(
    oai_server: _FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    backend = OpenAIBackend(oai_server.base_url, MODEL)
    backend.generate([Request.chat("x")])
    backend.close()
    assert oai_server.state.headers[0]["Authorization"] == "Bearer sk-env"


def test_unknown_model_is_a_model_error(oai_server: _FakeServer) -> None:
    backend = OpenAIBackend(oai_server.base_url, "no-such-model")
    with pytest.raises(ModelError, match="does not serve the model 'no-such-model'"):
        backend.generate([Request.chat("x")])
    backend.close()


def test_wrong_path_says_base_url_usually_ends_in_v1(oai_server: _FakeServer) -> None:
    backend = OpenAIBackend(oai_server.base_url.removesuffix("/v1"), MODEL)
    with pytest.raises(ModelError, match="/v1"):
        backend.generate([Request.chat("x")])
    backend.close()


def test_slow_server_times_out_with_model_error(oai_server: _FakeServer) -> None:
    oai_server.state.delay = 2.0
    backend = OpenAIBackend(oai_server.base_url, MODEL, timeout=0.3, retries=1, backoff=0.01)
    with pytest.raises(ModelError, match="did not answer within 0.3 s"):
        backend.generate([Request.chat("x")])
    assert oai_server.state.calls == 2, "a timeout is retried"
    backend.close()


def test_unreachable_server_names_the_url() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    backend = OpenAIBackend(url, MODEL, retries=2, backoff=0.01)
    with pytest.raises(ModelError) as info:
        backend.generate([Request.chat("x"), Request.chat("y")])
    message = str(info.value)
    assert f"cannot reach {url}" in message and "is the server running?" in message
    assert "openai:<base_url>#<model>" in message
    backend.close()


def test_json_schema_is_sent_as_response_format(
    oai_server: _FakeServer, oai_backend: OpenAIBackend
) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
    }
    [completion] = oai_backend.generate([Request.chat("q", json_schema=schema)])
    assert json.loads(completion.text) == {"answer": "q"}
    assert oai_server.state.bodies[0]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": True},
    }


def test_rejected_response_format_falls_back_to_plain_generation(
    oai_server: _FakeServer, oai_backend: OpenAIBackend, caplog: pytest.LogCaptureFixture
) -> None:
    oai_server.state.reject_response_format = True
    schema = {"type": "object"}
    [completion] = oai_backend.generate([Request.chat("q", json_schema=schema)])
    assert completion.text == "echo: q"
    assert [("response_format" in b) for b in oai_server.state.bodies] == [True, False]
    assert oai_backend.supports_response_format is False
    assert "falling back to plain generation" in caplog.text
    oai_backend.generate([Request.chat("again", json_schema=schema)])
    assert "response_format" not in oai_server.state.bodies[-1], "the fallback is remembered"
    assert oai_server.state.calls == 3


def test_grammar_is_passed_as_extra_field_and_wins_over_schema(
    oai_server: _FakeServer, oai_backend: OpenAIBackend
) -> None:
    grammar = 'root ::= "yes" | "no"'
    oai_backend.generate([Request.chat("q", grammar=grammar, json_schema={"type": "object"})])
    body = oai_server.state.bodies[0]
    assert body["grammar"] == grammar and "response_format" not in body


def test_stream_yields_deltas(oai_backend: OpenAIBackend) -> None:
    pieces = list(oai_backend.stream(Request.chat("streamed words here")))
    assert len(pieces) == 4
    assert "".join(pieces) == "echo: streamed words here"


def test_stream_retries_before_the_first_byte(
    oai_server: _FakeServer, oai_backend: OpenAIBackend
) -> None:
    oai_server.state.fail_first = 1
    assert "".join(oai_backend.stream(Request.chat("ok"))) == "echo: ok"
    assert oai_server.state.bodies[-1]["stream"] is True


def test_async_twins_work_inside_a_running_event_loop(oai_backend: OpenAIBackend) -> None:
    async def main() -> tuple[list[str], str]:
        batch = await oai_backend.agenerate([Request.chat("a"), Request.chat("b")])
        pieces = [p async for p in oai_backend.astream(Request.chat("c d"))]
        return [c.text for c in batch], "".join(pieces)

    texts, streamed = asyncio.run(main())
    assert texts == ["echo: a", "echo: b"] and streamed == "echo: c d"


def test_concurrent_callers_share_the_backend(oai_backend: OpenAIBackend) -> None:
    results: dict[int, str] = {}

    def call(i: int) -> None:
        results[i] = oai_backend.generate([Request.chat(f"t{i}")])[0].text

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: f"echo: t{i}" for i in range(8)}


def test_context_length_from_models_endpoint(
    oai_server: _FakeServer, oai_backend: OpenAIBackend
) -> None:
    assert oai_backend.context_length == 4096
    fixed = OpenAIBackend(oai_server.base_url, MODEL, context_length=1234)
    assert fixed.context_length == 1234
    fixed.close()


def test_bad_base_url_and_closed_backend(oai_backend: OpenAIBackend) -> None:
    with pytest.raises(ModelError, match="http://"):
        OpenAIBackend("localhost:8000/v1", MODEL)
    oai_backend.close()
    oai_backend.close()  # twice is fine
    with pytest.raises(ModelError, match="closed"):
        oai_backend.generate([Request.chat("x")])
