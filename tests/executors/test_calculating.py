"""The calculator writes the results of the model's arithmetic as the model reasons."""

from __future__ import annotations

import asyncio

import pytest

from stepgraph.executors.base import StepInput
from stepgraph.executors.calculating import complete_calculating
from stepgraph.executors.llm import LlmExecutor
from stepgraph.executors.written_math import trailing_value
from stepgraph.models.base import Request
from stepgraph.models.scripted import ScriptedBackend


def test_the_value_after_an_equals_sign_is_the_calculators():
    # the model means to write "= 90": it is cut at the `=`, then goes on after "= 80 "
    model = ScriptedBackend(["Total: 4 * 20 = 90 sheep.", "sheep."])
    done, values = asyncio.run(complete_calculating(model, Request.chat("How many?")))
    assert done.text == "Total: 4 * 20 = 80 sheep."
    assert values == 1
    # two model calls: up to the `=`, then on from the calculator's value
    assert [m.role for m in model.requests[1].messages][-1] == "assistant"
    assert model.requests[1].messages[-1].content == "Total: 4 * 20 = 80 "
    assert done.completion_tokens == sum(len(t) // 4 or 1 for t in ["Total: 4 * 20 ", "sheep."])


@pytest.mark.parametrize(
    "text, value",
    [
        ("Charleston has \\(4 \\times 20 ", "80"),
        ("so 160 + 80 + 20 ", "260"),
        ("$3 * 16 ", "48"),
        ("(20 + 30) * 2", "100"),
        ("12.5% of $1,000 ", "125"),
        ("1,200 - 300 ", "900"),
        ("98 / 3 ", "32.66666667"),
        ("x ", None),  # code: `x = ...`
        ("if a ", None),  # `==`
        ("a^2 + b^2 ", None),  # algebra, no numbers
        ("step 1. 12 ", None),  # one number is not arithmetic
        ("10 / 0 ", None),  # the calculator cannot: left to the model
        # units between the numbers are read past
        ("\\[\n\\text{Revenue} = 146 \\text{ muffins} \\times \\$3.25/\\text{muffin} ", "474.5"),
        ("146 muffins * $3.25 per muffin ", "474.5"),
        ("2 hours * 60 minutes ", "120"),
        ("3 dozen x 12 ", "36"),
        ("5 + 2 people ", "7"),
        ("5 apples and 2 pears ", None),
    ],
)
def test_which_text_ends_with_arithmetic(text, value):
    assert trailing_value(text) == value


def test_an_equals_sign_that_ends_no_arithmetic_is_left_to_the_model():
    model = ScriptedBackend(["x = 5\nprint(x)", " 5\nprint(x)"])
    done, values = asyncio.run(complete_calculating(model, Request.chat("code")))
    assert done.text == "x = 5\nprint(x)" and values == 0


def test_a_model_that_loops_is_cut_off():
    model = ScriptedBackend(responder=lambda request: "0.3 * 5 = 1.5 and again ")
    done, values = asyncio.run(complete_calculating(model, Request.chat("loop", max_tokens=10_000)))
    # the same 40 characters before an `=` a third time end it, long before the budget
    assert len(model.requests) <= 6
    assert done.text.count("1.5") <= 5 and done.completion_tokens < 100


def test_the_token_budget_covers_all_rounds():
    model = ScriptedBackend(responder=lambda request: "1 + 1 " * 20 + "= 3")
    done, _ = asyncio.run(complete_calculating(model, Request.chat("x", max_tokens=40)))
    assert all(r.max_tokens <= 40 for r in model.requests)
    assert len(model.requests) == 2  # the first round spent most of the budget


def test_backends_that_cannot_continue_and_constrained_requests_get_one_call():
    model = ScriptedBackend(["4 * 20 = 90"])
    model.continues_replies = False
    done, values = asyncio.run(complete_calculating(model, Request.chat("x")))
    assert done.text == "4 * 20 = 90" and values == 0
    model = ScriptedBackend(['{"a": 1}'])
    done, _ = asyncio.run(complete_calculating(model, Request.chat("x", json_schema={})))
    assert len(model.requests) == 1 and model.requests[0].stop == []


def test_the_llm_executor_calculates_unless_told_not_to():
    step = StepInput(run_id="r", step_id="s1", instruction="How many sheep?")
    model = ScriptedBackend(["4 * 20 = 90 sheep", "sheep"])
    out = asyncio.run(LlmExecutor(model).run(step))
    assert out.output == "4 * 20 = 80 sheep" and out.data == {"calculated": 1}
    model = ScriptedBackend(["4 * 20 = 90 sheep"])
    out = asyncio.run(LlmExecutor(model, calculate=False).run(step))
    assert out.output == "4 * 20 = 90 sheep" and out.data is None


def test_scripted_replies_stop_at_a_stop_string_and_say_which():
    model = ScriptedBackend(["one two three"])
    done = model.complete(Request.chat("x", stop=["three", "two"]))
    assert done.text == "one " and done.stopped_by == "two"


@pytest.mark.model
def test_the_real_model_goes_on_from_the_calculators_value(real_model):
    request = Request.chat(
        "A box holds 37 rows of 43 eggs. Write the multiplication as an equation, then say "
        "how many eggs there are.",
        max_tokens=120,
    )
    done, values = asyncio.run(complete_calculating(real_model, request))
    assert values >= 1 and "1591" in done.text  # 37 * 43, written by the calculator
    assert done.completion_tokens <= 120  # one token budget for all the rounds
