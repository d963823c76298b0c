"""An answer that is mostly the instruction's questions copied back fails; answers, headings
that restate a question above an answer, and text given to rewrite do not."""

import asyncio

import pytest

from stepgraph.verifier import Verifier
from stepgraph.verifier.echo import check_echo

ASKED = (
    "What does the Team plan cost per seat, how quickly does support reply to Team "
    "customers, and what is planned for next quarter? Cite the file for each fact."
)


@pytest.mark.parametrize(
    "instruction, answer, copied",
    [
        (  # examples/research_assistant.py on the 0.5B, 2026-12-05
            ASKED,
            "The Team plans to cost per seat $18 per month, how quickly does support reply "
            "to Team customers, and what is planned for next quarter? Cite the file for each "
            "fact.",
            "how quickly does support reply to Team customers, and what is planned for next "
            "quarter?",
        ),
        (
            "How many apples does Tom have left after giving away 3 of his 12 apples?",
            "How many apples does Tom have left after giving away 3 of his 12 apples?",
            "How many apples does Tom have left after giving away 3 of his 12 apples?",
        ),
        (
            "Which of the two plans is cheaper for a team of five people over a year?",
            "Sure! Which of the two plans is cheaper for a team of five people over a year?",
            "Which of the two plans is cheaper for a team of five people over a year?",
        ),
    ],
)
def test_a_question_handed_back_fails_quoting_the_copy(instruction, answer, copied):
    verdict = check_echo(instruction, answer)
    assert verdict is not None and verdict.passed is False
    assert f'"{copied}"' in verdict.evidence


@pytest.mark.parametrize(
    "instruction, answer",
    [
        (ASKED, "Team costs $18 per seat a month [pricing.md]; support replies in 4 hours."),
        (  # a heading that restates the question, above a real answer
            "How quickly does support reply to Team customers on a normal weekday?",
            "How quickly does support reply to Team customers on a normal weekday?\n"
            + "Support answers every Team ticket within four business hours on weekdays, " * 3,
        ),
        (  # text given to rewrite, after a colon
            "Rewrite this question formally: what time does the store open on weekends?",
            "At what time does the store open on weekends?",
        ),
        ("Write a haiku about the sea.", "Waves fold into foam?"),
        ("What is 2 + 2?", "What is 2 + 2? It is 4."),  # too short to mean anything
        (  # restated, then answered
            "How many apples does Tom have left after giving away 3 of his 12 apples?",
            "How many apples does Tom have left after giving away 3 of his 12 apples? Answer: 9",
        ),
    ],
)
def test_answers_headings_and_rewrites_pass(instruction, answer):
    assert check_echo(instruction, answer) is None


def checks(instruction: str, answer: str) -> dict[str, bool | None]:
    verdicts = asyncio.run(Verifier().check_answer(instruction, answer, [], from_results=False))
    return {v.check: v.passed for v in verdicts}


def test_the_final_answer_is_checked_for_an_echo_unless_the_request_is_to_be_repeated():
    question = "How many apples does Tom have left after giving away 3 of his 12 apples?"
    assert checks(question, question)["no_repeated_question"] is False
    repeat = (
        f"First repeat the request word for word without change, then give your answer. {question}"
    )
    assert "no_repeated_question" not in checks(repeat, question)
    assert check_echo(repeat, question, repeat_asked=True) is None
