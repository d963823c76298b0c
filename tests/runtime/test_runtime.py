"""The runtime with scripted plans and executors: real LangGraph, real SQLite, no model."""

import asyncio
import json
import threading

import pytest

from stepgraph import Plan, Runtime, ScriptedBackend, Store, replay
from stepgraph.executors.base import StepOutput
from stepgraph.models.base import Completion


def plan_text(*steps):
    return json.dumps(
        {
            "steps": [
                {"id": sid, "depends_on": deps, "executor": ex, "instruction": text}
                for sid, deps, ex, text in steps
            ]
        }
    )


class Echo:
    """Answers `<id:instruction>` after a delay; remembers what it was given."""

    name = "llm"
    description = "echoes"
    writes_text = True  # it stands for the model answering in prose

    def __init__(self, delay=0.05, fail=(), crash=(), empty_first=()):
        self.delay, self.fail, self.crash, self.empty_first = (
            delay,
            set(fail),
            set(crash),
            set(empty_first),
        )
        self.inputs = []

    async def run(self, step):
        self.inputs.append(step)
        await asyncio.sleep(self.delay)
        if step.step_id in self.crash:
            raise ZeroDivisionError("boom")
        if step.step_id in self.fail:
            return StepOutput(error="tool said no")
        if step.step_id in self.empty_first and step.feedback is None:
            return StepOutput(output="   ")
        return StepOutput(output=f"<{step.step_id}:{step.instruction}>")


def make(tmp_path, replies, executor=None, **options):
    backend = ScriptedBackend(replies, responder=lambda r: "composed answer")
    executor = executor or Echo()
    python = Echo()
    python.name, python.writes_text, python.computes = "python", False, True
    options.setdefault("direct", False)  # these tests script the plan-only pipeline
    runtime = Runtime(backend, store=tmp_path / "s.db", executors=[executor, python], **options)
    return runtime, backend, executor


DIAMOND = plan_text(
    ("s1", [], "llm", "a"),
    ("s2", [], "llm", "b"),
    ("s3", ["s1", "s2"], "python", "join {{s1}} and {{s2}}"),
)


def test_diamond_runs_in_dependency_order_and_renders_references(tmp_path):
    runtime, backend, echo = make(tmp_path, [DIAMOND])
    events = []
    result = runtime.run("do a and b, then join", on_event=events.append)
    assert result.status == "done"
    assert result.answer == "composed answer"
    by_id = {s.step_id: s for s in result.steps}
    assert by_id["s3"].instruction == "join <s1:a> and <s2:b>"
    assert by_id["s3"].output == "<s3:join <s1:a> and <s2:b>>"
    order = [(e.type, e.step_id) for e in events if e.type in ("step_started", "step_finished")]
    # s1 and s2 are independent: both start before either finishes
    assert order.index(("step_started", "s2")) < order.index(("step_finished", "s1"))
    assert order.index(("step_started", "s3")) > order.index(("step_finished", "s2"))
    # the composer saw every result
    assert "<s3:join <s1:a> and <s2:b>>" in backend.requests[-1].messages[-1].content


def test_everything_is_in_the_store(tmp_path):
    runtime, _, _ = make(tmp_path, [DIAMOND])
    result = runtime.run("do a and b, then join")
    record = Store(tmp_path / "s.db").run(result.run_id)
    assert record.status == "done" and record.answer == "composed answer"
    assert [s.step_id for s in record.steps] == ["s1", "s2", "s3"]
    assert all(s.status == "done" and s.output for s in record.steps)
    assert record.plan["steps"][2]["depends_on"] == ["s1", "s2"]
    types = [e.type for e in record.events]
    assert types.count("step_finished") == 3 and "answer" in types and types[-1] == "run_finished"
    assert any(v.check == "non_empty" and v.passed for v in record.verdicts)


def test_eager_dispatch_starts_steps_while_the_plan_is_decoded(tmp_path):
    runtime, backend, _ = make(tmp_path, [DIAMOND])
    backend.stream_delay = 0.02  # a plan decoded over ~0.5 s, as a model would
    events = []
    runtime.run("do a and b, then join", on_event=events.append)
    kinds = [(e.type, e.step_id) for e in events]
    assert kinds.index(("step_started", "s1")) < kinds.index(("plan_ready", None))


def test_one_llm_step_answers_without_a_composer_call(tmp_path):
    runtime, backend, _ = make(tmp_path, [plan_text(("s1", [], "llm", "capital of France?"))])
    result = runtime.run("What is the capital of France?")
    assert result.answer == "<s1:capital of France?>"
    assert len(backend.requests) == 1  # the plan only


def test_a_failing_step_skips_its_dependents_and_the_run_is_partial(tmp_path):
    plan = plan_text(
        ("s1", [], "llm", "a"),
        ("s2", [], "llm", "b"),
        ("s3", ["s1"], "llm", "c {{s1}}"),
        ("s4", ["s2", "s3"], "llm", "d"),
    )
    runtime, _, echo = make(tmp_path, [plan], Echo(fail={"s1"}))
    result = runtime.run("abcd")
    status = {s.step_id: s.status for s in result.steps}
    assert status == {"s1": "failed", "s2": "done", "s3": "skipped", "s4": "skipped"}
    assert result.status == "partial"
    assert "tool said no" in Store(tmp_path / "s.db").run(result.run_id).step("s1").error
    assert sum(1 for i in echo.inputs if i.step_id == "s1") == 2  # retried once with feedback


def test_an_executor_crash_is_the_steps_failure_not_the_runs(tmp_path):
    runtime, _, _ = make(
        tmp_path,
        [plan_text(("s1", [], "llm", "a"), ("s2", ["s1"], "llm", "b"))],
        Echo(crash={"s1"}),
    )
    result = runtime.run("ab")
    s1 = result.steps[0]
    assert s1.status == "failed" and "ZeroDivisionError" in s1.error
    assert result.status == "failed"
    assert "could not complete" in result.answer


def test_verifier_failure_retries_once_with_feedback(tmp_path):
    runtime, _, echo = make(
        tmp_path,
        [plan_text(("s1", [], "llm", "a"), ("s2", ["s1"], "llm", "b"))],
        Echo(empty_first={"s1"}),
    )
    result = runtime.run("ab")
    assert result.status == "done"
    s1_inputs = [i for i in echo.inputs if i.step_id == "s1"]
    assert len(s1_inputs) == 2 and "no output" in s1_inputs[1].feedback
    assert result.steps[0].attempts == 2


def test_each_attempt_of_a_retried_step_is_kept_for_the_trace(tmp_path):
    runtime, _, _ = make(
        tmp_path,
        [plan_text(("s1", [], "llm", "a"), ("s2", ["s1"], "llm", "b"))],
        Echo(empty_first={"s1"}),
    )
    result = runtime.run("ab")
    store = Store(tmp_path / "s.db")
    attempts = [e.payload for e in store.run(result.run_id).events if e.type == "step_attempt"]
    assert [(a["step_id"], a["attempt"]) for a in attempts] == [("s1", 1), ("s1", 2)]
    first, second = attempts
    assert first["output"].strip() == "" and {
        k: first["verdicts"][0][k] for k in ("check", "passed")
    } == {"check": "non_empty", "passed": False}
    assert second["output"] == "<s1:a>"
    page = store.export_html(result.run_id)
    assert "2 attempts" in page and "attempt 1" in page and "&lt;s1:a&gt;" in page
    assert page.count("2 attempts") == 1  # s2 ran once: no attempts shown for it


class Permanent(Echo):
    """Fails s1 the way a python step fails on a time limit: the same step would again."""

    async def run(self, step):
        self.inputs.append(step)
        if step.step_id == "s1":
            return StepOutput(error="time limit of 10 s exceeded", permanent=True)
        return StepOutput(output=f"<{step.step_id}>")


def test_a_failure_that_would_repeat_is_not_retried(tmp_path):
    runtime, _, executor = make(
        tmp_path, [plan_text(("s1", [], "llm", "a"), ("s2", [], "llm", "b"))], Permanent()
    )
    result = runtime.run("ab")
    s1 = next(s for s in result.steps if s.step_id == "s1")
    assert s1.status == "failed" and s1.attempts == 1, s1
    assert [i.step_id for i in executor.inputs].count("s1") == 1


def test_step_timeout_ends_the_step_cleanly(tmp_path):
    runtime, _, _ = make(
        tmp_path, [plan_text(("s1", [], "llm", "a"))], Echo(delay=5), step_timeout=0.2
    )
    result = runtime.run("slow")
    assert result.steps[0].status == "failed"
    assert "longer than 0.2 s" in result.steps[0].error


def test_run_budget_in_seconds_ends_the_run_with_a_clear_status(tmp_path):
    runtime, _, _ = make(
        tmp_path, [plan_text(("s1", [], "llm", "a"))], Echo(delay=5), max_seconds=0.5
    )
    result = runtime.run("slow")
    assert result.status == "budget_exceeded"
    assert "longer than 0.5 s" in result.error
    assert Store(tmp_path / "s.db").run(result.run_id).status == "budget_exceeded"


def test_concurrent_llm_steps_reach_the_model_together(tmp_path):
    from stepgraph.executors.llm import LlmExecutor

    class Counting(ScriptedBackend):
        def __init__(self):
            super().__init__(responder=lambda r: "ok")
            self.inflight = self.peak = 0
            self.gate = threading.Lock()

        def generate(self, requests):
            with self.gate:
                self.inflight += 1
                self.peak = max(self.peak, self.inflight)
            import time

            time.sleep(0.2)
            with self.gate:
                self.inflight -= 1
            return [Completion(text="ok") for _ in requests]

    backend = Counting()
    plan = Plan(
        steps=[{"id": f"s{i}", "instruction": "x"} for i in range(1, 4)]
        + [{"id": "s4", "instruction": "y", "depends_on": ["s1", "s2", "s3"]}]
    )
    runtime = Runtime(backend, store=tmp_path / "s.db", executors=[LlmExecutor(backend)])
    assert runtime.run("xyz", plan=plan).status == "done"
    assert backend.peak == 4  # the three independent steps and the direct answer


def test_conversation_memory_reaches_the_planner(tmp_path):
    runtime, backend, _ = make(
        tmp_path, [plan_text(("s1", [], "llm", "France")), plan_text(("s1", [], "llm", "Germany"))]
    )
    conversation = runtime.store.new_conversation()
    runtime.run("What is the capital of France?", conversation_id=conversation)
    runtime.run("Now do the same for Germany", conversation_id=conversation)
    prompt = backend.requests[-1].messages[-1].content
    assert "What is the capital of France?" in prompt and "<s1:France>" in prompt
    assert len(runtime.store.messages(conversation)) == 4


def test_replay_without_a_model_reproduces_the_answer(tmp_path):
    runtime, _, _ = make(tmp_path, [DIAMOND])
    result = runtime.run("do a and b, then join")
    report = replay(Store(tmp_path / "s.db"), result.run_id)
    assert report.same_answer and report.answer == result.answer
    assert all(step.same for step in report.steps) and len(report.steps) == 3


def test_replay_notices_a_recording_that_no_longer_fits_together(tmp_path):
    """The replay re-renders each step from its dependencies: a recorded output changed
    after the fact shows up in the step that used it, and in the answer."""
    runtime, _, _ = make(tmp_path, [DIAMOND])
    result = runtime.run("do a and b, then join")
    with Store(tmp_path / "s.db") as store:
        store.record_step(result.run_id, "s1", output="<s1:tampered>")
        report = replay(store, result.run_id)
    by_id = {step.step_id: step for step in report.steps}
    assert by_id["s1"].same and by_id["s2"].same  # replayed from the (tampered) recording
    assert not by_id["s3"].same  # rendered from "<s1:tampered>", not what was recorded
    assert not report.same_answer


def test_plan_approval_interrupts_and_resumes_with_an_edited_plan(tmp_path):
    runtime, _, echo = make(tmp_path, [DIAMOND], approve_plan=True)
    first = runtime.run("do a and b, then join")
    assert first.status == "interrupted" and not echo.inputs
    edited = {
        "steps": [{"id": "s1", "instruction": "only this", "executor": "llm", "depends_on": []}]
    }
    result = asyncio.run(runtime.aresume(first.run_id, approve=edited))
    assert result.status == "done"
    assert [i.instruction for i in echo.inputs] == ["only this"]
    assert result.answer == "<s1:only this>"


def test_resume_approves_with_a_plan_object_too(tmp_path):
    runtime, _, echo = make(tmp_path, [DIAMOND], approve_plan=True)
    first = runtime.run("do a and b, then join")
    edited = Plan(steps=[{"id": "s1", "instruction": "just this", "executor": "llm"}])
    result = runtime.resume(first.run_id, approve=edited)  # the sync twin takes it as well
    assert result.status == "done" and result.answer == "<s1:just this>"


def test_an_invalid_given_plan_is_refused(tmp_path):
    from stepgraph.errors import PlanError

    runtime, _, _ = make(tmp_path, [])
    with pytest.raises(PlanError, match="unknown executors"):
        runtime.run(
            "x", plan=Plan(steps=[{"id": "s1", "instruction": "x", "executor": "teleport"}])
        )


def test_replay_against_another_model_diffs_each_step(tmp_path):
    plan = plan_text(("s1", [], "llm", "a"), ("s2", ["s1"], "llm", "b {{s1}}"))
    runtime, _, _ = make(tmp_path, [plan])
    result = runtime.run("a then b")
    other = ScriptedBackend(responder=lambda r: "different")
    report = replay(Store(tmp_path / "s.db"), result.run_id, model=other)
    assert report.model == "scripted"
    assert [s.step_id for s in report.steps] == ["s1", "s2"]
    assert all(not s.same and s.replayed == "different" for s in report.steps)
    assert report.steps[0].recorded == "<s1:a>"
    assert not report.same_answer


def test_a_step_that_keeps_failing_triggers_a_replan_of_the_rest(tmp_path):
    first = plan_text(("s1", [], "llm", "fetch"), ("s2", ["s1"], "llm", "use {{s1}}"))
    second = plan_text(("s1", [], "llm", "another way"), ("s2", ["s1"], "llm", "finish {{s1}}"))
    runtime, backend, echo = make(tmp_path, [first, second], Echo(fail={"s1"}))
    events = []
    result = runtime.run("fetch then use", on_event=events.append)
    assert result.status == "done"
    assert {s.step_id for s in result.steps} == {"s1", "s2", "r1s1", "r1s2"}
    by_id = {s.step_id: s for s in result.steps}
    assert by_id["s1"].status == "failed" and by_id["s2"].status == "skipped"
    assert by_id["r1s2"].instruction == "finish <r1s1:another way>"
    # the replanner saw what failed; the new steps saw the progress
    replan_prompt = backend.requests[1].messages[-1].content
    assert "FAILED: fetch" in replan_prompt
    assert "FAILED: fetch" in next(i for i in echo.inputs if i.step_id == "r1s1").task
    assert [e.data.get("round") for e in events if e.type == "plan_ready"] == [None, 1]
    assert len(Store(tmp_path / "s.db").run(result.run_id).plans) == 2


def test_replanning_stops_after_max_replans(tmp_path):
    failing = plan_text(("s1", [], "llm", "fetch"))
    runtime, _, echo = make(tmp_path, [failing, failing], Echo(fail={"s1", "r1s1"}))
    result = runtime.run("fetch")
    assert result.status == "failed"
    assert [i.step_id for i in echo.inputs].count("r1s1") == 2  # tried, retried, then stop
    assert not any(s.step_id.startswith("r2") for s in result.steps)


class AdapterBackend(ScriptedBackend):
    """A scripted engine that loads adapters by name, as the local engines do."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.loaded = {}

    def load_adapter(self, name, path):
        self.loaded[name] = path


def test_a_planner_adapter_is_on_for_planning_only_and_drops_the_examples(tmp_path):
    backend = AdapterBackend([DIAMOND], responder=lambda r: "composed answer")
    python = Echo()
    python.name, python.writes_text, python.computes = "python", False, True
    runtime = Runtime(
        backend,
        store=tmp_path / "s.db",
        executors=[Echo(), python],
        planner_adapter=tmp_path / "adapter.gguf",
    )
    result = runtime.run("Do a and b, then join them.")
    assert result.status == "done"
    assert backend.loaded == {"planner": tmp_path / "adapter.gguf"}
    plan_request, *others = backend.requests
    assert plan_request.adapter == "planner"
    assert [m.role for m in plan_request.messages] == ["system", "user"]
    assert others and all(r.adapter is None for r in others)


@pytest.mark.parametrize("choice", ["auto", "none", None])
def test_no_shipped_adapter_for_a_scripted_model_means_the_few_shot_prompt(tmp_path, choice):
    backend = AdapterBackend([DIAMOND], responder=lambda r: "composed answer")
    python = Echo()
    python.name, python.writes_text, python.computes = "python", False, True
    runtime = Runtime(
        backend, store=tmp_path / "s.db", executors=[Echo(), python], planner_adapter=choice
    )
    runtime.run("Do a and b, then join them.")
    assert backend.loaded == {}
    assert backend.requests[0].adapter is None
    assert len(backend.requests[0].messages) > 2  # the worked examples are in the prompt


def test_docs_and_sql_join_the_default_executors_and_a_passed_store_stays_open(tmp_path):
    import sqlite3

    import pytest

    from stepgraph import Runtime, ScriptedBackend, Store
    from stepgraph.errors import ConfigError

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.md").write_text("Support replies within 4 hours.")
    sqlite3.connect(tmp_path / "d.db").execute("CREATE TABLE t (x)").connection.commit()
    store = Store(tmp_path / "s.db")
    with Runtime(
        ScriptedBackend(), store=store, docs=tmp_path / "notes", sql=tmp_path / "d.db"
    ) as runtime:
        assert set(runtime.executors) == {"llm", "calculator", "python", "docs", "sql"}
        assert set(runtime.planner.executors) == set(runtime.executors)
    assert store.runs() == []  # still open: the runtime did not open it, so it did not close it
    store.close()

    with pytest.raises(ConfigError, match="docs= and sql= add to the default executors"):
        Runtime(ScriptedBackend(), store=tmp_path / "s.db", executors=[], docs=tmp_path)


def test_a_planner_passed_in_is_not_changed(tmp_path):
    from stepgraph import Planner

    backend = ScriptedBackend([plan_text(("s1", [], "llm", "a"))], responder=lambda r: "x")
    mine = Planner(backend, executors={"llm": "my words for it"})
    runtime = Runtime(
        backend, store=tmp_path / "s.db", planner=mine, executors=[Echo()], direct=False
    )
    assert mine.executors == {"llm": "my words for it"}
    assert runtime.planner.executors == {"llm": "echoes"}
    assert runtime.run("a").status == "done"
