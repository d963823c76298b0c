"""The example agents in examples/, each run end to end on a scripted model: real LangGraph,
real executors (calculator, python sandbox, docs search, read-only SQL), real verifier, real
SQLite store. Only the model's text is scripted, and it is routed by the role of each request
(planner, code writer, llm step, composer), because parallel steps ask in no fixed order. The
scripted composer copies what the steps computed from its prompt, so an expected number or
file name in an answer got there through the run, not through the script."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import sqlite3
import struct
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from stepgraph import ScriptedBackend, Store
from stepgraph.executors.llm import ANSWER_SYSTEM, ARGUMENTS_SYSTEM, CODE_SYSTEM, EXPRESSION_SYSTEM
from stepgraph.models import Request
from stepgraph.runtime import candidates
from stepgraph.verifier.composer import COMPOSE_SYSTEM

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
COMPUTED = re.compile(r"-> (\S+)   \(computed exactly")

pytestmark = pytest.mark.timeout(180)


def example(name: str) -> ModuleType:
    """Import examples/NAME.py (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plan(*steps: tuple[str, list[str], str, str]) -> str:
    rows = [{"id": i, "depends_on": d, "executor": e, "instruction": t} for i, d, e, t in steps]
    return json.dumps({"steps": rows})


def scripted(
    *plans: str,
    llm: Callable[[str], str] | None = None,
    code: Callable[[str], str] | None = None,
    compose: Callable[[str], str] | None = None,
    direct: Callable[[str], str] | None = None,
    arguments: Callable[[str], str] | None = None,
    plain: Callable[[str], str] = lambda _: "I cannot tell.",
) -> ScriptedBackend:
    """A model whose reply depends on who asks: plans in order, then the given functions of
    the request's last message. `direct` answers the whole task as the model itself (the
    direct candidate and any samples); `plain` the plain candidate (by default with no
    number, so no vote). A request nobody expected fails the test."""
    queue = list(plans)
    roles = {
        ANSWER_SYSTEM: llm,
        CODE_SYSTEM: code,
        COMPOSE_SYSTEM: compose,
        candidates.REASON_SYSTEM: direct,
        candidates.ANSWER_SYSTEM: direct,
        candidates.PLAIN_SYSTEM: plain,
        ARGUMENTS_SYSTEM: arguments,
    }

    def respond(request: Request) -> str:
        system, prompt = request.messages[0].content, request.messages[-1].content
        if system.startswith("You are a planner."):
            return queue.pop(0)
        reply = roles.get(system)
        assert reply is not None, f"unexpected request: {system[:80]!r} / {prompt[:200]!r}"
        return reply(prompt)

    return ScriptedBackend(responder=respond)


def system_prompts(model: ScriptedBackend) -> list[str]:
    return [r.messages[0].content for r in model.requests]


def only_run(path: Path):
    with Store(path) as store:
        (summary,) = store.runs()
        return store.run(summary.id)


def answer_verdicts(record) -> dict[str, bool | None]:
    return {v.check: v.passed for v in record.verdicts if v.step_id is None}


# -- math_agent ----------------------------------------------------------------------------


def test_math_agent_answers_directly_where_a_program_agrees(tmp_path):
    model = scripted(
        code=lambda _: "```python\nprint(round((28 * 4.35 + 15 * 7.80) * 0.88, 2))\n```",
        direct=lambda _: "The order is 238.80 dollars less 12 %.\nAnswer: 210.14",
    )
    rc = example("math_agent").main([], model=model, store=tmp_path / "s.db")
    record = only_run(tmp_path / "s.db")
    assert (rc, record.status) == (0, "done")
    assert {s.step_id: s.executor for s in record.steps} == {
        "direct": "llm",
        "program": "python",
        "s1": "llm",  # the one-step plan the direct answer is
    }
    assert record.step("program").output.strip() == "210.14"  # the sandbox ran it
    assert "210.14" in record.answer
    assert "direct, program agree on 210.14" in str(answer_verdicts_evidence(record))


def answer_verdicts_evidence(record) -> list[str]:
    return [v.evidence for v in record.verdicts if v.step_id is None]


def test_math_agent_plans_exact_calculations_where_the_answers_disagree(tmp_path, capsys):
    worked = iter(
        [
            # the direct answer, worked out: the tie-breakers may spend 4 times its tokens
            "28 pens at 4.35 dollars are 121.80 dollars and 15 notebooks at 7.80 dollars are "
            "117.00 dollars, so the order is 238.80 dollars less 12 %.\nAnswer: 210.14",
            "Answer: 200",  # then two samples, that agree with nothing
            "Answer: 190",
        ]
    )
    model = scripted(
        plan(
            ("s1", [], "calculator", "28 * 4.35"),
            ("s2", [], "calculator", "15 * 7.80"),
            ("s3", ["s1", "s2"], "calculator", "({{s1}} + {{s2}}) * 0.12"),
            ("s4", ["s1", "s2", "s3"], "python", "Pay {{s1}} plus {{s2}} less {{s3}}, to cents"),
        ),
        code=lambda _: (
            '```python\nprint(round(float(deps["s1"]) + float(deps["s2"]) - float(deps["s3"]), 2))'
            "\n```"
        ),
        compose=lambda prompt: "Computed: " + ", ".join(COMPUTED.findall(prompt)) + ".",
        direct=lambda _: next(worked),
    )
    math_agent = example("math_agent")
    rc = math_agent.main([], model=model, store=tmp_path / "s.db")

    discount = (28 * 4.35 + 15 * 7.80) * 0.12
    paid = round(28 * 4.35 + 15 * 7.80 - discount, 2)
    record = only_run(tmp_path / "s.db")
    # the plan's answer agrees with the direct one, but two of four are not most of the
    # vote: the answer is given, unverified, and the example exits 1
    assert (rc, record.status) == (1, "unverified")
    out = capsys.readouterr().out
    assert "composed chosen: composed, direct agree on 210.14" in out
    assert record.instruction == math_agent.PROBLEM
    assert {s.step_id: (s.executor, s.status) for s in record.steps} == {
        "program": ("python", "failed"),  # its code read deps it does not have
        "plain": ("llm", "done"),  # with no number: no vote
        "sample-1": ("llm", "done"),
        "sample-2": ("llm", "done"),
        "direct": ("llm", "done"),
        "s1": ("calculator", "done"),
        "s2": ("calculator", "done"),
        "s3": ("calculator", "done"),
        "s4": ("python", "done"),
    }
    assert float(record.step("s3").output) == pytest.approx(discount)
    assert record.step("s4").output.strip() == f"{paid:.2f}"  # the sandbox ran the code
    assert 'deps["s3"]' in record.step("s4").data["code"]
    # calculator steps ran their expressions directly; only the python step asked for
    # code, besides the whole-problem program (written, and rewritten once after its error)
    prompts = system_prompts(model)
    assert prompts.count(CODE_SYSTEM) == 3 and EXPRESSION_SYSTEM not in prompts
    assert "28.656" in record.answer and f"{paid:.2f}" in record.answer
    assert answer_verdicts(record)["computed_results_stated"] is True
    assert answer_verdicts(record)["cross_check"] is False
    assert "s4 [python]" in out and f"Answer: {record.answer}" in out and record.id in out


# -- research_assistant --------------------------------------------------------------------

RESEARCH_PLAN = plan(
    ("s1", [], "docs", "Team plan price per seat"),
    ("s2", [], "docs", "support first response time for the Team plan"),
    ("s3", [], "docs", "roadmap next quarter"),
    ("s4", ["s1", "s2", "s3"], "llm", "Answer from {{s1}}, {{s2}} and {{s3}} with citations"),
)


def cite_top_hits(prompt: str) -> str:
    """A composer that answers each part with the best passage's file, as [file]."""
    files = re.findall(r"-> \[([^\]]+)\]", prompt)
    return " ".join(f"Part {i} is answered in [{f}]." for i, f in enumerate(files, 1))


def test_research_assistant_answers_each_part_from_the_notes_with_file_citations(tmp_path, capsys):
    model = scripted(
        RESEARCH_PLAN,
        llm=lambda p: "Notes: " + p,
        compose=cite_top_hits,
        direct=lambda _: "The Team plan costs $20 per seat [pricing.md].",  # from memory
    )
    rc = example("research_assistant").main([], model=model, store=tmp_path / "s.db")

    assert rc == 0
    record = only_run(tmp_path / "s.db")
    assert record.status == "done"
    executors = {s.step_id: s.executor for s in record.steps}
    assert executors == {"direct": "llm", "s1": "docs", "s2": "docs", "s3": "docs", "s4": "llm"}
    # the searches found the facts in the right files of examples/data/notes
    top = {s.step_id: s.data[0]["path"] for s in record.steps if s.executor == "docs"}
    assert top == {"s1": "pricing.md", "s2": "support.md", "s3": "roadmap.md"}
    assert "$18" in record.step("s1").output
    assert "first response within 8 business hours" in record.step("s2").output
    assert "Two-way SMS" in record.step("s3").output
    for name in ("pricing.md", "support.md", "roadmap.md"):
        assert f"[{name}]" in record.answer
    assert answer_verdicts(record)["cites_sources"] is True
    assert "cites_sources: True" in capsys.readouterr().out


def test_research_assistant_fails_an_answer_that_cites_a_file_it_never_read(tmp_path):
    invented = "The Team plan costs $18 per seat [pricing.md] and support is instant [sla.md]."
    model = scripted(
        RESEARCH_PLAN,
        llm=lambda p: "Notes: " + p,
        compose=lambda _: invented,
        direct=lambda _: "I cannot see your notes.",
    )
    rc = example("research_assistant").main([], model=model, store=tmp_path / "s.db")

    assert rc == 1
    record = only_run(tmp_path / "s.db")
    (verdict,) = [v for v in record.verdicts if v.check == "cites_sources" and v.step_id is None]
    assert verdict.passed is False and "sla.md" in verdict.evidence
    # the composer was asked to revise with that feedback (2 revisions by default)
    assert system_prompts(model).count(COMPOSE_SYSTEM) == 3
    assert "cites_sources" in model.requests[-1].messages[-1].content


# -- data_analyst --------------------------------------------------------------------------

SALES_PLAN = plan(
    (
        "s1",
        [],
        "sql",
        "SELECT region, SUM(revenue) AS revenue FROM sales GROUP BY region ORDER BY revenue DESC",
    ),
    (
        "s2",
        [],
        "sql",
        "SELECT product, SUM(units) AS units FROM sales GROUP BY product ORDER BY units DESC",
    ),
    (
        "s3",
        [],
        "sql",
        "SELECT substr(date, 1, 7) AS month, SUM(revenue) AS revenue FROM sales "
        "GROUP BY month ORDER BY month",
    ),
    ("s4", ["s1", "s2", "s3"], "llm", "Summarise {{s1}}, {{s2}} and {{s3}}"),
)


def list_table_rows(prompt: str) -> str:
    """A composer that states every row of the result tables (once each) as 'label value'."""
    rows = re.findall(r"^\s*(?:->\s*)?\| ([^|]+) \| ([\d.]+) \|", prompt, re.M)
    return "By the numbers: " + "; ".join(f"{k} {v}" for k, v in dict.fromkeys(rows)) + "."


def test_data_analyst_loads_the_csv_queries_it_and_writes_report_and_chart(tmp_path):
    # the llm step restates its inputs (the verifier wants their numbers) but not as tables
    model = scripted(
        SALES_PLAN,
        llm=lambda p: p.replace("|", "/"),
        compose=list_table_rows,
        direct=lambda _: "The North region and the Widget, most likely.",  # it has no data
    )
    out = tmp_path / "out"
    rc = example("data_analyst").main(["--out", str(out)], model=model, store=tmp_path / "s.db")

    with (EXAMPLES / "data" / "sales.csv").open(newline="") as f:
        sales = list(csv.DictReader(f))
    revenue: dict[str, float] = defaultdict(float)
    units: dict[str, int] = defaultdict(int)
    for row in sales:
        revenue[row["region"]] += float(row["revenue"])
        units[row["product"]] += int(row["units"])
    region = max(revenue, key=revenue.__getitem__)
    product = max(units, key=units.__getitem__)

    assert rc == 0
    db = sqlite3.connect(out / "sales.db")
    assert db.execute("SELECT count(*), typeof(units), typeof(revenue) FROM sales").fetchone() == (
        len(sales),
        "integer",
        "real",
    )
    db.close()
    record = only_run(tmp_path / "s.db")
    assert record.status == "done"
    assert record.step("direct").status == "done"  # the model's own answer, without the data
    assert [(s.step_id, s.executor, s.status) for s in record.steps if s.step_id != "direct"] == [
        ("s1", "sql", "done"),
        ("s2", "sql", "done"),
        ("s3", "sql", "done"),
        ("s4", "llm", "done"),
    ]
    assert record.step("s1").data["rows"][0] == [region, pytest.approx(revenue[region])]
    assert record.step("s2").data["rows"][0] == [product, units[product]]
    assert len(record.step("s3").data["rows"]) == 6  # January to June
    assert f"{region} {revenue[region]:g}" in record.answer
    assert f"{product} {units[product]}" in record.answer
    report = (out / "report.md").read_text()
    assert record.answer in report and record.id in report and "![chart](chart.png)" in report
    assert all(record.step(s).instruction in report for s in ("s1", "s2", "s3"))
    png = (out / "chart.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, _ = struct.unpack(">II", png[16:24])
    assert width == 3 * 450  # one 4.5-inch panel at 100 dpi per chartable query


# -- multi_turn ----------------------------------------------------------------------------


def test_multi_turn_picks_the_conversation_up_again_in_a_new_runtime(tmp_path, capsys):
    multi_turn = example("multi_turn")
    first = "Our team has 14 people and an offsite budget of $3,500. How much is that per person?"
    per_person = scripted(
        direct=lambda _: "Split evenly, that is 250 each.\nAnswer: 250",
        code=lambda _: "```python\nprint(3500 / 14)\n```",
    )
    # one question, and the model's answer and a program agree: no plan is made
    assert multi_turn.main([first], model=per_person, store=tmp_path / "s.db") == 0
    conversation = re.search(r"conversation: (\S+)", capsys.readouterr().out).group(1)
    assert not any(p.startswith("You are a planner.") for p in system_prompts(per_person))

    follow_up = "And if 3 more people join? Suggest a cheaper venue too."
    more = scripted(
        plan(
            ("s1", [], "calculator", "3500 / (14 + 3)"),
            ("s2", [], "llm", "Suggest a cheaper venue."),
        ),
        llm=lambda _: "A farm in the hills.",
        compose=lambda p: f"With 17 people it is ${float(COMPUTED.findall(p)[-1]):.2f} each.",
        direct=lambda _: "Split 17 ways, that is 205.88 each.\nAnswer: 205.88",
    )
    argv = ["--conversation", conversation, follow_up]
    assert multi_turn.main(argv, model=more, store=tmp_path / "s.db") == 0
    assert "continuing a conversation of 2 messages" in capsys.readouterr().out

    # the conversation reaches the planner and the model's own answer, in order
    for role in ("You are a planner.", candidates.REASON_SYSTEM):
        (prompt,) = [
            "\n".join(m.content for m in r.messages)
            for r in more.requests
            if r.messages[0].content.startswith(role)
        ]
        assert first in prompt and "250 each" in prompt, role
        assert prompt.index(first) < prompt.index(follow_up)
    with Store(tmp_path / "s.db") as store:
        messages = store.messages(conversation)
        runs = store.runs()
    assert [(m.role, m.content) for m in messages] == [
        ("user", first),
        ("assistant", "Split evenly, that is 250 each.\nAnswer: 250"),
        ("user", follow_up),
        ("assistant", "With 17 people it is $205.88 each."),
    ]
    assert [r.conversation_id for r in runs] == [conversation, conversation]
    assert {m.run_id for m in messages} == {r.id for r in runs}


def test_multi_turn_refuses_an_unknown_conversation(tmp_path, capsys):
    argv = ["--conversation", "c-nope", "hello"]
    model = scripted()
    assert example("multi_turn").main(argv, model=model, store=tmp_path / "s.db") == 2
    assert "no conversation c-nope" in capsys.readouterr().err
    assert model.requests == []


# -- trip_planner --------------------------------------------------------------------------

TRIP_PLAN = plan(
    ("s1", [], "llm", "Suggest one activity in Porto for day 1"),
    ("s2", [], "llm", "Suggest one activity in Porto for day 2"),
    ("s3", [], "calculator", "6 * 64"),
    ("s4", [], "calculator", "3 * 2 * 110"),
    ("s5", [], "calculator", "6 * 45"),
    ("s6", ["s3", "s4", "s5"], "calculator", "{{s3}} + {{s4}} + {{s5}}"),
    ("s7", ["s1", "s2", "s6"], "llm", "Write the plan with {{s1}}, {{s2}} and the total {{s6}}"),
)


def activity(prompt: str) -> str:
    """An llm step: the day's activity after a pause (so overlap shows), or the write-up."""
    if "Your step: Suggest" in prompt:
        time.sleep(0.5)
        return "A walking tour of Ribeira." if "day 1" in prompt else "A Douro river cruise."
    return "Plan: " + prompt


@pytest.mark.parametrize(
    ("budget", "padding", "within_budget", "max_words"),
    [(2500, 0, True, True), (1000, 0, False, True), (2500, 150, True, False)],
    ids=["fits", "over-budget", "too-long"],
)
def test_trip_planner_runs_steps_in_parallel_and_checks_budget_and_word_limit(
    tmp_path, capsys, budget, padding, within_budget, max_words
):
    def compose(prompt: str) -> str:
        total = COMPUTED.findall(prompt)[-1]
        return f"Day 1: Ribeira walk. Day 2: Douro cruise. Total ${total}." + " More." * padding

    model = scripted(
        TRIP_PLAN,
        llm=activity,
        compose=compose,
        direct=lambda _: "Tickets, hotel and dinner come to 1314 dollars.\nAnswer: 1314",
    )
    argv = ["--budget", str(budget), "--words", "120"]
    rc = example("trip_planner").main(argv, model=model, store=tmp_path / "s.db")

    record = only_run(tmp_path / "s.db")
    # over budget, every candidate fails the check: the answer is kept, marked unverified
    assert record.status == ("done" if within_budget else "unverified")
    assert f"budget of ${budget}" in record.instruction
    assert record.step("s6").output == str(6 * 64 + 3 * 2 * 110 + 6 * 45)  # 1314
    verdicts = answer_verdicts(record)
    assert verdicts["within_budget"] is within_budget
    assert verdicts["cross_check"] is True  # the composed and the direct answer agree on 1314
    # a composed answer over the word limit loses to the direct one, which is within it
    assert verdicts["max_words"] is True
    if max_words:
        assert "Day 1: Ribeira walk." in record.answer
        assert verdicts["computed_results_stated"] is True
    else:
        assert record.answer == "Tickets, hotel and dinner come to 1314 dollars.\nAnswer: 1314"
    (budget_verdict,) = [
        v for v in record.verdicts if v.check == "within_budget" and v.step_id is None
    ]
    assert budget_verdict.evidence == f"total 1314 against a budget of {budget}"
    assert rc == (0 if within_budget else 1)
    # the independent steps overlapped: s2 and the costs started before s1 finished
    order = [(e.type, e.payload.get("step_id")) for e in record.events]
    s1_done = order.index(("step_finished", "s1"))
    for step in ("s2", "s3", "s4", "s5"):
        assert order.index(("step_started", step)) < s1_done
    assert order.index(("step_started", "s6")) > order.index(("step_finished", "s5"))
    assert order.index(("step_started", "s7")) > s1_done
    peak = int(re.search(r"up to (\d+) steps ran", capsys.readouterr().out).group(1))
    assert peak >= 2


def test_trip_planner_checks_the_total_the_answer_states_when_no_plan_computed_one():
    check = example("trip_planner").within_budget(2500)
    (fits,) = check("", "The total cost for the two days is $1,044, which fits.", [])
    assert (fits.passed, fits.evidence) == (True, "total stated 1044 against a budget of 2500")
    (over,) = check("", "Day 1: a walk. Day 2: a cruise. In total $3,120 for both days.", [])
    assert (over.passed, over.evidence) == (False, "total stated 3120 against a budget of 2500")
    (none,) = check("", "A walk and a cruise.", [])
    assert (none.passed, none.evidence) == (None, "no total")


# -- mcp_agent -----------------------------------------------------------------------------


def test_mcp_agent_calls_the_servers_tools_at_once_and_answers_from_them(tmp_path, capsys):
    """The real example server over stdio; the scripted model plans two forecast calls and
    writes each call's arguments from its step."""
    model = scripted(
        plan(
            ("s1", [], "weather_forecast", "Get tomorrow's forecast for Lisbon."),
            ("s2", [], "weather_forecast", "Get tomorrow's forecast for Oslo."),
            ("s3", ["s1", "s2"], "llm", "Say which is warmer: {{s1}} or {{s2}}."),
        ),
        arguments=lambda p: json.dumps({"city": "Lisbon" if "Lisbon." in p else "Oslo"}),
        llm=lambda p: "Lisbon, with a high of 19 C against 4 C in Oslo, will be warmer.",
        compose=lambda p: (
            "Tomorrow's high is 19 C in Lisbon and 4 C in Oslo. Lisbon will be warmer."
        ),
        direct=lambda p: "Lisbon will be warmer than Oslo. Highs are about 20 C and 5 C.",
    )
    code = example("mcp_agent").main([], model=model, store=tmp_path / "s.db")
    out, err = capsys.readouterr()
    assert "left out" not in err, err
    assert "Tools from the MCP server: weather_forecast, weather_sunrise" in out
    record = only_run(tmp_path / "s.db")
    steps = {s.step_id: s for s in record.steps}
    assert steps["s1"].output == "Lisbon: high 19 C, low 12 C, sunny"
    assert steps["s2"].output == "Oslo: high 4 C, low -1 C, rain"
    assert record.answer.startswith("Tomorrow's high is 19 C in Lisbon") and code in (0, 1)
