"""Recording runs and reading them back: everything replay needs comes back from run()."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from memory_helpers import PLAN, record_full_run

from stepgraph.errors import StoreError
from stepgraph.memory import RunRecord, Store, new_id


def test_run_ids_are_short_and_sort_by_time():
    ids = [new_id("r") for _ in range(50)]
    assert all(i.startswith("r") and len(i) == 21 for i in ids)
    assert len(set(ids)) == 50
    earlier, later = new_id("r"), None
    while later is None or later[:13] == earlier[:13]:
        later = new_id("r")
    assert earlier < later


def test_a_recorded_run_comes_back_whole(store: Store):
    conversation = store.new_conversation("primes")
    run_id = record_full_run(store, conversation_id=conversation)
    run = store.run(run_id)

    assert isinstance(run, RunRecord)
    assert run.status == "done"
    assert run.answer == "The sum is 129, which is odd."
    assert run.conversation_id == conversation
    assert (run.model, run.planner) == ("qwen2.5-coder-0.5b", "few-shot")
    assert run.meta == {"budget": {"steps": 10}}
    assert run.plan == PLAN
    assert [p.version for p in run.plans] == [1]
    assert [s.step_id for s in run.steps] == ["s1", "s2", "s3"]
    s1 = run.step("s1")
    assert s1.status == "done"
    assert s1.input == {"text": "in s1"}
    assert s1.output == "[2, 3, 5, 7, 11, 13, 17, 19, 23, 29]"
    assert s1.data == {"value": s1.output}
    assert s1.attempts == 1
    # Taken from the plan, since the runtime did not repeat them.
    assert (s1.executor, s1.instruction, s1.plan_version) == (
        "python",
        "List the first ten primes",
        1,
    )
    assert s1.args == {"code": "print(primes(10))"}
    assert run.step("s3").depends_on == ["s2"]
    assert [(v.step_id, v.check, v.passed) for v in run.verdicts] == [
        ("s1", "recompute", True),
        ("s2", "recompute", True),
        ("s3", "recompute", True),
        (None, "answers_question", True),
    ]
    assert [e.seq for e in run.events] == [1, 2, 3, 4]
    assert run.events[1].payload == {"step": "s1"}
    # Totals default to the sums over the steps.
    assert (run.prompt_tokens, run.completion_tokens) == (30, 15)
    assert run.seconds is not None and run.seconds >= 0
    assert run.step_count == 3


def test_a_run_record_holds_what_replay_needs(store: Store):
    run = store.run(record_full_run(store))
    # Rebuild from the JSON alone, the way replay reads a run: no store, no model.
    replayed = RunRecord.model_validate_json(run.model_dump_json())
    planned = [s["id"] for s in replayed.plan["steps"]]
    outputs = {s.step_id: (s.status, s.input, s.output) for s in replayed.steps}
    assert set(outputs) == set(planned)
    assert all(status == "done" and out is not None for status, _, out in outputs.values())
    assert replayed.answer == run.answer
    assert replayed == run


def test_steps_come_back_in_plan_order_whatever_order_they_finished(store: Store):
    run_id = store.start_run("x")
    store.record_plan(run_id, PLAN)
    for step_id in ("s3", "s1", "s2"):
        store.record_step(run_id, step_id, status="done", output=step_id)
    store.record_step(run_id, "extra", status="done")  # not in the plan: goes last
    assert [s.step_id for s in store.run(run_id).steps] == ["s1", "s2", "s3", "extra"]


def test_record_step_upserts_and_counts_attempts(store: Store):
    run_id = store.start_run("x")
    store.record_step(run_id, "s1", status="running", instruction="first try")
    store.record_step(run_id, "s1", status="failed", error="wrong sum")
    store.record_step(run_id, "s1", status="running")
    store.record_step(run_id, "s1", status="done", output="42")
    (step,) = store.run(run_id).steps
    assert step.attempts == 2
    assert (step.instruction, step.status, step.output) == ("first try", "done", "42")
    assert step.error == "wrong sum"  # kept until overwritten
    store.record_step(run_id, "s1", attempts=7, error=None)
    assert store.run(run_id).steps[0].attempts == 7
    assert store.run(run_id).steps[0].error is None


def test_record_step_times_accept_datetimes_and_epoch_seconds(store: Store):
    run_id = store.start_run("x")
    start = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
    store.record_step(run_id, "s1", started=start, finished=start.timestamp() + 2.5)
    step = store.run(run_id).steps[0]
    assert step.started == "2026-11-24T12:00:00.000+00:00"
    assert step.finished == "2026-11-24T12:00:02.500+00:00"


def test_record_step_rejects_unknown_fields(store: Store):
    run_id = store.start_run("x")
    with pytest.raises(TypeError, match="outptu"):
        store.record_step(run_id, "s1", outptu="typo")


def test_replanning_keeps_every_plan_version(store: Store):
    run_id = store.start_run("x")
    assert store.record_plan(run_id, PLAN) == 1
    replanned = {**PLAN, "steps": PLAN["steps"][:2]}
    assert store.record_plan(run_id, replanned) == 2
    assert store.record_plan(run_id, replanned, version=5) == 5
    with pytest.raises(StoreError, match="already recorded"):
        store.record_plan(run_id, PLAN, version=2)
    store.record_step(run_id, "s1", status="done")
    run = store.run(run_id)
    assert [p.version for p in run.plans] == [1, 2, 5]
    assert run.plan == replanned
    assert run.steps[0].plan_version == 5


def test_events_are_numbered_per_run(store: Store):
    a, b = store.start_run("a"), store.start_run("b")
    assert [store.record_event(a, "tick", {"n": n}) for n in range(3)] == [1, 2, 3]
    assert store.record_event(b, "tick") == 1
    assert [e.payload for e in store.run(a).events] == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_verdicts_keep_no_verdict_apart_from_failed(store: Store):
    run_id = store.start_run("x")
    store.record_verdict(run_id, "s1", "word_count", False, "12 words, asked for 10")
    store.record_verdict(run_id, None, "llm_judge", None, "judge gave no answer")
    verdicts = store.run(run_id).verdicts
    assert [(v.step_id, v.passed) for v in verdicts] == [("s1", False), (None, None)]


def test_finish_run_takes_explicit_totals_and_merges_meta(store: Store):
    run_id = store.start_run("x", meta={"a": 1})
    store.record_step(run_id, "s1", prompt_tokens=5, completion_tokens=5)
    store.finish_run(
        run_id,
        status="budget_exceeded",
        error="token budget of 100 spent",
        seconds=12.5,
        prompt_tokens=90,
        completion_tokens=20,
        meta={"b": 2},
    )
    run = store.run(run_id)
    assert (run.status, run.error, run.answer) == (
        "budget_exceeded",
        "token budget of 100 spent",
        None,
    )
    assert (run.seconds, run.prompt_tokens, run.completion_tokens) == (12.5, 90, 20)
    assert run.meta == {"a": 1, "b": 2}
    assert run.finished is not None
    with pytest.raises(TypeError, match="tokens_total"):
        store.finish_run(run_id, status="done", tokens_total=3)


def test_unknown_ids_are_store_errors_that_say_what_to_do(store: Store):
    with pytest.raises(StoreError, match="no run r404; `stepgraph runs list` shows the ids"):
        store.run("r404")
    for write in (
        lambda: store.record_step("r404", "s1", status="done"),
        lambda: store.record_event("r404", "tick", {}),
        lambda: store.record_plan("r404", PLAN),
        lambda: store.record_verdict("r404", None, "c", True, ""),
        lambda: store.finish_run("r404", status="done"),
    ):
        with pytest.raises(StoreError, match="no run r404"):
            write()
    with pytest.raises(StoreError, match="no conversation c404"):
        store.add_message("c404", "user", "hi")
    with pytest.raises(StoreError, match="no conversation c404"):
        store.start_run("x", conversation_id="c404")
    with pytest.raises(StoreError, match="no conversation c404"):
        store.messages("c404")


def test_run_ids_can_be_given_and_looked_up_by_unique_prefix(store: Store):
    store.start_run("one", run_id="rabc1")
    store.start_run("two", run_id="rabc2")
    with pytest.raises(StoreError, match="already recorded"):
        store.start_run("again", run_id="rabc1")
    assert store.run("rabc2").instruction == "two"
    assert store.resolve_run_id("rabc1") == "rabc1"
    with pytest.raises(StoreError, match="ambiguous.*rabc1, rabc2"):
        store.run("rab")
    generated = store.start_run("three")
    assert store.run(generated[:10]).id == generated
    with pytest.raises(StoreError, match="no run"):
        store.run("")


def test_runs_lists_newest_first_and_filters_by_status(store: Store):
    ids = [store.start_run(f"run {n}") for n in range(5)]
    store.finish_run(ids[1], status="done", answer="ok")
    store.finish_run(ids[3], status="failed", error="boom")
    assert [r.id for r in store.runs()] == ids[::-1]
    assert [r.id for r in store.runs(limit=2)] == ids[:2:-1]
    assert [r.id for r in store.runs(status="failed")] == [ids[3]]
    assert [r.id for r in store.runs(status="running")] == [ids[4], ids[2], ids[0]]


def test_conversations_list_their_messages(store: Store):
    first = store.new_conversation("first")
    second = store.new_conversation()
    store.add_message(first, "user", "hello")
    run_id = store.start_run("answer hello", conversation_id=first)
    message_id = store.add_message(first, "assistant", "hi there", run_id=run_id, tokens=3)
    listed = store.conversations()
    assert [(c.id, c.title, c.message_count) for c in listed] == [
        (first, "first", 2),
        (second, None, 0),
    ]
    messages = store.messages(first)
    assert [(m.role, m.content, m.run_id) for m in messages] == [
        ("user", "hello", None),
        ("assistant", "hi there", run_id),
    ]
    assert messages[-1].id == message_id
    assert messages[0].tokens == 2  # estimated: len/4, rounded up
    assert messages[1].tokens == 3  # given


def test_one_store_shared_by_threads(store: Store):
    """The runtime records parallel steps from several threads through one Store."""
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                run_id = store.start_run(f"thread {n} run {i}")
                for step in ("s1", "s2"):
                    store.record_step(run_id, step, status="running")
                    store.record_event(run_id, "step", {"step": step})
                    store.record_step(run_id, step, status="done", output=f"{n}.{i}.{step}")
                store.finish_run(run_id, status="done", answer=f"{n}.{i}")
        except BaseException as e:  # surfaced in the main thread below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    runs = store.runs(limit=1000)
    assert len(runs) == 80
    assert all(r.status == "done" and r.step_count == 2 for r in runs)
    assert all([e.seq for e in store.run(r.id).events] == [1, 2] for r in runs)


def test_conversations_active_in_the_same_millisecond_keep_their_order(store: Store, monkeypatch):
    """Ties on the clock (milliseconds) must not order conversations at random."""
    import stepgraph.memory.base as module

    monkeypatch.setattr(module, "_now", lambda: "2026-11-25T12:00:00.000+00:00")
    first = store.new_conversation("first")
    second = store.new_conversation("second")
    third = store.new_conversation("third")
    store.add_message(first, "user", "hello")
    assert [c.id for c in store.conversations()] == [first, third, second]


def test_a_transaction_keeps_all_its_writes_or_none(store: Store):
    run_id = store.start_run("t")
    store.record_plan(run_id, PLAN)
    with store.transaction():
        store.record_verdict(run_id, "s1", "non_empty", True)
        store.record_step(run_id, "s1", status="done", output="4")
    assert store.run(run_id).steps[0].output == "4"
    with pytest.raises(RuntimeError), store.transaction():
        store.record_verdict(run_id, "s2", "non_empty", False)
        store.record_step(run_id, "s2", status="failed")
        raise RuntimeError("crash between writes")
    record = store.run(run_id)
    assert [s.step_id for s in record.steps] == ["s1"]
    assert [v.step_id for v in record.verdicts] == ["s1"]


def test_a_failed_write_caught_inside_a_transaction_leaves_the_others(store: Store):
    run_id = store.start_run("t")
    store.record_plan(run_id, PLAN)
    with store.transaction():
        store.record_step(run_id, "s1", status="done")
        with pytest.raises(StoreError, match="no run"):
            store.record_step("r-missing", "s1", status="done")
        store.record_verdict(run_id, "s1", "non_empty", True)
    record = store.run(run_id)
    assert [s.status for s in record.steps] == ["done"]
    assert len(record.verdicts) == 1


def test_a_runs_turn_joins_its_conversation_and_only_its_own(store: Store):
    conversation = store.new_conversation()
    asked = store.start_run("How much is 2 + 2?", conversation_id=conversation)
    alone = store.start_run("no conversation")
    store.record_turn(asked, "4")
    store.record_turn(alone, "nothing to join")
    messages = store.messages(conversation)
    assert [(m.role, m.content, m.run_id) for m in messages] == [
        ("user", "How much is 2 + 2?", asked),
        ("assistant", "4", asked),
    ]
    with pytest.raises(StoreError, match="no run"):
        store.record_turn("r-missing", "x")
