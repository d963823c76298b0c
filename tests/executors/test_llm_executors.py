"""Executors that use the model, with scripted replies and the real python/calculator."""

import asyncio

import pytest

from stepgraph.errors import ConfigError
from stepgraph.executors import CalculatorExecutor, PythonExecutor
from stepgraph.executors.base import StepInput, StepOutput
from stepgraph.executors.llm import (
    EXPRESSION_SYSTEM,
    CodeWritingExecutor,
    LlmExecutor,
    extract_code,
)
from stepgraph.models import Message, ScriptedBackend


def step(text, **kw):
    return StepInput(step_id="s2", instruction=text, task="the whole task", **kw)


def test_llm_executor_sees_task_dependencies_conversation_and_feedback():
    backend = ScriptedBackend(["42"])
    out = asyncio.run(
        LlmExecutor(backend).run(
            step(
                "answer it",
                dependencies={"s1": "six times seven"},
                feedback="be brief",
                conversation=[Message(role="user", content="earlier question")],
            )
        )
    )
    assert out.output == "42" and out.ok
    prompt = backend.requests[0].messages
    assert prompt[1].content == "earlier question"
    assert all(
        x in prompt[-1].content for x in ("the whole task", "[s1] six times seven", "be brief")
    )


def test_llm_executor_reports_an_empty_answer_as_an_error():
    out = asyncio.run(LlmExecutor(ScriptedBackend(["  "])).run(step("x")))
    assert out.error == "the model returned nothing"


def test_code_writer_runs_the_code_and_rewrites_it_once_after_an_error():
    backend = ScriptedBackend(["```python\nprint(1/0)\n```", "```python\nprint(6*7)\n```"])
    executor = CodeWritingExecutor(PythonExecutor(), backend)
    out = asyncio.run(executor.run(step("compute six times seven")))
    assert out.ok and out.output.strip() == "42"
    assert out.data["code"] == "print(6*7)"
    assert "ZeroDivisionError" in backend.requests[1].messages[-1].content


def test_code_writer_uses_given_code_without_the_model():
    backend = ScriptedBackend([])
    out = asyncio.run(
        CodeWritingExecutor(PythonExecutor(), backend).run(step("x", args={"code": "print(2+2)"}))
    )
    assert out.output.strip() == "4" and not backend.requests


def test_calculator_tries_the_text_first_then_asks_for_an_expression():
    backend = ScriptedBackend(["0.12 * 80"])
    calc = CodeWritingExecutor(
        CalculatorExecutor(), backend, arg="expression", system=EXPRESSION_SYSTEM, direct=True
    )
    assert asyncio.run(calc.run(step("146 * 3.25"))).output == "474.5"
    assert asyncio.run(calc.run(step("80"))).output == "80"  # one number: itself
    assert not backend.requests
    assert asyncio.run(calc.run(step("What is 12% of 80?"))).output == "9.6"
    assert len(backend.requests) == 1


def test_extract_code_takes_the_fenced_block():
    assert extract_code("Here:\n```python\nx = 1\nprint(x)\n```\nDone") == "x = 1\nprint(x)"
    assert extract_code("print(3)") == "print(3)"


def test_a_plugin_that_declares_the_model_writes_its_code_gets_it_written(tmp_path):
    """Nothing checks the executor's class or name: its declaration is what counts."""
    from stepgraph import Runtime

    class Shell:  # a plugin: runs the "code" argument it is given
        name = "shell"
        description = "runs a shell line"
        model_writes = "code"
        seen: list[str] = []

        async def run(self, step):
            self.seen.append(step.args["code"])
            return StepOutput(output="ran")

    class Undeclared(Shell):
        name = "other"
        model_writes = None

    backend = ScriptedBackend(["```python\necho hi\n```"])
    with Runtime(backend, store=tmp_path / "s.db", executors=[Shell(), Undeclared()]) as rt:
        done = asyncio.run(rt.executors["shell"].run(step("say hi")))
        assert (done.output, Shell.seen) == ("ran", ["echo hi"])
        assert rt.executors["other"].__class__ is Undeclared  # left as it is

    class Wrong(Shell):
        model_writes = "poem"

    with pytest.raises(ConfigError, match="model_writes='poem'; use one of code, expression"):
        Runtime(backend, store=tmp_path / "t.db", executors=[Wrong()])
