"""A GBNF grammar under which every decoded plan is valid by construction.

llama.cpp's JSON-schema converter ignored `prefixItems` (measured), so we write the
grammar ourselves: step ids are s1..sK in order and each step's `depends_on` is an
ascending list of earlier ids, so cycles and unknown ids cannot be written at all.
A GBNF that fails to parse crashes llama.cpp with a segfault, so every grammar is
checked with xgrammar's parser before it reaches the engine (`check_gbnf`).
"""

from __future__ import annotations

import json

from stepgraph.errors import GrammarError
from stepgraph.models.gbnf import check_gbnf

MAX_TEXT = 400


def _lit(text: str) -> str:
    """A GBNF literal for `text`."""
    return json.dumps(text)


def _deps_rules(i: int) -> tuple[str, list[str]]:
    """Rule for step i's non-empty ascending dependency lists, over s1..s(i-1)."""
    rules = []
    for j in range(i - 1, 0, -1):
        name = f"dep-{i}-{j}"
        item = _lit(f'"s{j}"')
        if j == i - 1:
            rules.append(f"{name} ::= {item}")
        else:
            rules.append(f'{name} ::= {item} ( "," dep-{i}-{j + 1} )? | dep-{i}-{j + 1}')
    return (f"dep-{i}-1" if i > 1 else ""), rules


def plan_gbnf(executors: tuple[str, ...], max_steps: int, *, equations: bool = True) -> str:
    """Grammar for `{"steps":[{"id":"s1","depends_on":[...],"executor":"...","instruction":"..."}, ...]}`.

    `equations=False` keeps "=" out of step text: the 0.5B model wrote its own (wrong)
    results into instructions ("146 + 312 = 458"), which the steps then trusted; the
    planner asks for the task's instruction with equations only when the task has one."""
    if not executors:
        raise GrammarError("a plan grammar needs at least one executor")
    if max_steps < 1:
        raise GrammarError("max_steps must be at least 1")
    rules = [
        'root ::= "{\\"steps\\":[" step-1 tail-1 "]}"',
        "executor ::= " + " | ".join(_lit(f'"{name}"') for name in executors),
        # "{" only opens a reference to an earlier step, so a step cannot name itself or a
        # later step in its text (measured: the 0.5B model wrote {{s2}} inside s2)
        'char ::= [^"{\\\\\\x00-\\x1f' + ("" if equations else "=") + '] | "\\\\" ["\\\\/bfnrt]',
    ]
    for i in range(1, max_steps + 1):
        deps, dep_rules = _deps_rules(i)
        rules.extend(dep_rules)
        dep_part = f'"[" ( {deps} )? "]"' if deps else '"[]"'
        if i == 1:
            rules.append(f'text-1 ::= "\\"" char{{1,{MAX_TEXT}}} "\\""')
        else:
            earlier = " | ".join(_lit(f"s{j}") for j in range(1, i))
            rules.append(
                f'text-{i} ::= "\\"" ( char | "{{{{" ( {earlier} ) "}}}}" ){{1,{MAX_TEXT}}} "\\""'
            )
        rules.append(
            f"step-{i} ::= "
            + _lit(f'{{"id":"s{i}","depends_on":')
            + f" {dep_part} "
            + _lit(',"executor":')
            + " executor "
            + _lit(',"instruction":')
            + f" text-{i} "
            + _lit("}")
        )
        if i < max_steps:
            rules.append(f'tail-{i} ::= ( "," step-{i + 1} tail-{i + 1} )?')
        else:
            rules.append(f'tail-{i} ::= ""')
    grammar = "\n".join(rules) + "\n"
    check_gbnf(grammar)
    return grammar
