"""The tools of MCP servers as executors, through the official `mcp` SDK.

Each tool of a connected server becomes an executor the planner can choose: its name is
`<server>_<tool>`, its description is the tool's own, and its arguments are written by the
model for each step, decoded under the tool's input schema and checked against it before
the call (`model_writes = "arguments"`). A tool's result is a fact from outside the task
(`brings_facts`), verified and recorded like any step's output.

Why a connection runs on an event loop of its own: an MCP session (its streams, its task
group, the server's subprocess) lives on the loop that opened it, and the Runtime runs
each run on a loop of its own (`asyncio.run`). So a server is connected once, on a
background thread, and every run's steps call its tools there.

A server that does not start is reported with its name and left out (the other executors
still work); a tool whose input schema is not a valid JSON Schema likewise. A server that
crashes or hangs fails the step that called it, with a message that says which server and
tool, and the run goes on (retry, replan).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator

from stepgraph.errors import ConfigError
from stepgraph.executors.base import StepInput, StepOutput

CONNECT_SECONDS = 30.0


class McpServer(BaseModel):
    """One MCP server: a command started over stdio, or a streamable HTTP URL."""

    name: str = Field(description="what its tools' executor names start with")
    command: list[str] | None = Field(default=None, description="argv of a stdio server")
    url: str | None = Field(default=None, description="a streamable HTTP endpoint")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment (stdio)")

    @model_validator(mode="after")
    def _one_transport(self) -> McpServer:
        if (self.command is None) == (self.url is None):
            raise ValueError(f"MCP server {self.name!r}: give either command or url")
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", self.name):
            raise ValueError(f"MCP server name {self.name!r}: use letters, digits, - and _")
        return self

    @classmethod
    def parse(cls, spec: str | McpServer | dict) -> McpServer:
        """A server from what a user writes: `NAME=COMMAND ...`, `NAME=URL`, a bare command
        (named after its script) or URL (named after its host), or a settings table."""
        if isinstance(spec, McpServer):
            return spec
        if isinstance(spec, dict):
            return cls(**spec)
        name, _, rest = spec.partition("=")
        if not rest or " " in name or "/" in name:
            name, rest = "", spec
        rest = rest.strip()
        if not rest:
            raise ConfigError("an MCP server is a command or a URL, e.g. --mcp 'python srv.py'")
        if rest.startswith(("http://", "https://")):
            host = re.sub(r"^https?://([^/:]+).*$", r"\1", rest)
            return cls(name=name or re.sub(r"\W", "_", host), url=rest)
        argv = shlex.split(rest)
        script = next((a for a in reversed(argv) if not a.startswith("-")), argv[0])
        default = re.sub(r"\W", "_", Path(script).stem) or "mcp"
        return cls(name=name or default, command=argv)


class McpConnection:
    """One server's session, held open on a background event loop."""

    def __init__(self, server: McpServer, *, connect_seconds: float = CONNECT_SECONDS):
        self.server = server
        self.tools: list[Any] = []
        self.error: str | None = None  # why the server cannot be used (None: it can)
        self._client = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"mcp-{server.name}", daemon=True
        )
        self._thread.start()
        self._ready = threading.Event()
        self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115 (closed in close)
        self._closing: asyncio.Event | None = None
        self._held = asyncio.run_coroutine_threadsafe(self._hold(), self._loop)
        if not self._ready.wait(connect_seconds):
            self.error = f"did not answer within {connect_seconds:g} s"
        elif self._held.done() and self.error is None:
            self.error = self._failure()

    def _target(self):
        """A URL, or the stdio transport of the server's command, whose stderr goes to a
        file of its own (read back when it fails: what the server said is the reason)."""
        from mcp import StdioServerParameters
        from mcp.client.stdio import stdio_client

        if self.server.url is not None:
            return self.server.url
        command, *args = self.server.command or [""]
        params = StdioServerParameters(
            command=command, args=args, env={**os.environ, **self.server.env}
        )
        return stdio_client(params, errlog=self._stderr)

    async def _hold(self) -> None:
        """Open the session, list the tools, and keep it open until `close`."""
        from mcp import Client

        self._closing = asyncio.Event()
        try:
            async with Client(self._target()) as client:
                listed = await client.list_tools()
                self.tools = list(listed.tools)
                self._client = client
                self._ready.set()
                await self._closing.wait()
        except BaseException as exc:
            said = self._said()
            self.error = self.error or (_reason(exc) + (f"; it said: {said}" if said else ""))
            raise
        finally:
            self._client = None
            self._ready.set()

    def _said(self) -> str:
        """The last line the server wrote to its stderr."""
        try:
            self._stderr.seek(0)
            lines = [line.strip() for line in self._stderr.read().splitlines() if line.strip()]
        except (OSError, ValueError):
            return ""
        return lines[-1][:300] if lines else ""

    def _failure(self) -> str:
        exc = self._held.exception() if self._held.done() else None
        return self.error or (_reason(exc) if exc else "the session ended")

    async def call(self, tool: str, arguments: dict, timeout: float) -> Any:
        """The tool's result, called on the connection's loop; raises McpCallError with
        what went wrong (the server stopped, did not answer, refused)."""
        if self._client is None or self._held.done():
            raise McpCallError(f"the server is not running ({self._failure()})")
        future = asyncio.run_coroutine_threadsafe(
            self._client.call_tool(tool, arguments), self._loop
        )
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except TimeoutError:
            future.cancel()
            if self._held.done():
                raise McpCallError(f"the server stopped ({self._failure()})") from None
            raise McpCallError(f"no answer within {timeout:g} s") from None
        except McpCallError:
            raise
        except Exception as exc:
            raise McpCallError(f"the call failed ({_reason(exc)})") from None

    def close(self) -> None:
        """End the session (and a stdio server's process) and the background loop."""
        if self._closing is not None and not self._held.done():
            self._loop.call_soon_threadsafe(self._closing.set)
            with contextlib.suppress(BaseException):  # an ended session's error is in `error`
                self._held.result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._stderr.close()


class McpCallError(Exception):
    """A tool call that did not come back with a result."""


class McpTool:
    """One tool of an MCP server, as an executor."""

    brings_facts = True  # its result is a fact from outside the task
    model_writes = "arguments"  # written by the model under `input_schema`, per step

    def __init__(self, connection: McpConnection, tool: Any):
        self.connection = connection
        self.tool = tool.name
        self.server = connection.server.name
        self.name = executor_name(self.server, tool.name)
        self.input_schema = tool.input_schema or {"type": "object"}
        what = (tool.description or tool.name).strip()
        self.description = f"{what} (tool {tool.name} of the MCP server {self.server})"

    async def run(self, step: StepInput) -> StepOutput:
        import jsonschema

        where = f"MCP server {self.server!r}, tool {self.tool!r}"
        arguments = step.args.get("arguments")
        if not isinstance(arguments, dict):
            return StepOutput(error=f"{where}: the step has no arguments object")
        try:
            jsonschema.validate(arguments, self.input_schema)
        except jsonschema.ValidationError as exc:
            return StepOutput(error=f"{where}: the arguments do not fit its schema: {exc.message}")
        try:
            result = await self.connection.call(self.tool, arguments, step.timeout)
        except McpCallError as exc:
            return StepOutput(error=f"{where}: {exc}")
        text = "\n".join(
            getattr(part, "text", "") for part in getattr(result, "content", []) or []
        ).strip()
        data = getattr(result, "structured_content", None)
        if getattr(result, "is_error", False):
            return StepOutput(error=f"{where} returned an error: {text or 'no detail'}")
        if not text and data is not None:
            text = json.dumps(data)
        return StepOutput(output=text, data={"arguments": arguments, "result": data})


def executor_name(server: str, tool: str) -> str:
    """`<server>_<tool>` in the characters a plan's executor names use."""
    return re.sub(r"\W", "_", f"{server}_{tool}").lower()


def connect(servers: list[McpServer | str | dict], *, warn=None) -> tuple[list, list[McpTool]]:
    """Connect to each server and make its tools executors. A server that does not start,
    and a tool whose input schema is not valid, are left out with a warning that names
    them; the connections that work and their tools are returned."""
    import jsonschema

    try:
        import mcp  # noqa: F401
    except ImportError:
        raise ConfigError(
            "MCP servers need the MCP SDK, which is not installed: pip install 'stepgraph[mcp]'"
        ) from None
    warn = warn or (lambda line: print(f"stepgraph: {line}", file=sys.stderr))
    connections, tools = [], []
    for spec in servers:
        server = McpServer.parse(spec)
        connection = McpConnection(server)
        if connection.error is not None:
            warn(f"MCP server {server.name!r} left out: {connection.error}")
            connection.close()
            continue
        connections.append(connection)
        for tool in connection.tools:
            try:
                jsonschema.Draft202012Validator.check_schema(tool.input_schema or {})
            except jsonschema.SchemaError as exc:
                warn(
                    f"MCP server {server.name!r}, tool {tool.name!r} left out: its input "
                    f"schema is not valid ({exc.message})"
                )
                continue
            tools.append(McpTool(connection, tool))
    return connections, tools


def _reason(exc: BaseException | None) -> str:
    """A one-line reason from an exception (anyio wraps them in groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if exc is None:
        return "the session ended"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
