"""stepgraph: plan an instruction into a graph of steps, run them in parallel, verify, remember.

    from stepgraph import Runtime
    result = Runtime("qwen2.5-coder-0.5b").run("Compare ... and recommend ...")
    print(result.answer)
"""

from stepgraph.errors import PlanError, StepgraphError
from stepgraph.memory import Store
from stepgraph.models import Message, Request, ScriptedBackend, load_model
from stepgraph.planner import Plan, Planner, Step
from stepgraph.runtime import Event, RunResult, Runtime, StepResult, replay

__version__ = "0.1.0"
__all__ = [
    "Event", "Message", "Plan", "PlanError", "Planner", "Request", "RunResult", "Runtime",
    "ScriptedBackend", "Step", "StepResult", "StepgraphError", "Store", "load_model", "replay",
]
