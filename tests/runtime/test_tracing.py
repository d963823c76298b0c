"""OpenTelemetry traces of a run: one run span; planning, each step, each model call and
each check under it, with the GenAI attributes, and token counts equal to the store's."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_runtime import Echo

from stepgraph import Runtime, ScriptedBackend, Store, telemetry
from stepgraph.executors.llm import LlmExecutor

PLAN = json.dumps(
    {
        "steps": [
            {"id": "s1", "depends_on": [], "executor": "llm", "instruction": "name a fruit"},
            {"id": "s2", "depends_on": [], "executor": "llm", "instruction": "name a colour"},
            {
                "id": "s3",
                "depends_on": ["s1", "s2"],
                "executor": "python",
                "instruction": "join {{s1}} and {{s2}}",
            },
        ]
    }
)


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.use(provider)
    yield exporter
    telemetry.use(None)


def traced_run(tmp_path):
    backend = ScriptedBackend([PLAN], responder=lambda r: "a ripe mango, in a green bowl")
    python = Echo()
    python.name, python.writes_text, python.computes = "python", False, True
    executors = [LlmExecutor(backend), python]
    with Runtime(backend, store=tmp_path / "s.db", executors=executors, direct=False) as runtime:
        return runtime.run("Name a fruit and a colour, then join them.")


def test_a_run_is_one_trace_with_its_plan_steps_model_calls_and_checks(tmp_path, spans):
    result = traced_run(tmp_path)
    assert result.status == "done"
    finished = spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}
    (run,) = [s for s in finished if s.name == "stepgraph.run"]
    assert run.parent is None and run.attributes["stepgraph.run_id"] == result.run_id
    assert {s.context.trace_id for s in finished} == {run.context.trace_id}  # one trace

    def parent(span):
        return by_id.get(span.parent.span_id) if span.parent else None

    named = {s.name: s for s in finished}
    for name in ("stepgraph.plan", "stepgraph.step s1", "stepgraph.step s3", "stepgraph.compose"):
        assert parent(named[name]) is run, name
    plan = named["stepgraph.plan"]
    assert plan.attributes["gen_ai.request.model"] == "scripted"
    assert plan.attributes["gen_ai.usage.output_tokens"] > 0
    assert named["stepgraph.step s3"].attributes["stepgraph.executor"] == "python"

    store = Store(tmp_path / "s.db").run(result.run_id)
    for step in store.steps:
        span = named[f"stepgraph.step {step.step_id}"]
        calls = [s for s in finished if s.name == "chat scripted" and parent(s) is span]
        # every model call of the step, with the GenAI attributes; tokens as the store's
        assert len(calls) == (1 if step.executor == "llm" else 0), step.step_id
        for call in calls:
            assert call.attributes["gen_ai.operation.name"] == "chat"
            assert call.attributes["gen_ai.request.model"] == "scripted"
        assert sum(c.attributes["gen_ai.usage.input_tokens"] for c in calls) == (
            step.prompt_tokens if calls else 0
        )
        assert sum(c.attributes["gen_ai.usage.output_tokens"] for c in calls) == (
            step.completion_tokens if calls else 0
        )
        assert span.attributes["gen_ai.usage.output_tokens"] == step.completion_tokens
        checks = [s for s in finished if s.name.startswith("stepgraph.check") and parent(s) is span]
        stored = [v for v in store.verdicts if v.step_id == step.step_id]
        assert len(checks) == len(stored) > 0
        assert all(
            c.attributes["stepgraph.verdict"] in ("passed", "failed", "none") for c in checks
        )
    composing = [s for s in finished if parent(s) is named["stepgraph.compose"]]
    assert [s.name for s in composing] == ["chat scripted"]
    assert run.attributes["gen_ai.usage.output_tokens"] == result.completion_tokens


def test_without_a_provider_nothing_is_recorded_and_the_run_is_the_same(tmp_path):
    result = traced_run(tmp_path)  # the API's default provider: no spans, no error
    assert result.status == "done" and result.answer


def test_an_endpoint_that_is_down_never_fails_a_run(tmp_path):
    """STEPGRAPH_OTEL=1 sets up the SDK's OTLP exporter; nothing listens at the port."""
    code = f"""
import sys
sys.path.insert(0, {str(tmp_path.parent)!r})
from stepgraph import Runtime, ScriptedBackend
backend = ScriptedBackend(responder=lambda r: "4")
with Runtime(backend, store={str(tmp_path / "d.db")!r}) as runtime:
    result = runtime.run("Say four.")
from opentelemetry import trace
print(type(trace.get_tracer_provider()).__module__, result.status, result.answer)
"""
    env = {
        "STEPGRAPH_OTEL": "1",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    module, status, answer = done.stdout.split()[-3:]
    assert module.startswith("opentelemetry.sdk") and answer == "4", done.stdout
