"""A small MCP server (the official SDK, over stdio) for examples/mcp_agent.py: tomorrow's
forecast and the sunrise for a few cities, from a fixed table, so that the agent's answer
can be checked by hand.

    .venv/bin/python examples/mcp_server.py      # speaks MCP on stdin/stdout
"""

from mcp.server.mcpserver import MCPServer

server = MCPServer("weather")

FORECAST = {
    "oslo": {"high_c": 4, "low_c": -1, "sky": "rain"},
    "lisbon": {"high_c": 19, "low_c": 12, "sky": "sunny"},
    "madrid": {"high_c": 15, "low_c": 5, "sky": "clear"},
    "paris": {"high_c": 9, "low_c": 4, "sky": "cloudy"},
}
SUNRISE = {"oslo": "08:52", "lisbon": "07:37", "madrid": "08:16", "paris": "08:25"}


@server.tool()
def forecast(city: str) -> str:
    """Tomorrow's weather for a city: high and low in degrees Celsius, and the sky."""
    day = FORECAST.get(city.strip().lower())
    if day is None:
        return f"no forecast for {city}; known cities: {', '.join(sorted(FORECAST))}"
    return f"{city}: high {day['high_c']} C, low {day['low_c']} C, {day['sky']}"


@server.tool()
def sunrise(city: str) -> str:
    """Tomorrow's sunrise in a city, local time."""
    time = SUNRISE.get(city.strip().lower())
    return f"{city}: sunrise at {time}" if time else f"no sunrise time for {city}"


if __name__ == "__main__":
    server.run()
