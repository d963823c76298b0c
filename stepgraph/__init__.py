"""stepgraph: plan an instruction into a graph of steps, run them in parallel, verify, remember.

    from stepgraph import Runtime
    result = Runtime("qwen2.5-coder-0.5b").run("Compare ... and recommend ...")
    print(result.answer)

Names are imported on first use, so `import stepgraph` (and the CLI) stays fast.
"""

from importlib import import_module
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "Runtime": "stepgraph.runtime",
    "RunResult": "stepgraph.runtime",
    "StepResult": "stepgraph.runtime",
    "Event": "stepgraph.runtime",
    "replay": "stepgraph.runtime",
    "Plan": "stepgraph.planner",
    "Step": "stepgraph.planner",
    "Planner": "stepgraph.planner",
    "Store": "stepgraph.memory",
    "Message": "stepgraph.models",
    "Request": "stepgraph.models",
    "ScriptedBackend": "stepgraph.models",
    "load_model": "stepgraph.models",
    "StepgraphError": "stepgraph.errors",
    "PlanError": "stepgraph.errors",
    # what a plugin is written against: an executor, its input and output, a check
    "Executor": "stepgraph.executors",
    "StepInput": "stepgraph.executors",
    "StepOutput": "stepgraph.executors",
    "Verifier": "stepgraph.verifier",
    "Verdict": "stepgraph.verifier",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from stepgraph.errors import PlanError, StepgraphError
    from stepgraph.executors import Executor, StepInput, StepOutput
    from stepgraph.memory import Store
    from stepgraph.models import Message, Request, ScriptedBackend, load_model
    from stepgraph.planner import Plan, Planner, Step
    from stepgraph.runtime import Event, RunResult, Runtime, StepResult, replay
    from stepgraph.verifier import Verdict, Verifier


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'stepgraph' has no attribute {name!r}")
