"""Submitted runs and the workers' claims on them, on both stores: what `stepgraph worker`
builds on. A claim takes a run for one worker for a lease; a lapsed lease lets another
worker take it; two workers claiming at once never take the same run."""

from __future__ import annotations

import threading
import time

from stepgraph.memory import MemoryStore, open_store


def submit(store: MemoryStore, count: int) -> list[str]:
    return [store.submit_run(f"Task number {i}") for i in range(count)]


def test_a_submitted_run_waits_for_a_worker(store: MemoryStore):
    run_id = store.submit_run("Sum the first ten primes", model="m")
    run = store.run(run_id)
    assert (run.status, run.claimed_by, run.claims) == ("submitted", None, 0)
    assert [r.id for r in store.runs(status="submitted")] == [run_id]


def test_claims_take_the_oldest_runs_each_once(store: MemoryStore):
    ids = submit(store, 5)
    first = store.claim_runs("w1", 3, lease_s=60, model="qwen", planner="few-shot")
    second = store.claim_runs("w2", 3, lease_s=60)
    assert first == ids[:3]
    assert second == ids[3:]
    assert store.claim_runs("w3", 3, lease_s=60) == []
    run = store.run(ids[0])
    assert (run.status, run.claimed_by, run.claims) == ("running", "w1", 1)
    assert (run.model, run.planner) == ("qwen", "few-shot")  # filled where left empty
    assert store.run(ids[4]).claimed_by == "w2"


def test_a_run_started_here_or_finished_is_never_claimed(store: MemoryStore):
    store.start_run("Run in this process")  # `stepgraph run`: no worker's business
    (run_id,) = submit(store, 1)
    assert store.claim_runs("w1", 5, lease_s=0.01) == [run_id]
    store.finish_run(run_id, status="done", answer="42")
    time.sleep(0.05)  # its lease has lapsed, but it is finished
    assert store.claim_runs("w2", 5, lease_s=60) == []


def test_a_lapsed_lease_lets_another_worker_take_the_run(store: MemoryStore):
    (run_id,) = submit(store, 1)
    assert store.claim_runs("w1", 1, lease_s=0.2) == [run_id]
    assert store.claim_runs("w2", 1, lease_s=60) == []  # still w1's
    assert store.renew_claims("w1", [run_id], lease_s=0.2) == [run_id]
    time.sleep(0.3)
    assert store.claim_runs("w2", 1, lease_s=60) == [run_id]
    run = store.run(run_id)
    assert (run.status, run.claimed_by, run.claims) == ("running", "w2", 2)
    # the first worker learns it no longer holds the run when it tries to renew
    assert store.renew_claims("w1", [run_id], lease_s=60) == []
    assert store.renew_claims("w2", [run_id], lease_s=60) == [run_id]


def test_a_renewed_lease_keeps_the_run(store: MemoryStore):
    (run_id,) = submit(store, 1)
    store.claim_runs("w1", 1, lease_s=0.3)
    for _ in range(3):
        time.sleep(0.15)
        assert store.renew_claims("w1", [run_id], lease_s=0.3) == [run_id]
        assert store.claim_runs("w2", 1, lease_s=60) == []


def test_a_released_run_is_claimed_again_at_once(store: MemoryStore):
    ids = submit(store, 2)
    assert store.claim_runs("w1", 2, lease_s=60) == ids
    assert store.release_runs("w2", ids) == []  # not w2's to release
    assert store.release_runs("w1", ids[:1]) == ids[:1]
    assert store.claim_runs("w2", 2, lease_s=60) == ids[:1]
    assert store.run(ids[0]).claims == 2


def test_a_run_that_keeps_losing_its_worker_is_given_up(store: MemoryStore):
    (run_id,) = submit(store, 1)
    for worker in ("w1", "w2"):
        assert store.claim_runs(worker, 1, lease_s=0.01, max_claims=2) == [run_id]
        time.sleep(0.05)
    assert store.claim_runs("w3", 1, lease_s=60, max_claims=2) == []
    run = store.run(run_id)
    assert run.status == "failed"
    assert "given up after 2 claims" in run.error
    assert run.finished is not None


def test_workers_claiming_at_once_never_take_the_same_run(store_target: str):
    with open_store(store_target) as store:
        ids = submit(store, 60)
    taken: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def work(worker: str) -> None:
        try:
            with open_store(store_target) as own:  # a worker has its own connection
                mine = taken.setdefault(worker, [])
                while claimed := own.claim_runs(worker, 2, lease_s=60):
                    mine.extend(claimed)
        except BaseException as e:  # the test fails on it below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    everything = [run_id for mine in taken.values() for run_id in mine]
    assert sorted(everything) == sorted(ids)  # each run once, none left
    with open_store(store_target) as store:
        owners = {run.id: run.claimed_by for run in store.runs(limit=100)}
    assert all(owners[run_id] == worker for worker, mine in taken.items() for run_id in mine)
