"""A small MCP server for the tests, written with the official SDK, run over stdio.

`forecast` and `population` take half a second each and report when they ran, so a test
can see two calls overlap; `crash` ends the server's process as a crash would."""

import os
import time

from mcp.server.mcpserver import MCPServer

server = MCPServer("facts")
FORECAST = {"oslo": "4 C, rain", "lisbon": "19 C, sunny"}
POPULATION = {"oslo": 709000, "lisbon": 545000}


def _timed(text: str, start: float) -> str:
    return f"{text} [ran {start:.3f}-{time.time():.3f}]"


@server.tool()
def forecast(city: str) -> str:
    """Tomorrow's weather forecast for a city."""
    start = time.time()
    time.sleep(0.5)
    return _timed(f"{city}: {FORECAST.get(city.lower(), 'unknown')}", start)


@server.tool()
def population(city: str) -> str:
    """How many people live in a city."""
    start = time.time()
    time.sleep(0.5)
    return _timed(f"{city}: {POPULATION.get(city.lower(), 'unknown')} people", start)


@server.tool()
def crash() -> str:
    """Ends the server's process at once."""
    os._exit(3)


if __name__ == "__main__":
    import sys

    if "--broken-schema" in sys.argv:  # a server that lists a tool with an invalid schema
        tool = server._tool_manager.get_tool("population")
        tool.parameters = {"type": "object", "properties": {"city": {"type": "towns"}}}
    if "--http" in sys.argv:  # streamable HTTP on 127.0.0.1:PORT/mcp
        server.run("streamable-http", port=int(sys.argv[sys.argv.index("--http") + 1]))
    else:
        server.run()
