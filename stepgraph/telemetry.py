"""OpenTelemetry traces of runs: one span per run, with child spans for planning, each step
and candidate, each model call, each check and the composition.

Off unless configured. stepgraph only calls the OpenTelemetry API, whose default provider
does nothing (a few microseconds per span), so an application that already traces gets
stepgraph's spans in its own traces, and one that does not pays nothing. `STEPGRAPH_OTEL=1`
or the standard `OTEL_EXPORTER_OTLP_ENDPOINT` makes stepgraph set up the SDK with the OTLP
exporter itself (`pip install 'stepgraph[otel]'`), when the application has set no
provider. Spans are exported in the background: an endpoint that is down never slows a run.

Model calls follow the OpenTelemetry GenAI semantic conventions (`gen_ai.operation.name`,
`gen_ai.request.model`, `gen_ai.usage.input_tokens`, ...); stepgraph's own attributes
(`stepgraph.run_id`, `stepgraph.step_id`, `stepgraph.executor`, `stepgraph.check`,
`stepgraph.verdict`) link each span to the run in the memory store, so a trace viewer
and `stepgraph runs show RUN_ID` tell the same story.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, TracerProvider

from stepgraph.errors import ConfigError

_provider: TracerProvider | None = None  # None: the global one (`use` sets another)
_configured = False


def use(provider: TracerProvider | None) -> None:
    """Send stepgraph's spans to `provider` instead of the global one (None: back to it).
    For tests and for applications that keep several providers."""
    global _provider
    _provider = provider


def tracer() -> trace.Tracer:
    return trace.get_tracer("stepgraph", tracer_provider=_provider)


def wanted() -> bool:
    """Whether the environment asks for traces to be exported."""
    flag = os.environ.get("STEPGRAPH_OTEL", "").strip().lower() in ("1", "true", "yes", "on")
    return flag or bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def configure() -> None:
    """Set up the SDK with the OTLP exporter when the environment asks for traces and the
    application has set no tracer provider of its own. Once per process."""
    global _configured
    if _configured or not wanted():
        return
    _configured = True
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return  # the application set its own provider: stepgraph's spans go there
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        _configured = False
        raise ConfigError(
            "tracing is on (STEPGRAPH_OTEL or OTEL_EXPORTER_OTLP_ENDPOINT is set) but the "
            "OpenTelemetry SDK is not installed: pip install 'stepgraph[otel]'"
        ) from None
    service = os.environ.get("OTEL_SERVICE_NAME", "stepgraph")
    provider = SdkTracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def run_span(run_id: str, model: str) -> tuple[Span, otel_context.Context]:
    """The run's span (ended by the caller), and the context its children start in."""
    span = tracer().start_span(
        "stepgraph.run", attributes={"stepgraph.run_id": run_id, "gen_ai.request.model": model}
    )
    return span, trace.set_span_in_context(span)


@contextmanager
def span(
    name: str, parent: otel_context.Context | None = None, **attributes: Any
) -> Iterator[Span]:
    """A child span, current while the block runs (so model calls inside nest under it);
    `parent`: the run's context, for work that LangGraph started elsewhere."""
    values = {f"stepgraph.{k}": v for k, v in attributes.items() if v is not None}
    with tracer().start_as_current_span(name, context=parent, attributes=values) as current:
        yield current


def annotate(attributes: dict[str, Any]) -> None:
    """Set attributes (full names) on the current span, where traces are on."""
    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes({k: v for k, v in attributes.items() if v is not None})


@contextmanager
def model_call(model: str, request: Any) -> Iterator[Callable[[Any], None]]:
    """A model call's span (GenAI conventions); call what it yields with the Completion."""
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
        "gen_ai.request.max_tokens": request.max_tokens,
        "gen_ai.request.temperature": request.temperature,
    }
    with tracer().start_as_current_span(
        f"chat {model}", kind=SpanKind.CLIENT, attributes=attributes
    ) as current:

        def done(completion: Any) -> None:
            if current.is_recording():
                current.set_attribute("gen_ai.response.model", completion.model or model)
                current.set_attribute("gen_ai.usage.input_tokens", completion.prompt_tokens)
                current.set_attribute("gen_ai.usage.output_tokens", completion.completion_tokens)
                current.set_attribute("gen_ai.response.finish_reasons", [completion.finish_reason])

        yield done


def check(
    run_id: str,
    step_id: str | None,
    name: str,
    passed: bool | None,
    evidence: str,
    parent: otel_context.Context | None = None,
) -> None:
    """A check's outcome as a span under the current span (the step's, or the answer's),
    else under `parent`."""
    current = trace.get_current_span()
    where = None if current.get_span_context().is_valid else parent
    verdict = "passed" if passed else ("failed" if passed is False else "none")
    attributes = {"stepgraph.run_id": run_id, "stepgraph.check": name, "stepgraph.verdict": verdict}
    if step_id is not None:
        attributes["stepgraph.step_id"] = step_id
    if evidence:
        attributes["stepgraph.evidence"] = evidence[:500]
    tracer().start_span(f"stepgraph.check {name}", context=where, attributes=attributes).end()
