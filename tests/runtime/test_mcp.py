"""MCP tools as executors, against a real MCP server (tests/runtime/mcp_facts_server.py,
written with the official SDK) started over stdio."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

import pytest

from stepgraph import Runtime, ScriptedBackend, Store
from stepgraph.errors import ConfigError
from stepgraph.executors.base import StepInput
from stepgraph.executors.llm import ARGUMENTS_SYSTEM, LlmExecutor

SERVER = f"facts={sys.executable} {Path(__file__).with_name('mcp_facts_server.py')}"


def plan(*steps):
    return json.dumps(
        {
            "steps": [
                {"id": i, "depends_on": d, "executor": e, "instruction": t} for i, d, e, t in steps
            ]
        }
    )


def responder(request):
    """The model: a tool's arguments (the city named in the step), else an answer."""
    if request.messages[0].content == ARGUMENTS_SYSTEM:
        step = request.messages[1].content.split("Your step:", 1)[1]
        city = "Oslo" if "Oslo" in step else "Lisbon"
        return json.dumps({"city": city}) if "crash" not in step else "{}"
    return "Oslo: 4 C, rain; 709000 people."


def runtime_with(tmp_path, steps, **options):
    backend = ScriptedBackend([plan(*steps)], responder=responder)
    runtime = Runtime(
        backend,
        store=tmp_path / "s.db",
        executors=[LlmExecutor(backend)],
        mcp=[SERVER],
        direct=False,
        **options,
    )
    return runtime, backend


def test_each_tool_is_an_executor_with_its_own_description_and_schema(tmp_path):
    runtime, _ = runtime_with(tmp_path, [])
    with runtime:
        tool = runtime.executors["facts_forecast"]
        assert tool.description.startswith("Tomorrow's weather forecast for a city.")
        assert "facts_population" in runtime.planner.executors  # the planner reads them
        assert tool.inner.input_schema["required"] == ["city"]


def test_two_tools_run_in_parallel_and_their_results_are_checked_and_stored(tmp_path):
    steps = [
        ("s1", [], "facts_forecast", "Get tomorrow's forecast for Oslo."),
        ("s2", [], "facts_population", "Get the population of Oslo."),
        ("s3", ["s1", "s2"], "llm", "Say what {{s1}} and {{s2}} tell about Oslo."),
    ]
    runtime, backend = runtime_with(tmp_path, steps)
    with runtime:
        result = runtime.run("What is tomorrow's weather in Oslo, and how many live there?")
    assert result.status in ("done", "unverified"), result.error
    by_id = {s.step_id: s for s in result.steps}
    assert by_id["s1"].output.startswith("Oslo: 4 C, rain")
    assert by_id["s2"].output.startswith("Oslo: 709000 people")
    # the arguments were written under the tool's schema, and both calls overlapped
    asked = [r for r in backend.requests if r.messages[0].content == ARGUMENTS_SYSTEM]
    assert len(asked) == 2 and all(r.json_schema["required"] == ["city"] for r in asked)
    spans = [
        tuple(map(float, re.search(r"\[ran ([\d.]+)-([\d.]+)\]", by_id[s].output).groups()))
        for s in ("s1", "s2")
    ]
    assert max(a for a, _ in spans) < min(b for _, b in spans), spans
    record = Store(tmp_path / "s.db").run(result.run_id)
    stored = {s.step_id: s for s in record.steps}
    assert stored["s1"].data["arguments"] == {"city": "Oslo"}
    assert any(v.step_id == "s1" and v.passed for v in record.verdicts)


def test_a_server_that_dies_mid_run_fails_its_steps_clearly_and_the_run_goes_on(tmp_path):
    steps = [
        ("s1", [], "llm", "Say something about Oslo."),
        ("s2", [], "facts_crash", "Call crash."),
        ("s3", ["s1", "s2"], "facts_forecast", "Get tomorrow's forecast for Oslo."),
    ]
    runtime, _ = runtime_with(tmp_path, steps, max_replans=0, step_timeout=20)
    with runtime:
        result = runtime.run("Crash the server, then get Oslo's forecast.")
        by_id = {s.step_id: s for s in result.steps}
        assert by_id["s2"].status == "failed"
        assert by_id["s2"].error.startswith("MCP server 'facts', tool 'crash': ")
        assert by_id["s1"].status == "done"  # the other executors still work
        assert result.answer  # the run went on to an answer
        # the server is gone: a later call fails at once, naming it
        tool = runtime.executors["facts_forecast"].inner
        step = StepInput(step_id="x", instruction="x", args={"arguments": {"city": "Oslo"}})
        error = asyncio.run(tool.run(step)).error
        assert error.startswith("MCP server 'facts', tool 'forecast': ")
        assert "not running" in error or "Connection closed" in error


def test_a_server_that_does_not_start_is_left_out_by_name(tmp_path, capsys):
    backend = ScriptedBackend(responder=lambda r: "4")
    with Runtime(
        backend,
        store=tmp_path / "s.db",
        executors=[LlmExecutor(backend)],
        mcp=["ghost=/nonexistent/mcp-server --stdio"],
    ) as runtime:
        assert list(runtime.executors) == ["llm"]
        assert runtime.run("Say four.").answer == "4"
    assert "MCP server 'ghost' left out" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"name": "x"}, "give either command or url"),
        ({"name": "x y", "url": "http://h/mcp"}, "use letters, digits"),
    ],
)
def test_a_malformed_server_entry_is_one_clear_error(tmp_path, spec, says):
    with pytest.raises(ConfigError, match=says):
        Runtime(ScriptedBackend(), store=tmp_path / "s.db", executors=[], mcp=[spec])


def test_servers_from_the_settings_file_connect_too(tmp_path):
    from stepgraph.config import load_settings

    command = json.dumps(SERVER.split("=", 1)[1].split())
    (tmp_path / "stepgraph.toml").write_text(
        f'[stepgraph]\nmodel = "scripted"\n\n[[stepgraph.mcp]]\nname = "facts"\ncommand = {command}\n'
    )
    settings = load_settings(tmp_path / "stepgraph.toml")
    assert settings.mcp[0]["name"] == "facts"
    with Runtime(
        ScriptedBackend(), store=tmp_path / "s.db", executors=[], mcp=settings.mcp
    ) as runtime:
        assert sorted(runtime.executors) == ["facts_crash", "facts_forecast", "facts_population"]


def test_a_streamable_http_server_is_given_by_its_url(tmp_path):
    import socket
    import subprocess
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = str(Path(__file__).with_name("mcp_facts_server.py"))
    server = subprocess.Popen(
        [sys.executable, script, "--http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 30
        while time.time() < deadline:  # until it listens
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        with Runtime(
            ScriptedBackend(),
            store=tmp_path / "s.db",
            executors=[],
            mcp=[f"facts=http://127.0.0.1:{port}/mcp"],
        ) as runtime:
            tool = runtime.executors["facts_forecast"].inner
            step = StepInput(step_id="x", instruction="x", args={"arguments": {"city": "Lisbon"}})
            out = asyncio.run(tool.run(step))
        assert out.output.startswith("Lisbon: 19 C, sunny"), out
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_tool_with_an_invalid_schema_is_left_out_by_name(tmp_path, capsys):
    broken = f"{SERVER} --broken-schema"
    with Runtime(ScriptedBackend(), store=tmp_path / "s.db", executors=[], mcp=[broken]) as runtime:
        assert sorted(runtime.executors) == ["facts_crash", "facts_forecast"]
    err = capsys.readouterr().err
    assert "MCP server 'facts', tool 'population' left out: its input schema is not valid" in err


def test_a_program_that_does_not_speak_mcp_is_left_out_by_name(tmp_path, capsys):
    liar = f"liar={sys.executable} -c \"print('HTTP/1.1 200 OK')\""
    with Runtime(ScriptedBackend(), store=tmp_path / "s.db", executors=[], mcp=[liar]) as runtime:
        assert runtime.executors == {}
    assert "MCP server 'liar' left out: " in capsys.readouterr().err
