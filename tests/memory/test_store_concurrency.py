"""Eight processes writing one store at once: no "database is locked", no lost row, on
SQLite (one file) and on PostgreSQL (one schema)."""

from __future__ import annotations

import multiprocessing
import traceback

from stepgraph.memory import open_store

PROCESSES = 8
RUNS_EACH = 25


def _writer(target: str, worker: int, start, results) -> None:
    """Open the (possibly brand-new) store, wait for all, then write RUNS_EACH runs."""
    try:
        store = open_store(target)  # eight opens of a new store race through the migrations
        start.wait(timeout=120)
        conversation = store.new_conversation(f"worker {worker}")
        run_ids = []
        for n in range(RUNS_EACH):
            run_id = store.start_run(f"worker {worker} run {n}", conversation_id=conversation)
            store.add_message(conversation, "user", f"worker {worker} asks {n}", run_id=run_id)
            store.record_plan(run_id, {"steps": [{"id": "s1"}, {"id": "s2"}]})
            for step in ("s1", "s2"):
                store.record_step(run_id, step, status="running")
                store.record_event(run_id, "step_started", {"step": step})
                store.record_step(run_id, step, status="done", output=f"w{worker}r{n}{step}")
            store.record_verdict(run_id, None, "final", True, "ok")
            store.finish_run(run_id, status="done", answer=f"answer {worker}.{n}")
            run_ids.append(run_id)
        store.close()
        results.put((worker, run_ids, None))
    except BaseException:
        results.put((worker, [], traceback.format_exc()))


def test_eight_processes_write_one_store(store_target: str):
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=_writer, args=(store_target, n, start, results))
        for n in range(PROCESSES)
    ]
    for w in workers:
        w.start()
    reports = [results.get(timeout=300) for _ in workers]
    for w in workers:
        w.join(timeout=60)

    errors = [error for _, _, error in reports if error]
    assert errors == [], "\n".join(errors)
    assert all(w.exitcode == 0 for w in workers)
    written = {run_id for _, run_ids, _ in reports for run_id in run_ids}
    assert len(written) == PROCESSES * RUNS_EACH

    with open_store(store_target) as store:
        runs = store.runs(limit=10_000)
        assert {r.id for r in runs} == written
        assert all(r.status == "done" and r.step_count == 2 for r in runs)
        counts = {
            table: store.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("conversations", "messages", "plans", "steps", "verdicts", "events")
        }
        total = PROCESSES * RUNS_EACH
        assert counts == {
            "conversations": PROCESSES,
            "messages": total,
            "plans": total,
            "steps": 2 * total,
            "verdicts": total,
            "events": 2 * total,
        }
        for run in runs[:: RUNS_EACH // 5]:
            record = store.run(run.id)
            assert [e.seq for e in record.events] == [1, 2]
            assert [s.attempts for s in record.steps] == [1, 1]
        assert len(store.search("w3r7s2")) == 1
