"""A deterministic backend for tests: replies come from a list or a function of the request."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from stepgraph.models.base import BackendBase, Completion, Request, cut_at_stop, split_reply

Reply = str | Callable[[Request], str]
_LEADING_NUMBER = re.compile(r"^\s*-?\$?[\d,]*\.?\d+")


def _continued(text: str, request: Request) -> str:
    """The scripted `text` as the continuation of a reply the request began, if it is one."""
    _, begun = split_reply(request.messages)
    if not begun or "=" not in begun:
        return text
    head = begun[: begun.rfind("=") + 1]
    if not text.startswith(head):
        return text
    return _LEADING_NUMBER.sub("", text[len(head) :], count=1)


class ScriptedBackend(BackendBase):
    """Answers each request with the next scripted reply, or with `responder(request)`.

    Every request it received is kept in `requests`, so a test can assert on prompts. A
    request that continues a reply the caller began (the calculator writing a value after
    an `=`) gets the rest of the scripted reply after that `=` and the number following
    it, as a model would go on from the value written for it.
    """

    name = "scripted"

    def __init__(
        self,
        replies: Iterable[Reply] = (),
        *,
        responder: Callable[[Request], str] | None = None,
        stream_delay: float = 0.0,
    ):
        self._replies = list(replies)
        self.stream_delay = stream_delay
        self._responder = responder
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        self.batches: list[int] = []

    def _reply(self, request: Request) -> str:
        with self._lock:
            self.requests.append(request)
            if self._replies:
                reply = self._replies.pop(0)
            elif self._responder is not None:
                reply = self._responder
            else:
                raise AssertionError(
                    f"ScriptedBackend ran out of replies at request {len(self.requests)}: "
                    f"{request.messages[-1].content[:200]!r}"
                )
        text = reply(request) if callable(reply) else reply
        return _continued(text, request)

    def generate(self, requests: list[Request]) -> list[Completion]:
        self.batches.append(len(requests))
        out = []
        for request in requests:
            text = self._reply(request)
            text, stop = cut_at_stop(text, request.stop)  # as an engine cuts at a stop
            prompt = sum(len(m.content) for m in request.messages) // 4
            out.append(
                Completion(
                    text=text,
                    prompt_tokens=prompt,
                    completion_tokens=max(1, len(text) // 4),
                    stopped_by=stop,
                    model="scripted",
                )
            )
        return out

    def stream(self, request: Request) -> Iterator[str]:
        text = self._reply(request)
        for i in range(0, len(text), 8):
            if self.stream_delay:
                time.sleep(self.stream_delay)
            yield text[i : i + 8]
