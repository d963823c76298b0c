"""StepScanner: complete step objects out of a plan's JSON, however the text is cut."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from stepgraph.planner._stream import StepScanner

TRICKY = [
    "use {{s1}} and {{ s2 }}",
    'a "quoted" word, a \\ backslash and \\"both\\"',
    "closing } and ] first, then { and [ opening",
    '"}]}',
    "\\",
    "line\nbreak\ttab \u2028 \x00 \x1f",
    "ünïcödé 中文 🙂",
]

json_leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=10)
json_leaf |= st.sampled_from(TRICKY)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)

steps_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.sampled_from(["s1", "s2", "{", "]", '"', "\\"]) | st.text(max_size=6),
            "depends_on": st.lists(st.sampled_from(["s1", "s2", "[s3]"]), max_size=3),
            "executor": st.sampled_from(["llm", "python"]),
            "instruction": st.sampled_from(TRICKY) | st.text(),
        },
        optional={"args": st.dictionaries(st.text(max_size=5), json_value, max_size=3)},
    ),
    max_size=5,
)


def feed_in_pieces(text: str, cuts: list[int]) -> tuple[list[dict], list[int]]:
    """Feed `text` cut at `cuts`; return the objects and how many came out after each piece."""
    scanner = StepScanner()
    bounds = sorted({0, *(c % (len(text) + 1) for c in cuts), len(text)})
    found: list[dict] = []
    counts = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        found += scanner.feed(text[start:end])
        counts.append(len(found))
    return found, counts


@settings(max_examples=200, deadline=None)
@given(
    steps=steps_strategy,
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=40),
    ascii_only=st.booleans(),
    indent=st.sampled_from([None, 2]),
    goal=st.sampled_from([None, "plan {the} [thing]", '{"steps":[{"id":"fake"}]}']),
)
def test_random_cuts_yield_exactly_the_steps(steps, cuts, ascii_only, indent, goal):
    document = {"goal": goal, "steps": steps} if goal is not None else {"steps": steps}
    text = json.dumps(document, ensure_ascii=ascii_only, indent=indent)
    found, _ = feed_in_pieces(text, cuts)
    assert found == steps


@settings(max_examples=100, deadline=None)
@given(steps=steps_strategy.filter(bool))
def test_each_step_comes_out_the_moment_it_closes(steps):
    prefix = '{"steps":['
    parts = [json.dumps(step, separators=(",", ":")) for step in steps]
    text = prefix + ",".join(parts) + "]}"
    closes = []
    position = len(prefix)
    for part in parts:
        closes.append(position + len(part) - 1)
        position += len(part) + 1
    scanner = StepScanner()
    for i, ch in enumerate(text):
        out = scanner.feed(ch)
        if i in closes:
            assert out == [steps[closes.index(i)]]
        else:
            assert out == []


def test_one_piece_and_character_by_character_agree():
    steps = [
        {"id": "s1", "depends_on": [], "executor": "llm", "instruction": TRICKY[1]},
        {
            "id": "s2",
            "depends_on": ["s1"],
            "executor": "python",
            "instruction": TRICKY[2],
            "args": {"code": "print({'a': [1, {'b': '}'}]})"},
        },
    ]
    text = json.dumps({"steps": steps})
    assert StepScanner().feed(text) == steps
    scanner = StepScanner()
    assert [obj for ch in text for obj in scanner.feed(ch)] == steps


def test_fenced_output_with_chatter_streams():
    steps = [{"id": "s1", "instruction": "a"}, {"id": "s2", "instruction": "b {{s1}}"}]
    text = "Here is the plan:\n```json\n" + json.dumps({"steps": steps}, indent=2) + "\n```\nDone."
    found, _ = feed_in_pieces(text, list(range(0, len(text), 8)))
    assert found == steps


def test_an_unfinished_step_is_not_emitted():
    scanner = StepScanner()
    assert scanner.feed('{"steps":[{"id":"s1","instruction":"a"},{"id":"s2","instr') == [
        {"id": "s1", "instruction": "a"}
    ]
    assert scanner.feed('uction":"b}"') == []
    assert scanner.feed("}") == [{"id": "s2", "instruction": "b}"}]
    assert scanner.feed("]}") == []
