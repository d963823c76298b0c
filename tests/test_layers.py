"""The package's layers point one way: a module imports only from its own package, from a
layer below it, or along one declared edge between packages of the same layer. Imports
inside functions count: hiding one there does not change which way the code depends."""

from __future__ import annotations

import ast
from pathlib import Path

import stepgraph

ROOT = Path(stepgraph.__file__).parent
# lowest first; a package imports only from lower layers
LAYERS = {
    "errors": 0,
    "telemetry": 1,  # spans (OpenTelemetry API); models and the runtime report to it
    "config": 2,
    "models": 2,
    "memory": 2,
    "executors": 3,
    "planner": 3,
    "verifier": 3,
    "runtime": 4,
    "evolve": 4,
    "__init__": 5,  # the public API
    "cli": 6,
}
# the only imports between packages of one layer: each one way, never back
SIDEWAYS = {
    ("planner", "executors"),  # the planner reads the executors' descriptions
    ("verifier", "executors"),  # checks recompute with the calculator's arithmetic
    ("verifier", "planner"),  # a step is checked against its plan entry
    ("runtime", "evolve"),  # the runtime loads the adapter that evolve ships
}


def imports(path: Path) -> set[str]:
    """The stepgraph packages a module imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "stepgraph" and len(parts) > 1:
                found.add(parts[1])
            elif parts[0] == "stepgraph":  # `from stepgraph import X`: the top of the package
                found.add("__init__")
    return found


def package(path: Path) -> str:
    part = path.relative_to(ROOT).parts[0]
    return part.removesuffix(".py")


def violations() -> list[str]:
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        own = package(path)
        for target in imports(path) - {own}:
            assert target in LAYERS, f"{target} has no layer: add it to LAYERS"
            down = LAYERS[target] < LAYERS[own]
            if not down and (own, target) not in SIDEWAYS:
                wrong.append(f"{path.relative_to(ROOT)} imports stepgraph.{target}")
    return wrong


def test_every_package_has_a_layer():
    packages = {package(p) for p in ROOT.rglob("*.py")}
    assert packages <= set(LAYERS), packages - set(LAYERS)


def test_no_module_imports_from_a_layer_above_it():
    assert violations() == []


def test_sideways_edges_never_point_back():
    assert not any((b, a) in SIDEWAYS for a, b in SIDEWAYS)


def test_the_check_finds_an_upward_import(tmp_path, monkeypatch):
    """The test can fail: a storage module that builds a runtime is caught."""
    fake = tmp_path / "stepgraph"
    (fake / "memory").mkdir(parents=True)
    (fake / "memory" / "store.py").write_text(
        "def replay():\n    from stepgraph.runtime import Runtime\n"
    )
    monkeypatch.setattr(__import__(__name__), "ROOT", fake)
    assert violations() == ["memory/store.py imports stepgraph.runtime"]
