"""The executors a run may use, by name.

The planner sees `describe()` in its prompt and names an executor for each step; plan
validation checks those names with `in`; the runtime looks executors up with `get`.
Third-party executors arrive through the entry-point group `stepgraph.executors`: each
entry point names a class or zero-argument factory that returns an Executor. A plugin that
fails to load is skipped with a warning, so one broken package cannot stop every run.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Literal

from stepgraph.errors import ExecutorError
from stepgraph.executors.base import Executor
from stepgraph.executors.calculator import CalculatorExecutor
from stepgraph.executors.docs import DocsExecutor
from stepgraph.executors.python import PythonExecutor
from stepgraph.executors.sql import SqlExecutor

ENTRY_POINT_GROUP = "stepgraph.executors"


class ExecutorRegistry:
    """Executors by name, in the order they were registered (the order the planner sees)."""

    def __init__(self, executors: list[Executor] | None = None) -> None:
        self._executors: dict[str, Executor] = {}
        for executor in executors or []:
            self.register(executor)

    def register(self, executor: Executor, *, replace: bool = False) -> None:
        """Add an executor. A second one with the same name is an error unless `replace`."""
        if not isinstance(executor, Executor):
            raise ExecutorError(
                f"{executor!r} is not an executor: it needs `name`, `description` and "
                "`async def run(step)`"
            )
        if not isinstance(executor.name, str) or not executor.name:
            raise ExecutorError(f"executor {executor!r} has no name")
        if executor.name in self._executors and not replace:
            raise ExecutorError(f"an executor named {executor.name!r} is already registered")
        self._executors[executor.name] = executor

    def get(self, name: str) -> Executor:
        try:
            return self._executors[name]
        except KeyError:
            known = ", ".join(self._executors) or "none"
            raise ExecutorError(f"unknown executor {name!r}; known executors: {known}") from None

    def names(self) -> list[str]:
        return list(self._executors)

    def describe(self) -> str:
        """One line per executor, "name: description", for the planner's prompt."""
        return "\n".join(
            f"{name}: {' '.join(executor.description.split())}"
            for name, executor in self._executors.items()
        )

    def __contains__(self, name: object) -> bool:
        return name in self._executors

    def __iter__(self) -> Iterator[Executor]:
        return iter(list(self._executors.values()))

    def __len__(self) -> int:
        return len(self._executors)

    def __repr__(self) -> str:
        return f"ExecutorRegistry({self.names()})"


def load_plugins(registry: ExecutorRegistry, *, group: str = ENTRY_POINT_GROUP) -> list[str]:
    """Register the executors installed packages declare in `group`; return their names.
    A plugin that cannot be loaded, built or registered is skipped with a warning."""
    loaded: list[str] = []
    for entry in entry_points(group=group):
        try:
            factory = entry.load()
            executor = factory() if callable(factory) else factory
            registry.register(executor)
        except Exception as exc:  # a plugin may fail in any way
            warnings.warn(
                f"skipped executor plugin {entry.name!r} ({entry.value}): "
                f"{type(exc).__name__}: {exc}",
                RuntimeWarning,
                stacklevel=2,
            )
            continue
        loaded.append(executor.name)
    return loaded


def default_registry(
    *,
    docs_dir: str | Path | None = None,
    sql_db: str | Path | None = None,
    llm: Executor | None = None,
    plugins: bool = True,
    python_sandbox: Literal["kernel", "none"] = "kernel",
) -> ExecutorRegistry:
    """calculator and python always; docs, sql and llm when given; then installed plugins.
    A missing docs folder or database file raises ExecutorError. `python_sandbox="none"`
    runs python steps unconfined: for trusted code on a host without Landlock."""
    registry = ExecutorRegistry()
    if llm is not None:
        registry.register(llm)
    registry.register(CalculatorExecutor())
    registry.register(PythonExecutor(sandbox=python_sandbox))
    if docs_dir is not None:
        registry.register(DocsExecutor(docs_dir))
    if sql_db is not None:
        registry.register(SqlExecutor(sql_db))
    if plugins:
        load_plugins(registry)
    return registry
