"""The run: planning, dataflow execution on LangGraph, verification hooks, composition."""

from stepgraph.runtime.events import Event, RunResult, StepResult, parse_event
from stepgraph.runtime.replay import ReplayReport, replay
from stepgraph.runtime.runtime import Runtime

__all__ = ["Event", "ReplayReport", "RunResult", "Runtime", "StepResult", "parse_event", "replay"]
