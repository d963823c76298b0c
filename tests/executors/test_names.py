"""The mechanical fix for names the model wrote in another case than it assigned them."""

import asyncio

from stepgraph.executors import PythonExecutor
from stepgraph.executors.base import StepInput
from stepgraph.executors.llm import writing_for
from stepgraph.executors.names import fix_name_case
from stepgraph.models import ScriptedBackend

# what the 0.5B wrote for GSM8K dev problem 6 (it died with a NameError, twice)
SHEEP = (
    "seattle_sheep = 20\n"
    "charleston_sheep = 4 * Seattle_sheep\n"
    "toulouse_sheep = 2 * Charleston_sheep\n"
    "print(Seattle_sheep + Charleston_sheep + toulouse_sheep)\n"
)


def test_a_name_read_in_another_case_is_renamed_to_the_one_assigned():
    code, fixed = fix_name_case(SHEEP)
    assert fixed == ["Charleston_sheep -> charleston_sheep", "Seattle_sheep -> seattle_sheep"]
    assert "Seattle" not in code and "Charleston" not in code
    assert code.splitlines()[-1] == "print(seattle_sheep + charleston_sheep + toulouse_sheep)"


def test_bound_names_builtins_and_given_names_are_left_alone():
    code = "Total = 3\ntotal = 4\nprint(Total, total, Print, DEPS, deps)\n"
    # Total and total are both bound; Print matches nothing bound (print is a builtin, not
    # bound here); DEPS may be the executor's deps, which is given, not bound: all kept
    assert fix_name_case(code) == (code, [])


def test_a_name_that_matches_two_bound_names_is_not_guessed():
    code = "Price = 3\nPRICE = 4\nprint(price)\n"
    assert fix_name_case(code) == (code, [])


def test_code_that_does_not_parse_or_imports_star_is_returned_unchanged():
    for code in ("x = = 1\nprint(X)", "from math import *\nPi_2 = pi / 2\nprint(pi_2)"):
        assert fix_name_case(code) == (code, [])


def test_function_arguments_and_loop_names_count_as_bound_and_offsets_survive_unicode():
    code = 'def area(width):\n    return Width * 2  # "größe"\nprint("größe", area(3), [I for i in range(2)])\n'
    fixed_code, fixed = fix_name_case(code)
    assert fixed == ["I -> i", "Width -> width"]
    assert fixed_code == (
        'def area(width):\n    return width * 2  # "größe"\n'
        'print("größe", area(3), [i for i in range(2)])\n'
    )


def test_the_code_writer_fixes_names_before_running_and_records_it():
    backend = ScriptedBackend([f"```python\n{SHEEP}```"])
    executor = writing_for(PythonExecutor(), backend)
    out = asyncio.run(
        executor.run(StepInput(step_id="program", instruction="solve it", task="sheep"))
    )
    assert out.ok and out.output.strip() == "260"
    assert out.data["fixed"] == [
        "Charleston_sheep -> charleston_sheep",
        "Seattle_sheep -> seattle_sheep",
    ]
    assert len(backend.requests) == 1  # no rewrite was needed


def test_code_that_needs_no_fix_carries_no_fixed_entry():
    backend = ScriptedBackend(["```python\nprint(6 * 7)\n```"])
    out = asyncio.run(
        writing_for(PythonExecutor(), backend).run(
            StepInput(step_id="s1", instruction="six times seven", task="x")
        )
    )
    assert out.output.strip() == "42" and "fixed" not in out.data
