"""Step executors: how each kind of step gets done, and the registry the planner picks from."""

from stepgraph.executors.base import Executor, StepInput, StepOutput
from stepgraph.executors.calculator import CalculatorExecutor
from stepgraph.executors.docs import DocsExecutor
from stepgraph.executors.python import PythonExecutor
from stepgraph.executors.registry import ExecutorRegistry, default_registry
from stepgraph.executors.sql import SqlExecutor

__all__ = [
    "CalculatorExecutor",
    "DocsExecutor",
    "Executor",
    "ExecutorRegistry",
    "PythonExecutor",
    "SqlExecutor",
    "StepInput",
    "StepOutput",
    "default_registry",
]
