"""Without the optional extras (torch, transformers, peft, gguf, xgrammar; mcp, psycopg and
the OpenTelemetry SDK) stepgraph imports, runs on llama.cpp and the scripted model, and the
GPU, training, MCP, PostgreSQL and tracing paths say which extra to install. Each case runs
in a child process in which importing those packages fails, as it does where they were
never installed."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from stepgraph.errors import OPTIONAL

# the extras' top-level packages, and the parts of a package whose rest is a dependency
# (the OpenTelemetry API is one; its SDK and exporters are the `otel` extra)
EXTRAS = sorted(OPTIONAL | {"mcp", "psycopg", "langgraph.checkpoint.postgres"}) + [
    "opentelemetry.sdk",
    "opentelemetry.exporter",
]
BLOCK = f"""
import importlib.abc, sys
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if any(name == m or name.startswith(m + ".") for m in {EXTRAS!r}):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Missing())
"""


def without_extras(code: str, *args: str) -> subprocess.CompletedProcess:
    program = BLOCK + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", program, *args], capture_output=True, text=True, timeout=120
    )


def test_the_blocker_blocks():
    """The test can fail: a missing torch is what the child sees."""
    done = without_extras("import torch")
    assert done.returncode == 1 and "No module named 'torch'" in done.stderr
    for module in ("mcp", "psycopg", "opentelemetry.sdk"):
        done = without_extras(f"import {module}")
        assert done.returncode == 1 and f"No module named '{module}'" in done.stderr
    assert without_extras("import opentelemetry.trace").returncode == 0  # the API stays


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`stepgraph ARGS` in a child without the extras."""
    code = "import sys\nfrom stepgraph.cli import main\nsys.argv = ['stepgraph', *sys.argv[1:]]\nmain()"
    program = BLOCK + code
    return subprocess.run(
        [sys.executable, "-c", program, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_mcp_postgres_and_tracing_say_which_extra_to_install_in_one_line(tmp_path):
    import os

    mcp = cli("run", "Hi.", "--model", "scripted:", "--db", str(tmp_path / "s.db"),
              "--mcp", "python -m nothing")  # fmt: skip
    postgres = cli("runs", "list", "--db", "postgresql://nobody@127.0.0.1:1/none")
    tracing = cli(
        "run", "Hi.", "--model", "scripted:", "--db", str(tmp_path / "t.db"),
        env={**os.environ, "STEPGRAPH_OTEL": "1"},
    )  # fmt: skip
    for done, extra in ((mcp, "mcp"), (postgres, "postgres"), (tracing, "otel")):
        assert done.returncode != 0, (extra, done.stdout)
        assert "Traceback" not in done.stderr, done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith("error: ") and f"pip install 'stepgraph[{extra}]'" in line, line


def test_a_run_needs_none_of_the_extras(tmp_path):
    done = without_extras(
        """
        import json, sys
        from stepgraph import Runtime, ScriptedBackend
        from stepgraph.executors.llm import CODE_SYSTEM
        plan = {"steps": [{"id": "s1", "depends_on": [], "executor": "calculator",
                           "instruction": "12 * 4"}]}
        def respond(request):
            system = request.messages[0].content
            if system.startswith("You are a planner."):
                return json.dumps(plan)
            if system == CODE_SYSTEM:  # the program that cross-checks the answer
                return "```python\\nprint(12 * 4)\\n```"
            return "There are 48 eggs.\\nAnswer: 48"
        with Runtime(ScriptedBackend(responder=respond), store=sys.argv[1]) as runtime:
            result = runtime.run("How many eggs are in 12 boxes of 4?")
        print(result.status, result.answer.splitlines()[0])
        mods = [m for m in sys.modules if m.split(".")[0] in ("torch", "transformers")]
        print("heavy:", mods)
        """,
        str(tmp_path / "s.db"),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["done There are 48 eggs.", "heavy: []"]


def test_the_gpu_backend_names_its_extra(tmp_path):
    (tmp_path / "model").mkdir()
    done = without_extras(
        """
        import sys
        from stepgraph.errors import ConfigError
        from stepgraph.models import load_model
        try:
            load_model(sys.argv[1])
        except ConfigError as exc:
            print(exc)
        """,
        str(tmp_path / "model"),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "a Hugging Face model (transformers) needs torch, which is not installed: "
        "pip install 'stepgraph[gpu]'"
    )


def test_training_says_which_extra_to_install_in_one_line(tmp_path):
    (tmp_path / "data.jsonl").write_text("")
    done = without_extras(
        """
        import sys
        from stepgraph.cli import main
        sys.argv = ["stepgraph", *sys.argv[1:]]
        main()
        """,
        *("train", "planner", "--data", str(tmp_path / "data.jsonl"), "--out", str(tmp_path)),
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: stepgraph train needs torch, which is not installed: pip install 'stepgraph[train]'"
    ]
