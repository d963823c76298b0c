"""The one interface every model backend implements.

Batch-first: the runtime runs independent steps at the same time, and an engine is most
efficient when it sees their requests together, so the primitive is a list in, a list out.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from stepgraph.telemetry import model_call

T = TypeVar("T")


class Message(BaseModel):
    """One chat message."""

    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class Request(BaseModel):
    """What to generate. `json_schema` constrains decoding; `grammar` (GBNF) overrides it.

    When the last message is the assistant's, the model continues that reply rather than
    starting a new one (where the backend `continues_replies`): a caller can put words in
    the model's mouth, such as a value the calculator computed, and let it go on."""

    messages: list[Message]
    max_tokens: int = Field(default=512, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)
    json_schema: dict[str, Any] | None = None
    grammar: str | None = None
    adapter: str | None = None

    @classmethod
    def chat(cls, prompt: str, *, system: str | None = None, **options: Any) -> Request:
        messages = [Message(role="system", content=system)] if system else []
        messages.append(Message(role="user", content=prompt))
        return cls(messages=messages, **options)


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, str | None]:
    """The text before the first stop string in it, and that stop string (None: no stop)."""
    found = [(i, s) for s in stops if s and (i := text.find(s)) >= 0]
    if not found:
        return text, None
    cut, stop = min(found)
    return text[:cut], stop


def split_reply(messages: list[Message]) -> tuple[list[Message], str | None]:
    """The chat before a reply the caller began, and that beginning (None: no reply yet)."""
    if messages and messages[-1].role == "assistant":
        return messages[:-1], messages[-1].content
    return messages, None


class Completion(BaseModel):
    """What came back, with the counts the store and the benchmarks need."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    first_token_seconds: float | None = None
    finish_reason: Literal["stop", "length", "error"] = "stop"
    stopped_by: str | None = None  # the stop string that ended the text (never in it)
    model: str = ""


async def aiter_in_thread(make: Callable[[], Iterable[T]]) -> AsyncIterator[T]:
    """Run a blocking iterator in a worker thread and hand its items over as they come, so
    a model's decoding never blocks the event loop; its exception is raised here."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, object]] = asyncio.Queue()

    def pump() -> None:
        try:
            for item in make():
                loop.call_soon_threadsafe(queue.put_nowait, ("item", item))
            loop.call_soon_threadsafe(queue.put_nowait, ("end", None))
        except BaseException as exc:  # handed to the consumer, raised there
            loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))

    context = contextvars.copy_context()  # the caller's (a trace span's) in the thread too
    worker = loop.run_in_executor(None, context.run, pump)
    while True:
        kind, value = await queue.get()
        if kind == "item":
            yield value  # type: ignore[misc]
        elif kind == "error":
            await worker
            raise value  # type: ignore[misc]
        else:
            break
    await worker


class BackendBase:
    """Shared behaviour: async twins that do not block the event loop, a default stream."""

    name: str = "backend"
    continues_replies: bool = True  # a request ending in an assistant message continues it

    def generate(self, requests: list[Request]) -> list[Completion]:  # pragma: no cover
        raise NotImplementedError

    def stream(self, request: Request) -> Iterator[str]:
        yield self.generate([request])[0].text

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)

    @property
    def context_length(self) -> int:
        return 32768

    def complete(self, request: Request) -> Completion:
        with model_call(self.name, request) as traced:
            done = self.generate([request])[0]
            traced(done)
            return done

    async def agenerate(self, requests: list[Request]) -> list[Completion]:
        return await asyncio.to_thread(self.generate, requests)

    async def acomplete(self, request: Request) -> Completion:
        """One request, decoded beside whatever else is running; a span of its own when
        traces are on (stepgraph.telemetry)."""
        with model_call(self.name, request) as traced:
            done = (await self.agenerate([request]))[0]
            traced(done)
            return done

    async def astream(self, request: Request) -> AsyncIterator[str]:
        async for piece in aiter_in_thread(lambda: self.stream(request)):
            yield piece

    def close(self) -> None:
        """Release the engine's memory. Safe to call twice."""
