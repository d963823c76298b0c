"""The registry, the default set of executors, and plugins found through entry points.

Plugins are real installed distributions: each test writes a module and a `.dist-info`
folder with an `entry_points.txt` into a temporary folder on sys.path, which is exactly
what importlib.metadata reads for a package installed with pip.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import stepgraph.executors as executors
from stepgraph.errors import ExecutorError
from stepgraph.executors import (
    CalculatorExecutor,
    ExecutorRegistry,
    StepInput,
    StepOutput,
    default_registry,
)
from stepgraph.executors.registry import ENTRY_POINT_GROUP


class EchoExecutor:
    name = "echo"
    description = "repeat the instruction. args: {}"

    async def run(self, step: StepInput) -> StepOutput:
        return StepOutput(output=step.instruction)


def test_package_exports() -> None:
    for name in [
        "Executor",
        "StepInput",
        "StepOutput",
        "ExecutorRegistry",
        "default_registry",
        "CalculatorExecutor",
        "PythonExecutor",
        "DocsExecutor",
        "SqlExecutor",
    ]:
        assert hasattr(executors, name), name


def test_register_get_names_contains() -> None:
    registry = ExecutorRegistry([CalculatorExecutor()])
    registry.register(EchoExecutor())
    assert registry.names() == ["calculator", "echo"]
    assert "echo" in registry
    assert "python" not in registry
    assert isinstance(registry.get("echo"), EchoExecutor)
    assert len(registry) == 2
    assert [e.name for e in registry] == ["calculator", "echo"]


def test_unknown_name_lists_the_known_ones() -> None:
    registry = ExecutorRegistry([CalculatorExecutor(), EchoExecutor()])
    with pytest.raises(
        ExecutorError, match="unknown executor 'web'; known executors: calculator, echo"
    ):
        registry.get("web")


def test_duplicates_and_non_executors_are_refused() -> None:
    registry = ExecutorRegistry([EchoExecutor()])
    with pytest.raises(ExecutorError, match="already registered"):
        registry.register(EchoExecutor())
    replacement = EchoExecutor()
    registry.register(replacement, replace=True)
    assert registry.get("echo") is replacement
    with pytest.raises(ExecutorError, match="is not an executor"):
        registry.register(object())  # type: ignore[arg-type]


def test_describe_is_one_line_per_executor() -> None:
    class Wordy(EchoExecutor):
        name = "wordy"
        description = "first line\n   second   line"

    registry = ExecutorRegistry([CalculatorExecutor(), Wordy()])
    lines = registry.describe().splitlines()
    assert lines == [
        f"calculator: {CalculatorExecutor.description}",
        "wordy: first line second line",
    ]


def test_default_registry_has_calculator_and_python() -> None:
    registry = default_registry(plugins=False)
    assert registry.names() == ["calculator", "python"]


def test_default_registry_adds_docs_sql_and_llm(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("hello")
    db = tmp_path / "data.db"
    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.close()

    class FakeLlm(EchoExecutor):
        name = "llm"

    registry = default_registry(docs_dir=docs, sql_db=db, llm=FakeLlm(), plugins=False)
    assert set(registry.names()) == {"llm", "calculator", "python", "docs", "sql"}
    description = registry.describe()
    assert "sql: " in description and "t(x)" in description
    assert len(description.splitlines()) == 5


def test_default_registry_reports_a_missing_docs_folder(tmp_path: Path) -> None:
    with pytest.raises(ExecutorError, match="does not exist"):
        default_registry(docs_dir=tmp_path / "missing", plugins=False)


def _install_plugin(root: Path, module: str, entry_points: dict[str, str], source: str) -> None:
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    dist = root / f"{module}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    lines = "\n".join(f"{name} = {module}:{target}" for name, target in entry_points.items())
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}\n")


PLUGIN_SOURCE = """
    from stepgraph.executors.base import StepOutput

    class Shout:
        name = "shout"
        description = "upper-case the instruction. args: {}"

        async def run(self, step):
            return StepOutput(output=step.instruction.upper())

    def make_reverse():
        class Reverse(Shout):
            name = "reverse"

            async def run(self, step):
                return StepOutput(output=step.instruction[::-1])
        return Reverse()

    def explode():
        raise RuntimeError("plugin failed to start")

    def not_an_executor():
        return 42

    class Calculator(Shout):
        name = "calculator"
"""


@pytest.fixture
def plugin_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[tuple[Path, str]]:
    module = f"sg_plugin_{abs(hash(request.node.name))}"
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path, module
    sys.modules.pop(module, None)


def test_plugins_are_loaded_from_entry_points(plugin_dir: tuple[Path, str]) -> None:
    root, module = plugin_dir
    _install_plugin(root, module, {"shout": "Shout", "reverse": "make_reverse"}, PLUGIN_SOURCE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        registry = default_registry()
    assert {"shout", "reverse"} <= set(registry.names())
    out = asyncio.run(registry.get("reverse").run(StepInput(step_id="s1", instruction="abc")))
    assert out.output == "cba"


def test_a_broken_plugin_is_skipped_with_a_warning(plugin_dir: tuple[Path, str]) -> None:
    root, module = plugin_dir
    _install_plugin(
        root,
        module,
        {
            "shout": "Shout",
            "boom": "explode",
            "missing": "no_such_name",
            "odd": "not_an_executor",
            "clash": "Calculator",
        },
        PLUGIN_SOURCE,
    )
    with pytest.warns(RuntimeWarning) as caught:
        registry = default_registry()
    messages = "\n".join(str(w.message) for w in caught)
    assert "'boom'" in messages and "plugin failed to start" in messages
    assert "'missing'" in messages
    assert "'odd'" in messages and "not an executor" in messages
    assert "'clash'" in messages and "already registered" in messages
    assert "shout" in registry
    assert isinstance(registry.get("calculator"), CalculatorExecutor)


def test_plugins_can_be_turned_off(plugin_dir: tuple[Path, str]) -> None:
    root, module = plugin_dir
    _install_plugin(root, module, {"shout": "Shout"}, PLUGIN_SOURCE)
    assert "shout" not in default_registry(plugins=False)
    assert "shout" in default_registry()
