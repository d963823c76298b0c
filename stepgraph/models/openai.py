"""A backend for any OpenAI-compatible server: vLLM, SGLang, llama.cpp server, Ollama.

This is how users with GPUs or a cluster scale past one machine: the server batches, we only
have to keep it busy. A batch is therefore sent as concurrent HTTP requests (bounded by
`max_concurrency`), and transient failures (connection errors, timeouts, 429, 5xx) are
retried with exponential backoff so that one hiccup of a busy server does not fail a run.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from stepgraph.errors import ModelError
from stepgraph.models.base import BackendBase, Completion, Request, cut_at_stop, split_reply

log = logging.getLogger(__name__)

_FINISH_REASONS = {"length": "length", "stop": "stop", "eos": "stop", "tool_calls": "stop"}


class _Transient(Exception):
    """A server answer worth retrying (429, 5xx); carries the response for the final error."""

    def __init__(self, response: httpx.Response, body: str):
        super().__init__(f"HTTP {response.status_code}: {body[:300]}")
        self.status_code = response.status_code
        self.retry_after = _retry_after(response)
        self.body = body


class _NoResponseFormat(Exception):
    """The server rejected `response_format` (HTTP 400): fall back to plain generation."""


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class OpenAIBackend(BackendBase):
    """Chat completions against `base_url` (e.g. ``http://localhost:8000/v1``) for `model`.

    Thread-safe: one pooled httpx client and one bounded worker pool are shared by all
    callers, so `max_concurrency` bounds the load this process puts on the server no matter
    how many threads (or event-loop workers) call `generate` at once.

    It does not continue a reply the caller began (`continues_replies` is False): the chat
    API has no common way to ask for that, so such a request is refused, not misread.
    """

    continues_replies = False

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_concurrency: int = 8,
        retries: int = 3,
        backoff: float = 0.5,
        context_length: int | None = None,
    ):
        if not base_url.startswith(("http://", "https://")):
            raise ModelError(
                f"the OpenAI base URL {base_url!r} must start with http:// or https:// "
                "(model spec form: openai:http://host:port/v1#model)"
            )
        if max_concurrency < 1 or retries < 0:
            raise ModelError("max_concurrency must be at least 1 and retries at least 0")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"openai:{self.base_url}#{model}"
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_concurrency = max_concurrency
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            headers=headers,
            limits=httpx.Limits(max_connections=max_concurrency),
        )
        self._pool = ThreadPoolExecutor(max_concurrency, thread_name_prefix="stepgraph-openai")
        self._context_length = context_length
        self._lock = threading.Lock()
        self._closed = False
        #: False once the server has rejected `response_format`; later requests skip it.
        self.supports_response_format = True

    # -- public interface ------------------------------------------------------------------

    def generate(self, requests: list[Request]) -> list[Completion]:
        """Send the batch's requests concurrently; results come back in request order."""
        if not requests:
            return []
        self._check_open()
        if len(requests) == 1:
            return [self._complete_one(requests[0])]
        futures = [self._pool.submit(self._complete_one, r) for r in requests]
        try:
            return [f.result() for f in futures]
        finally:
            for f in futures:
                f.cancel()

    def stream(self, request: Request) -> Iterator[str]:
        """Yield content deltas from the server's SSE stream."""
        self._check_open()
        body = self._body(request) | {"stream": True}
        response = self._send(body, stream=True)
        try:
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    event = json.loads(data)
                except json.JSONDecodeError as exc:
                    raise ModelError(
                        f"{self._url} sent a malformed stream event: {data[:200]!r}"
                    ) from exc
                if "error" in event:
                    raise ModelError(f"{self._url} reported an error mid-stream: {event['error']}")
                for choice in event.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        yield piece
        except httpx.TransportError as exc:
            raise ModelError(f"the stream from {self._url} broke off: {exc!r}") from exc
        finally:
            response.close()

    @property
    def context_length(self) -> int:
        """From the constructor, else what the server's /models reports, else 32768."""
        if self._context_length is None:
            self._context_length = self._query_context_length() or 32768
        return self._context_length

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    # -- internals -------------------------------------------------------------------------

    @property
    def _url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def _check_open(self) -> None:
        if self._closed:
            raise ModelError(f"{self.name} was closed; create a new backend")

    def _body(self, request: Request) -> dict[str, Any]:
        if split_reply(request.messages)[1] is not None:
            raise ModelError(
                "an OpenAI-compatible server cannot continue an assistant reply; end the "
                "request with a user message (check `backend.continues_replies` first)"
            )
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
        }
        if request.seed is not None:
            body["seed"] = request.seed
        if request.stop:
            body["stop"] = request.stop
        if request.grammar is not None:  # GBNF wins over a schema, as Request documents
            body["grammar"] = request.grammar
        elif request.json_schema is not None and self.supports_response_format:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": request.json_schema, "strict": True},
            }
        if request.adapter is not None:
            # vLLM and SGLang serve LoRA adapters as model names; that is the portable mapping.
            body["model"] = request.adapter
        return body

    def _complete_one(self, request: Request) -> Completion:
        start = time.perf_counter()
        response = self._send(self._body(request), stream=False)
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ModelError(
                f"{self._url} answered with something that is not a chat completion: "
                f"{response.text[:300]!r}; is it an OpenAI-compatible server?"
            ) from exc
        # most servers cut at a stop string themselves; a few echo it back
        text, echoed = cut_at_stop(text, request.stop)
        usage = data.get("usage") or {}
        prompt_tokens = usage.get("prompt_tokens")
        completion_tokens = usage.get("completion_tokens")
        if prompt_tokens is None:  # no usage block: estimate so budgets still count something
            prompt_tokens = sum(self.count_tokens(m.content) for m in request.messages)
        if completion_tokens is None:
            completion_tokens = self.count_tokens(text) if text else 0
        return Completion(
            text=text,
            prompt_tokens=int(prompt_tokens),
            completion_tokens=int(completion_tokens),
            seconds=time.perf_counter() - start,
            finish_reason=_FINISH_REASONS.get(choice.get("finish_reason") or "stop", "stop"),
            # vLLM names the stop string that ended the text; other servers say nothing
            stopped_by=stop if isinstance(stop := choice.get("stop_reason"), str) else echoed,
            model=str(data.get("model") or self.model),
        )

    def _send(self, body: dict[str, Any], *, stream: bool) -> httpx.Response:
        """POST with retries; a rejected `response_format` is dropped once and remembered."""
        try:
            return self._send_with_retries(body, stream=stream)
        except _NoResponseFormat:
            with self._lock:
                if self.supports_response_format:
                    log.warning(
                        "%s rejected response_format (JSON schema); falling back to plain "
                        "generation, so JSON output is no longer guaranteed by the server",
                        self.base_url,
                    )
                self.supports_response_format = False
            body = {k: v for k, v in body.items() if k != "response_format"}
            return self._send_with_retries(body, stream=stream)

    def _send_with_retries(self, body: dict[str, Any], *, stream: bool) -> httpx.Response:
        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=self._wait,
            retry=retry_if_exception_type((httpx.TransportError, _Transient)),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._post(body, stream=stream)
        except httpx.TimeoutException as exc:
            raise ModelError(
                f"{self._url} did not answer within {self.timeout:g} s "
                f"({self.retries + 1} attempts): the server is overloaded or the request is too "
                "long; raise the timeout or lower max_concurrency"
            ) from exc
        except httpx.TransportError as exc:
            raise ModelError(
                f"cannot reach {self.base_url}: {exc!r} after {self.retries + 1} attempts; is the "
                "server running? check the URL in your model spec openai:<base_url>#<model>"
            ) from exc
        except _Transient as exc:
            raise ModelError(
                f"{self._url} kept failing with HTTP {exc.status_code} after "
                f"{self.retries + 1} attempts: {exc.body[:300]}; the server is overloaded "
                "or unwell, check its logs"
            ) from exc
        raise AssertionError("unreachable")  # pragma: no cover - Retrying returns or raises

    def _wait(self, state: RetryCallState) -> float:
        """Exponential backoff, but honour a server's Retry-After (capped at 30 s)."""
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return min(exc.retry_after, 30.0)
        return wait_exponential(multiplier=self.backoff, max=10)(state)

    def _post(self, body: dict[str, Any], *, stream: bool) -> httpx.Response:
        """One attempt: a 2xx response (open, when streaming) or an exception that says why."""
        request = self._client.build_request("POST", self._url, json=body)
        response = self._client.send(request, stream=stream)
        if response.is_success:
            return response
        try:
            text = response.read().decode("utf-8", "replace")
        finally:
            response.close()
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Transient(response, text)
        if status == 400 and "response_format" in body and "response_format" in text:
            raise _NoResponseFormat(text)
        if status in (401, 403):
            raise ModelError(
                f"{self.base_url} refused the API key (HTTP {status}): set OPENAI_API_KEY or "
                f"pass api_key= with a key this server accepts. Server said: {text[:200]}"
            )
        if status == 404:
            if "model" in text.lower():
                raise ModelError(
                    f"{self.base_url} does not serve the model {body['model']!r} (HTTP 404: "
                    f"{text[:200]}); check the name after '#' in openai:<base_url>#<model>; "
                    f"GET {self.base_url}/models lists the served models"
                )
            raise ModelError(
                f"{self._url} does not exist (HTTP 404); an OpenAI-compatible base URL usually "
                "ends in /v1, e.g. openai:http://localhost:8000/v1#<model>"
            )
        raise ModelError(f"{self._url} rejected the request (HTTP {status}): {text[:300]}")

    def _query_context_length(self) -> int | None:
        """Best effort: vLLM reports max_model_len, llama.cpp n_ctx_train, in GET /models."""
        try:
            response = self._client.get(f"{self.base_url}/models", timeout=min(self.timeout, 10))
            entries = response.json().get("data") or []
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("id") != self.model:
                continue
            meta = entry.get("meta") or {}
            for value in (
                entry.get("max_model_len"),
                entry.get("context_length"),
                meta.get("n_ctx_train"),
            ):
                if isinstance(value, int) and value > 0:
                    return value
        return None
