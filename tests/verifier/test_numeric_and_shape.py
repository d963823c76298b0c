"""Numeric claims recomputed, computed results required in the answer, JSON and code shape."""

import pytest

from stepgraph.verifier.numeric import (
    check_arithmetic,
    check_results_stated,
    equations,
    single_number,
    stated_matches,
)
from stepgraph.verifier.shape import check_code, check_json


@pytest.mark.parametrize(
    "text, passed",
    [
        ("He sprints 3*3=9 times, so he runs 9*60 = 540 meters.", True),
        ("12 * 4 = 46 dollars", False),
        ("Total: $1,200 + $300 = $1,500.", True),
        ("Total: $1,200 + $300 = $1,600.", False),
        ("10 / 3 = 3.33", True),
        ("10 / 3 = 3", True),
        ("10 / 3 = 3.4", False),
        ("20% of 50 is 10", True),
        ("20% of 50 is 12", False),
        ("(20 - 5) * 3 = 45", True),
        ("-5 + 3 = -2", True),
        ("2 x 3 = 6 and 4 × 5 = 21", False),
        ("2^10 = 1024", True),
    ],
)
def test_written_arithmetic_is_recomputed(text, passed):
    verdict = check_arithmetic(text)
    assert verdict is not None and verdict.passed is passed, verdict


@pytest.mark.parametrize(
    "text",
    ["x = 5", "The meeting is on 2026-11-25 = a Wednesday", "no numbers here", "a = b + 1"],
)
def test_text_without_arithmetic_gets_no_verdict(text):
    assert check_arithmetic(text) is None


def test_a_wrong_claim_names_the_true_value():
    verdict = check_arithmetic("So the total is 12 * 4 = 46.")
    assert "12 * 4 = 46" in verdict.evidence and "48" in verdict.evidence


def test_every_equation_in_a_text_is_found():
    claims = equations("First 2 + 2 = 4, then 4 * 10 = 40, and finally 40 - 1 = 39.")
    assert [stated for _, stated, _ in claims] == ["4", "40", "39"]


@pytest.mark.parametrize(
    "stated, true, ok",
    [
        ("1,020.50", 1020.5, True),
        ("$1020.5", 1020.5, True),
        ("1020", 1020.5, True),
        ("1021", 1020.5, True),
        ("1022", 1020.5, False),
        ("3.33", 10 / 3, True),
        ("3.34", 10 / 3, False),
        ("50%", 0.5, True),
    ],
)
def test_a_stated_number_matches_at_its_own_precision(stated, true, ok):
    assert stated_matches(stated, true) is ok


@pytest.mark.parametrize(
    "output, value",
    [
        ("1020.5", 1020.5),
        ("The result is 42", 42.0),
        ("1,500", 1500.0),
        ("x\ny\n7", 7.0),
        ("3 apples and 4 pears", None),
        ("<s1:a>", None),
        ("step s2 done", None),
        ("", None),
        ("no number", None),
        # a query's table: one cell of one row is a number; a longer table is not
        ("| total |\n|---|\n| 1234.5 |", 1234.5),
        ("| region | total |\n|---|---|\n| West | 1234 |", None),
        ("| total |\n|---|\n| 12 |\n| 7 |", None),
        ("| region |\n|---|\n| West |", None),
    ],
)
def test_single_number_outputs(output, value):
    assert single_number(output) == value


def test_computed_results_must_be_stated():
    assert check_results_stated("The total is $1,020.50.", [("s3", 1020.5)]).passed is True
    missing = check_results_stated("The total is 1000.", [("s3", 1020.5)])
    assert missing.passed is False and "1020.5 (the result of s3)" in missing.evidence
    assert check_results_stated("anything", []) is None


def test_json_parses_alone_or_in_one_fenced_block():
    assert check_json('{"a": 1}').passed is True
    assert check_json('Here:\n```json\n{"a": 1}\n```').passed is True
    bad = check_json('{"a": 1,}')
    assert bad.passed is False and "not valid JSON" in bad.evidence


def test_json_is_checked_against_the_steps_schema():
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert check_json('{"n": 3}', schema).passed is True
    wrong = check_json('{"n": "three"}', schema)
    assert wrong.passed is False and "n" in wrong.evidence
    assert check_json("{}", schema).passed is False
    broken = check_json('{"n": 3}', {"type": "no-such-type"})
    assert broken.passed is None and "schema is invalid" in broken.evidence


def test_python_blocks_must_compile():
    assert check_code("no code") is None
    assert check_code("```python\nprint(1)\n```").passed is True
    bad = check_code("```python\ndef f(:\n    pass\n```")
    assert bad.passed is False and "line 1" in bad.evidence


def test_numbers_an_answer_states_must_come_from_the_facts_the_steps_brought():
    from stepgraph.verifier.numeric import check_supported

    facts = ["Lisbon: high 19 C, low 12 C, sunny", "Oslo: high 4 C, low -1 C, rain"]
    task = "What will tomorrow's high be in Lisbon and in Oslo? Answer in 2 sentences."
    held = check_supported("Lisbon reaches 19 C and Oslo 4 C, 15 degrees colder.", [task, *facts])
    assert held.passed is True  # 15 is one difference of two given numbers
    made_up = check_supported("Lisbon will be 25 C and Oslo 28 C.", [task, *facts])
    assert made_up.passed is False and "25, 28" in made_up.evidence
    assert check_supported("Oslo will be colder than Lisbon.", [task, *facts]) is None
    assert check_supported("It has 2 parts: 1 and 3.", [task]) is None  # small counts


@pytest.mark.parametrize(
    ("text", "passed"),
    [
        ("23 * 47 equals 1091.", False),
        ("23 * 47 is equal to 1081.", True),
        ("In all, 146 * 3.25 comes to 474.5 dollars.", True),
        ("The 2023-2024 season is 10 games long.", None),  # a bare "is" is not an equation
    ],
)
def test_equations_written_in_words_are_recomputed(text, passed):
    verdict = check_arithmetic(text)
    assert (verdict.passed if verdict else None) is passed
