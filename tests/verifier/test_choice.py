"""Choosing the final answer among candidates: agreement verifies, failed checks count
against a candidate, ties go to the floor (the model's direct answer), a candidate that
failed is never chosen."""

from __future__ import annotations

import pytest

from stepgraph.runtime.candidates import asks_for_number, one_question, only_questions
from stepgraph.verifier.choice import (
    Candidate,
    agreed,
    answer_claims,
    choose,
    states_value,
    with_answer_line,
)


def cand(name: str, answer: str, claims=(), failed=(), error=None, presentable=True) -> Candidate:
    return Candidate(
        name=name,
        answer=answer,
        claims=list(claims),
        failed=list(failed),
        error=error,
        presentable=presentable,
    )


# -- what an answer claims ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "task", "claims"),
    [
        ("12 * 4 = 48 eggs in all.\nAnswer: 48", "How many eggs in 12 boxes of 4?", [48.0]),
        ("So she has $1,020.50.\nFinal answer: $1,020.50", "", [1020.5]),
        ("There are 48 eggs.", "How many eggs in 12 boxes of 4?", [48.0]),
        (
            "48 / 6 = 8 pieces.\n\nThus Tracy has \\(\\boxed{8}\\) pieces.",
            "48 inches of wire",
            [8.0],
        ),
        # a short answer's numbers, less those the task gave
        (
            "It took in $1,020.50; cookies ($546) beat muffins ($474.50).",
            "muffins at $3.25 and cookies at $1.75; 146 muffins and 312 cookies",
            [1020.5, 546.0, 474.5],
        ),
        # a long answer: the last sentence that holds a number
        ("A. First 5. Then 7. Then 9 more. So 21 in all. Done.", "", [21.0]),
        # only a number the task gave: that is the answer ("which is larger, 5 or 7?")
        ("7 is larger.", "Which is larger, 5 or 7?", [7.0]),
        ("I do not know.", "How many?", []),
        # an equation on the answer line: its result (GSM8K, 0.5B: read as 125 before)
        (
            "Answer: 100 + 125 + 175 = 400  dollars",
            "Carmen has $100, Daisy $175. How much do they have?",
            [400.0],
        ),
        ("Final answer: 6 * 7 = 42", "", [42.0]),
        # the answer on the lines below its marker (GSM8K, 1.5B: read as "no number")
        (
            "... is 83.\n\nTherefore, the final answer is:\n\\[\n\\boxed{83}\n\\]",
            "The bridge holds 5000 pounds. How many boxes of 15 pounds?",
            [83.0],
        ),
        ("So the answer is:\n\n$105", "Jackie earns $10 an hour.", [105.0]),
        ("Thus, the final answer is:\n\\[\n\\boxed{-15}\n\\]", "", [-15.0]),
    ],
)
def test_answer_claims(answer, task, claims):
    assert answer_claims(answer, task) == pytest.approx(claims)


@pytest.mark.parametrize(
    ("answer", "value", "shown"),
    [
        (  # GSM8K, 0.5B: the choice was 30; the last number, 6
            "Thus, it will take 30 minutes longer for the varnish on 6 paintings to dry.",
            30.0,
            "Thus, it will take 30 minutes longer for the varnish on 6 paintings to dry."
            "\n\nAnswer: 30",
        ),
        ("He pays 12.5 dollars in all.", 12.5, "He pays 12.5 dollars in all.\n\nAnswer: 12.5"),
        ("So 4 * 3 = 12.\nAnswer: 12", 12.0, "So 4 * 3 = 12.\nAnswer: 12"),  # has its line
        ("It is 7 or so.", 8.0, "It is 7 or so."),  # does not state it: nothing to point at
        (  # GSM8K, 0.5B, 2026-12-05: a script taking the number after "Answer:" read 100
            "We add them:\n\nAnswer: 100 + 125 + 175 = 400  dollars",
            400.0,
            "We add them:\n\n100 + 125 + 175 = 400  dollars\n\nAnswer: 400",
        ),
        (
            "Final answer: 3 * 4 = 12 eggs.\nThat is all.",
            12.0,
            "3 * 4 = 12 eggs.\n\nAnswer: 12\nThat is all.",
        ),
        (  # the label inside a sentence: the line stays whole, the answer line follows
            "So the final answer is: 3 * 4 = 12",
            12.0,
            "So the final answer is: 3 * 4 = 12\n\nAnswer: 12",
        ),
        ("Answer: 12 = 3 * 4", 12.0, "Answer: 12 = 3 * 4"),  # says it first
        ("Answer: 3 * 4 = 13", 12.0, "Answer: 3 * 4 = 13"),  # ends on another number
    ],
)
def test_an_answer_that_states_the_chosen_number_ends_on_it(answer, value, shown):
    assert with_answer_line(answer, value) == shown


def test_states_value_reads_its_own_decimals():
    assert states_value("She pays $1,020.50 in total.", 1020.5)
    assert states_value("about 33.33 each", 100 / 3)
    assert not states_value("She pays $1,000.", 1020.5)


@pytest.mark.parametrize(
    "task",
    [
        "Natalia sold clips to 48 of her friends in April. How many clips did she sell?",
        "What is 12% of 850, and what is left when it is taken off?",
        "A bakery sold 146 muffins at $3.25. Calculate the revenue.",
    ],
)
def test_questions_with_quantities_ask_for_a_number(task):
    assert asks_for_number(task)


@pytest.mark.parametrize(
    "task",
    [
        "Natalia sold clips to 48 of her friends in April. How many clips did she sell?",
        "If he has 42 dollars for the week, how many times can he go to the movies?",
        "Sarah does 400 pounds of laundry, calculate the difference in what they do.",
        "John buys milk for 2 dollars. If there is a 10% tax how much did everything cost.",
        "How many eggs are in 12 boxes of 4? Answer in two sentences.",
        "How many eggs are in 12 boxes of 4?\n\nGive the final answer as a number.",
    ],
)
def test_a_single_question_is_one_question(task):
    assert one_question(task)


@pytest.mark.parametrize(
    "task",
    [
        "What is 12% of 850, and what is left when it is taken off?",
        "It sold 146 muffins and 312 cookies. How much did it take in, and which item brought "
        "in more money? Answer in two sentences.",
        "How much does the discount save? How much does the school pay?",
        "Plan a trip for 6 people. Suggest one activity, work out the total cost.",
        "How many eggs are in 12 boxes of 4? Explain your reasoning to a child.",
        "Write a poem about 3 cats.",
        "Compute 23 * 47 and then say whether the result is an even number.",
    ],
)
def test_a_task_of_several_parts_is_not_one_question(task):
    assert not one_question(task)


@pytest.mark.parametrize(
    ("task", "questions_only"),
    [
        ("What is 12% of 850, and what is left when it is taken off?", True),
        (
            "It sold 146 muffins and 312 cookies. How much did it take in, and which item "
            "brought in more money? Answer in two sentences.",
            True,
        ),
        ("How much does the discount save? How much does the school pay?", True),
        ("How many eggs are in 12 boxes of 4? Explain your reasoning to a child.", False),
        ("Plan a trip for 6 people. Suggest one activity, work out the total cost.", False),
        ("How many eggs are in 12 boxes of 4? Suggest a recipe for them.", False),
        ("Compute 23 * 47 and then say whether the result is an even number.", False),
    ],
)
def test_several_questions_are_questions_only_where_nothing_is_to_be_written(task, questions_only):
    assert only_questions(task) is questions_only


def test_a_follow_up_to_a_numeric_question_asks_for_a_number():
    from stepgraph.models.base import Message

    before = [Message(role="user", content="We are 14 and have $3,500. How much per person?")]
    assert asks_for_number("And if 3 more people join?", before)
    assert not asks_for_number("And if 3 more people join?")
    assert not asks_for_number("Thanks! Any tips?", before)  # no amount in it


@pytest.mark.parametrize(
    "task",
    [
        "Write a 300+ word essay about the history of the bicycle.",
        "Write a poem about the sea. Answer in at most 120 words.",
        "Write a story with exactly 4 paragraphs separated by ***.",
        "What is the capital of France?",
    ],
)
def test_writing_tasks_and_questions_without_numbers_do_not(task):
    assert not asks_for_number(task)


# -- numeric choice ---------------------------------------------------------------------


def test_agreement_verifies_and_shows_the_composed_wording():
    composed = cand("composed", "It is 48.", [48])
    direct = cand("direct", "12 * 4 = 48\nAnswer: 48", [48])
    assert agreed([composed, direct])
    choice = choose([composed, direct], numeric=True)
    assert (choice.chosen, choice.value, choice.verified) == ("composed", 48, True)
    assert "composed, direct agree on 48" in choice.reason


def test_disagreement_goes_to_the_value_a_tie_breaker_backs():
    composed = cand("composed", "-748 dollars are left.", [-748])
    direct = cand("direct", "850 - 102 = 748\nAnswer: 748", [748])
    program = cand("program", "748", [748], presentable=False)
    assert not agreed([composed, direct])
    choice = choose([composed, direct, program], numeric=True)
    assert (choice.chosen, choice.value, choice.verified) == ("direct", 748, True)
    assert "direct, program agree on 748" in choice.reason and "composed -748" in choice.reason


def test_a_value_only_a_program_backs_cannot_be_shown():
    direct = cand("direct", "Answer: 12", [12])
    program = cand("program", "14", [14], presentable=False)
    choice = choose([direct, program], numeric=True)
    assert (choice.chosen, choice.value, choice.verified) == ("direct", 12, False)


def test_no_agreement_keeps_the_floor_unverified():
    composed = cand("composed", "It is 50.", [50])
    direct = cand("direct", "Answer: 48", [48])
    sample = cand("sample-1", "Answer: 52", [52])
    choice = choose([composed, direct, sample], numeric=True)
    assert (choice.chosen, choice.value, choice.verified) == ("direct", 48, False)
    assert choice.reason.startswith("no two candidates agree")


def test_grounded_steps_win_a_tie_over_the_floor():
    composed = cand("composed", "Revenue was 1,200.", [1200])
    direct = cand("direct", "Answer: 1000", [1000])
    choice = choose([composed, direct], numeric=True, grounded=True)
    assert (choice.chosen, choice.value, choice.verified) == ("composed", 1200, False)


def test_a_candidate_whose_numbers_fail_a_check_counts_for_half():
    # two candidates agree on 40, but one of them wrote wrong arithmetic on the way
    composed = cand("composed", "40", [40], failed=["arithmetic: 5 * 7 = 40 is wrong"])
    sample = cand("sample-1", "Answer: 40", [40])
    direct = cand("direct", "Answer: 35", [35])
    program = cand("program", "35", [35], presentable=False)
    assert not agreed([composed, sample])
    choice = choose([composed, sample, direct, program], numeric=True)
    assert (choice.chosen, choice.value, choice.verified) == ("direct", 35, True)


def test_a_false_comparison_does_not_weaken_the_vote_for_the_number_it_compares():
    direct = cand(
        "direct",
        "The total is $1314, which does not fit the budget of $2500.",
        [1314],
        failed=['comparison_claims: "$1314, which does not fit the budget of $2500" is wrong'],
    )
    sample = cand("sample-1", "Day 1 is the beach.", [1])
    choice = choose([direct, sample], numeric=True)
    assert (choice.chosen, choice.value, choice.verified) == ("direct", 1314, False)
    program = cand("program", "1314", [1314], presentable=False)
    assert agreed([direct, program])


def test_a_form_failure_does_not_weaken_a_vote_but_decides_the_wording():
    composed = cand("composed", "It is 48.", [48], failed=["exact_sentences: 3; exactly 2"])
    direct = cand("direct", "Answer: 48", [48])
    choice = choose([composed, direct], numeric=True)
    assert (choice.chosen, choice.verified) == ("direct", True)


def test_failed_and_empty_candidates_are_never_chosen():
    composed = cand("composed", "I could not complete this task", error="no step produced")
    direct = cand("direct", "Answer: 7", [7])
    empty = cand("sample-1", "   ", [])
    silent = cand("program", "", [], error="printed no single number", presentable=False)
    choice = choose([composed, direct, empty, silent], numeric=True)
    assert (choice.chosen, choice.value, choice.verified) == ("direct", 7, False)


def test_no_usable_candidate_gives_no_answer():
    choice = choose(
        [cand("composed", "", error="timed out"), cand("direct", "", error="model failed")],
        numeric=True,
    )
    assert choice.chosen is None and choice.answer == "" and not choice.verified
    assert "composed: timed out" in choice.reason and "direct: model failed" in choice.reason


# -- everything else: by checks --------------------------------------------------------


def test_by_checks_fewest_failures_wins():
    composed = cand("composed", "a b c", failed=["max_words: 3; at most 2"])
    direct = cand("direct", "a b")
    choice = choose([composed, direct], numeric=False)
    assert (choice.chosen, choice.verified) == ("direct", True)


def test_by_checks_a_tie_goes_to_the_floor_unless_the_steps_found_facts():
    composed = cand("composed", "from the notes")
    direct = cand("direct", "from memory")
    assert choose([composed, direct], numeric=False).chosen == "direct"
    assert choose([composed, direct], numeric=False, grounded=True).chosen == "composed"


def test_by_checks_a_failing_answer_is_kept_unverified():
    direct = cand("direct", "too long", failed=["max_words: 9; at most 2"])
    choice = choose([direct], numeric=False)
    assert (choice.chosen, choice.answer, choice.verified) == ("direct", "too long", False)


def test_two_of_five_agreeing_is_the_answer_but_not_verified():
    votes = [
        cand("composed", "It is 80.", [80]),
        cand("direct", "Answer: 28.8", [28.8]),
        cand("program", "48", [48], presentable=False),
        cand("sample-1", "Answer: 48", [48]),
        cand("sample-2", "Answer: 260", [260]),
    ]
    choice = choose(votes, numeric=True)
    assert (choice.chosen, choice.value, choice.verified) == ("sample-1", 48, False)
    assert "not most of the candidates" in choice.reason
    # three of five: most of the vote
    votes[4] = cand("sample-2", "Answer: 48", [48])
    assert choose(votes, numeric=True).verified


def test_with_facts_from_steps_the_answer_is_the_one_written_from_them():
    """The direct answer never saw what a tool brought in: it is not chosen over the
    answer written from the facts, however many form checks it passes."""
    made_up = Candidate(name="direct", answer="Lisbon will be 25 C and Oslo 28 C.")
    from_facts = Candidate(
        name="composed",
        answer="Lisbon will reach 19 C and Oslo 4 C. Lisbon will be warmer than Oslo today.",
        failed=["exact_sentences: 3 sentences; exactly 2 required"],
    )
    grounded = choose([from_facts, made_up], numeric=False, grounded=True)
    assert grounded.chosen == "composed" and not grounded.verified
    alone = choose([from_facts, made_up], numeric=False)  # no facts: fewest failed checks
    assert alone.chosen == "direct" and alone.verified


@pytest.mark.parametrize("task", ["What is 23 * 47?", "What's 12.5 x 4?", "What is (3 + 4) * 12?"])
def test_a_question_about_arithmetic_asks_for_a_number(task):
    assert asks_for_number(task)


@pytest.mark.parametrize("task", ["What is 2023 in Roman numerals?", "What are 3 names for a cat?"])
def test_a_question_with_a_number_but_no_arithmetic_does_not(task):
    assert not asks_for_number(task)


def test_an_answer_line_at_the_end_of_a_sentence_is_the_claim():
    worked = "1081 + 0.5 = 1081.5\nTherefore, the final answer is: Answer: 1081.5"
    assert answer_claims(worked, "What is 23 * 47?") == [1081.5]
