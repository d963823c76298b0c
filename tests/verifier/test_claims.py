"""Claims in prose recomputed: comparisons, totals, and computed results restated."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stepgraph.verifier.numeric import check_comparisons, check_totals, restated_results

# --- comparisons ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "cookies ($546.00) beat muffins ($474.50)",
        "Since 546 dollars is greater than 474.5 dollars, cookies brought in more money.",
        "$30 is more than $12.",
        "3 is less than 8",
        "474.5 dollars from muffins is smaller than 546 dollars from cookies.",
        "1,200 exceeds 1,100.",
        "474.5 does not exceed 546",
        "So 12 apples is at least as large as 12 apples.",
        "The larger is 546, not 474.5.",
        "the bigger of $474.50 and $546 is $546",
        "Between 474.5 and 546, 546 is larger.",
        "Cookies brought in more ($546) than muffins ($474.50).",
        "474.5 < 546",
        "-5 is greater than -10.",
        "**$546** is higher than **$474.50**",
        "We know that 0.5 is equal to 0.50.",
        "20% is more than 15%.",
    ],
)
def test_true_comparisons_pass(text):
    verdict = check_comparisons(text)
    assert verdict is not None
    assert (verdict.check, verdict.passed) == ("comparison_claims", True), verdict


@pytest.mark.parametrize(
    "text, evidence",
    [
        (
            "Since 474.5 dollars is greater than 546 dollars, the bakery brought in more money "
            "from muffins",
            "474.5 is not greater than 546",
        ),
        ("$12 is more than $30", "12 is not greater than 30"),
        ("8 is less than 3", "8 is not less than 3"),
        ("The larger is 474.5, not 546", "the larger of 474.5 and 546 is 546, not 474.5"),
        ("the larger of 474.5 and 546 is 474.5", "the larger of 474.5 and 546 is 546, not 474.5"),
        ("474.5, not 546, is the larger.", "the larger of 474.5 and 546 is 546, not 474.5"),
        ("the smallest of 3, 9 and 7 is 7", "the smaller of 3 and 9 and 7 is 3, not 7"),
        ("muffins ($474.50) beat cookies ($546.00)", "474.50 is not greater than 546.00"),
        ("1,000 exceeds 1,100.", "1,000 is not greater than 1,100"),
        ("546 does not exceed 474.5", "546 is greater than 474.5"),
        ("Thus 12 is no more than 10.", "12 is greater than 10"),
        ("12 apples are fewer than 9 apples", "12 is not less than 9"),
        ("546 < 474.5", "546 is not less than 474.5"),
        ("5 is equal to 6", "5 is not equal to 6"),
        ("20% is less than 15%", "20% is not less than 15%"),
        ("- 7 kg is lower than 2 kg", "7 is not less than 2"),
        (
            "Muffins brought in more ($474.50) than cookies ($546).",
            "474.50 is not greater than 546",
        ),
    ],
)
def test_false_comparisons_fail_naming_the_numbers(text, evidence):
    verdict = check_comparisons(text)
    assert verdict is not None
    assert (verdict.check, verdict.passed) == ("comparison_claims", False), verdict
    assert evidence in verdict.evidence


LISBON_OSLO = "Tomorrow's high in Lisbon will be 19°C, and in Oslo, it will be 4°C. "


@pytest.mark.parametrize(
    ("pick", "holds"),
    [
        ("The city with the higher high will be Lisbon.", True),
        ("The city with the higher high will be Oslo.", False),  # mcp_agent, 2026-12-05
        ("Lisbon will be warmer.", True),
        ("Oslo will be the warmer one.", False),
        ("Oslo will have the lower temperature.", True),
        ("Lisbon has the lowest high.", False),
        ("The one with the colder day is Oslo.", True),
    ],
)
def test_a_pick_between_two_named_numbers_is_recomputed(pick, holds):
    verdict = check_comparisons(LISBON_OSLO + pick)
    assert verdict is not None and verdict.passed is holds
    if not holds:
        assert "has 4 against 19" in verdict.evidence or "has 19 against 4" in verdict.evidence


@pytest.mark.parametrize(
    ("claim", "holds"),
    [
        ("Oslo is warmer than Lisbon.", False),  # mcp_agent's revision, 2026-12-05
        ("Lisbon will be much warmer than Oslo.", True),
    ],
)
def test_a_comparison_between_two_named_numbers_is_recomputed(claim, holds):
    verdict = check_comparisons(LISBON_OSLO + claim)
    assert verdict is not None and verdict.passed is holds
    if not holds:
        assert "oslo (4) is not greater than lisbon (19)" in verdict.evidence


@pytest.mark.parametrize(
    "text",
    [
        LISBON_OSLO + "Oslo will be colder than usual.",  # compared with something unnamed
        "Tom has 5 apples, Anna has 7 and Ben has 2. Ben has the most.",  # three named numbers
        "Lisbon will be 19°C tomorrow. Lisbon will be warmer than today.",  # one
        "The bakery took in $1020.5 on Saturday. Cookies brought in more money.",
    ],
)
def test_a_pick_is_not_read_where_the_text_does_not_number_two_names(text):
    assert check_comparisons(text) is None


def test_a_failed_comparison_quotes_the_claim():
    verdict = check_comparisons("Since 474.5 dollars is greater than 546 dollars, muffins won.")
    assert verdict.evidence == (
        '"474.5 dollars is greater than 546 dollars" is wrong: 474.5 is not greater than 546'
    )


def test_every_comparison_in_a_text_is_counted():
    verdict = check_comparisons("12 is more than 10, and 2 is less than 5. Also 7 > 3.")
    assert (verdict.passed, verdict.evidence) == (True, "3 comparison(s) recomputed")


@pytest.mark.parametrize(
    "text",
    [
        "more than 3 times",
        "12 is more than 3 times 4",
        "at least 5 of them",
        "less than half",
        "There are more than 2 people here.",
        "8 is less than half of 20",
        "Is 8 less than 3?",
        "if 8 is less than 3, stop",
        "half of 10 is less than 6",
        "10 - 3 is more than 5",
        "Tom has 5 more apples than Sam.",
        "x is 2 more than 5",
        "The 2 students are more than 5 feet tall",
        "2 dozen is more than 20",
        "He walked 5 miles, which is more than 3.",
        "She paid $12, which is more than 30 cents.",
        "Room 12 is bigger than room 8",
        "In 2023 sales were higher than 5000",
        "2022 sales were higher than 2023 sales",
        "She is 12 years old, which is 3 years more than her brother.",
        "4 + 8 equals 12",
        "x -> 5 and a => 3",
        "no numbers are compared here",
    ],
)
def test_text_without_a_two_number_comparison_gets_no_verdict(text):
    assert check_comparisons(text) is None


KNOWN = [("muffins", 474.5), ("cookies", 546.0)]


@pytest.mark.parametrize(
    "text, passed",
    [
        ("Cookies brought in more than muffins.", True),
        ("The muffins made less than the cookies.", True),
        ("Muffins did not bring in more than cookies.", True),
        ("Muffins brought in more than cookies.", False),
        ("Cookies earned less than muffins.", False),
    ],
)
def test_named_comparisons_use_the_known_values(text, passed):
    verdict = check_comparisons(text, known=KNOWN)
    assert verdict is not None and verdict.passed is passed, verdict


def test_a_false_named_comparison_names_both_values():
    verdict = check_comparisons("Muffins brought in more than cookies.", known=KNOWN)
    assert "muffins (474.5) is not greater than cookies (546)" in verdict.evidence


@pytest.mark.parametrize(
    "text, known",
    [
        ("Muffins brought in more than cookies.", ()),  # no known values
        ("Muffins brought in more than cookies.", [("muffins", 474.5)]),  # one is not a pair
        ("Muffins sold 3 times more than cookies.", KNOWN),
        ("Muffins brought in $20 more than cookies.", KNOWN),
        ("Muffins sold more units than cookies.", KNOWN),  # another measure
        ("Muffins are more popular than cookies.", KNOWN),
    ],
)
def test_named_comparisons_need_known_values_and_a_plain_comparative(text, known):
    assert check_comparisons(text, known=known) is None


_amounts = st.decimals(
    min_value=Decimal("-1000000"), max_value=Decimal("1000000"), places=2, allow_nan=False
)


@given(_amounts, _amounts)
def test_greater_than_passes_exactly_when_it_holds(a, b):
    verdict = check_comparisons(f"{a:f} is greater than {b:f}")
    assert verdict is not None and verdict.passed is (a > b)


@given(_amounts, _amounts)
def test_less_than_passes_exactly_when_it_holds(a, b):
    verdict = check_comparisons(f"So {a:f} apples are fewer than {b:f} apples.")
    assert verdict is not None and verdict.passed is (a < b)


@given(_amounts.map(abs), _amounts.map(abs))
def test_dollar_amounts_with_commas_compare_by_value(a, b):
    verdict = check_comparisons(f"Since ${a:,} is more than ${b:,}, it sold better.")
    assert verdict is not None and verdict.passed is (a > b)


@given(_amounts, _amounts)
def test_symbols_compare_like_words(a, b):
    assert check_comparisons(f"{a:f} > {b:f}").passed is (a > b)
    assert check_comparisons(f"{a:f} <= {b:f}").passed is (a <= b)


@given(_amounts, _amounts)
def test_the_larger_of_two_is_their_maximum(a, b):
    assert check_comparisons(f"The larger of {a:f} and {b:f} is {max(a, b):f}.").passed is True
    if a != b:
        assert check_comparisons(f"The larger of {a:f} and {b:f} is {min(a, b):f}.").passed is False


# --- a cost against a stated budget ---------------------------------------------------------


@pytest.mark.parametrize(
    "text, passed",
    [
        ("The total cost is $1314, which does not fit the budget of $2500.", False),
        ("The total comes to $1,044, which fits within the $2,500 budget.", True),
        ("The total of $2,700 exceeds the budget of $2,500.", True),
        ("The total is $1314, which is within the budget of $2500.", True),
        ("The total is $1314, which is over the budget of $2500.", False),
        ("The total is $2714 and does not exceed the budget of $2500.", False),
        ("So $1314 fits the budget of $2500.", True),
        ("The total is $2700, which fits within our budget of $2500.", False),
        ("The trip costs 2,400 dollars, which stays under the $2,500 budget.", True),
        ("The total is $2,600, so it doesn't fit the budget of $2,500.", True),
        ("At $2,714 the trip fits the budget of $2,500.", False),
    ],
)
def test_a_cost_said_to_fit_a_budget_is_recomputed(text, passed):
    verdict = check_comparisons(text)
    assert verdict is not None
    assert (verdict.check, verdict.passed) == ("comparison_claims", passed), verdict


def test_a_wrong_budget_claim_says_where_the_cost_stands():
    verdict = check_comparisons("The total is $1314, which does not fit the budget of $2500.")
    assert verdict.evidence == (
        '"$1314, which does not fit the budget of $2500" is wrong: '
        "1314 is within the budget of 2500"
    )


@pytest.mark.parametrize(
    "text",
    [
        "The total is $200 over the budget of $2500.",  # an excess, not the cost
        "We spend $219 per person, which fits the budget of $2500.",  # per person
        "It costs 30% of the budget of $2500.",
        "The total is $1314, which is the budget of $2500.",
        "The total is $1314, which fits the budget.",  # no number for the budget
        "Room 12 fits the budget of $2500.",
    ],
)
def test_budget_phrases_that_are_not_a_cost_against_a_budget_get_no_verdict(text):
    assert check_comparisons(text) is None


@given(_amounts.map(abs), _amounts.map(abs))
def test_fitting_a_budget_passes_exactly_when_the_cost_is_at_most_it(cost, budget):
    fits = check_comparisons(f"The total is ${cost:,}, which fits the budget of ${budget:,}.")
    assert fits is not None and fits.passed is (cost <= budget)
    over = check_comparisons(f"The total is ${cost:,}, which exceeds the ${budget:,} budget.")
    assert over is not None and over.passed is (cost > budget)


# --- totals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "474.50 from muffins and 546.00 from cookies, 1,020.50 in total.",
        "In total, the bakery made $1,020.50 ($474.50 from muffins and $546 from cookies).",
        "Together they weigh 27 kg: 12 kg and 15 kg.",
        "The bakery made $474.50 from muffins and $546 from cookies, for a total of $1,020.50.",
        "The sum of 12, 15 and 3 is 30.",
        "Together, 12 kg and 15 kg weigh 27 kg.",
        "She has 12 apples and 15 pears, 27 fruits altogether.",
        "40% and 60%, 100% in total.",
        "474.50 from muffins and 546 from cookies, 1,021 in total.",  # rounded as written
    ],
)
def test_correct_totals_pass(text):
    verdict = check_totals(text)
    assert verdict is not None
    assert (verdict.check, verdict.passed) == ("total_claims", True), verdict


@pytest.mark.parametrize(
    "text, evidence",
    [
        (
            "474.50 from muffins and 546.00 from cookies, 1,100.50 in total",
            "474.50 + 546.00 = 1020.5, not 1,100.50",
        ),
        (
            "In total, the bakery made $1,100.50 ($474.50 from muffins and $546 from cookies)",
            "474.50 + 546 = 1020.5, not 1,100.50",
        ),
        ("Together they weigh 30 kg: 12 kg and 15 kg.", "12 + 15 = 27, not 30"),
        (
            "The bakery made $474.50 from muffins and $546 from cookies, for a total of $1,000.",
            "474.50 + 546 = 1020.5, not 1,000",
        ),
        ("The total of 12 kg and 15 kg is 30 kg.", "12 + 15 = 27, not 30"),
        ("12 and 15 make 30 altogether.", "12 + 15 = 27, not 30"),
        ("40% and 50%, 100% in total.", "40% + 50% = 90%, not 100%"),
        ("A total of 30 kg: 12 kg, 15 kg and 4 kg.", "12 + 15 + 4 = 31, not 30"),
    ],
)
def test_wrong_totals_fail_naming_the_sum(text, evidence):
    verdict = check_totals(text)
    assert verdict is not None
    assert (verdict.check, verdict.passed) == ("total_claims", False), verdict
    assert evidence in verdict.evidence


@pytest.mark.parametrize(
    "text",
    [
        "A total of 474.5 + 546 = 1,000.",  # an equation: check_arithmetic's
        "She bought 3 packs of 12 cookies and 2 packs of 6 muffins, 48 in total.",
        "He had 50 dollars in total and spent 12 dollars and 15 dollars.",
        "2 shirts and 3 hats, $25 in total.",
        "The total is $1,020.50.",
        "About 12 kg and 15 kg, 30 kg in total.",
        "12 kg and 500 g, 12.5 kg in total.",
        "Over 2 days she sold 12 kg and 15 kg, 27 kg in total.",
        "12 kg, 15 kg, 30 kg in total",
        "She sold 12 kg and 15 kg. The total is 30 kg.",  # parts in another sentence
        "Muffins: 474.50, cookies: 546.",
    ],
)
def test_text_without_a_plain_total_gets_no_verdict(text):
    assert check_totals(text) is None


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 3 * 10**6))
def test_a_total_passes_exactly_when_it_is_the_sum(a, b, total):
    verdict = check_totals(f"{a:,} kg and {b:,} kg, {total:,} kg in total.")
    assert verdict is not None and verdict.passed is (total == a + b)


# --- restated results ----------------------------------------------------------------------

RESULTS = [
    ("s1: Compute the muffins revenue: 95 * 4.99", 474.05),
    ("s2: cookies revenue 120 * 4.55", 546.0),
]


@pytest.mark.parametrize(
    "text, restated",
    [
        ("Muffins brought in $474.05 and cookies $546.00.", 2),
        ("Cookies: $546; muffins $474.05", 2),
        ("The muffins revenue was 474.", 1),  # rounded as written
        ("Muffins brought in about $470 and cookies $546.", 1),  # hedged: left alone
        ("The revenue from cookies was $546.", 1),
    ],
)
def test_results_restated_as_computed_pass(text, restated):
    verdict = restated_results(text, RESULTS)
    assert verdict is not None
    assert (verdict.check, verdict.passed) == ("restated_results", True), verdict
    assert verdict.evidence == f"{restated} computed result(s) restated"


@pytest.mark.parametrize(
    "text, evidence",
    [
        ("Muffins brought in $474.50 and cookies $546.", "474.50 where s1"),
        ("The muffins made 474.5 dollars.", "474.5 where s1"),
        ("Muffins brought in $480.", "480 where s1"),
        ("Cookies made $550 and muffins $474.05.", "550 where s2"),
        ("Revenue from cookies: 546.5", "546.5 where s2"),
    ],
)
def test_results_restated_differently_fail(text, evidence):
    verdict = restated_results(text, RESULTS)
    assert verdict is not None
    assert (verdict.check, verdict.passed) == ("restated_results", False), verdict
    assert evidence in verdict.evidence


def test_a_wrong_restatement_names_the_computed_value():
    verdict = restated_results("Muffins brought in $474.50.", RESULTS[:1])
    assert verdict.evidence == (
        "the answer restates a computed result differently: 474.50 where "
        "s1: Compute the muffins revenue: 95 * 4.99 computed 474.05"
    )


@pytest.mark.parametrize(
    "text, results",
    [
        ("It rained 480 mm.", RESULTS),  # close number, no label words near it
        ("The answer is 474.50.", RESULTS),
        ("Muffins sold well.", RESULTS),
        ("Muffins brought in $474.50.", []),
        ("Muffins brought in $474.50.", [("s1: calculator", 474.05)]),  # no label words
        ("Muffins brought in $600.", RESULTS),  # not close: another quantity
        ("Muffins brought in $474.50.", [("s1: muffins revenue", 0.0)]),  # zero: no scale
    ],
)
def test_no_restatement_seen_gives_no_verdict(text, results):
    assert restated_results(text, results) is None


def test_a_result_stated_correctly_anywhere_is_not_flagged_again():
    text = "Muffins brought in $474.05. The muffins target was $480."
    verdict = restated_results(text, RESULTS[:1])
    assert (verdict.passed, verdict.evidence) == (True, "1 computed result(s) restated")


def test_a_number_that_is_another_result_is_not_a_misstatement():
    results = [("s1: muffins revenue", 474.05), ("s2: muffins revenue after tax", 483.5)]
    verdict = restated_results("Muffins revenue: 474.05, after tax 483.50.", results)
    assert (verdict.passed, verdict.evidence) == (True, "2 computed result(s) restated")
