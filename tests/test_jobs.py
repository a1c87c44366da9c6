"""The durable job store and the worker pool: unique deliveries, one active run per issue, lanes,
cancellation, recovery of jobs a killed server left in flight."""

from __future__ import annotations

import threading

import pytest

from bot.jobs import CONTROL_LANE, RUN_LANE, DuplicateDelivery, JobStore, NewJob, WorkerPool
from tests.fakes.github_app import wait_for


def run_job(number: int = 1, repo: str = "o/r", kind: str = "run") -> NewJob:
    return NewJob(
        kind=kind, repo=repo, number=number, request={"task": "t", "requester": "u"}, installation_id=5
    )


@pytest.fixture
def store(tmp_path):
    return JobStore(tmp_path / "jobs.sqlite3")


def test_delivery_ids_are_unique(store):
    job = store.record_delivery("d1", "issue_comment", run_job())
    assert job.kind == "run" and job.state == "queued" and job.trace_token
    with pytest.raises(DuplicateDelivery):
        store.record_delivery("d1", "issue_comment", run_job(number=2))
    store.record_delivery("d2", "issue_comment", None, decision="no command")
    with pytest.raises(DuplicateDelivery):
        store.record_delivery("d2", "issue_comment", None)
    assert len(store.jobs()) == 1 and store.delivery_count() == 2


def test_wal_mode(store):
    assert store._db().execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_second_run_on_an_issue_is_busy(store):
    first = store.record_delivery("d1", "issue_comment", run_job(1))
    second = store.record_delivery("d2", "issue_comment", run_job(1))
    other_issue = store.record_delivery("d3", "issue_comment", run_job(2))
    assert (first.kind, second.kind, other_issue.kind) == ("run", "busy", "run")
    assert second.lane == CONTROL_LANE


def accept(store: JobStore, job_id: int) -> None:
    """What the control worker does with a run it accepts: claim it, hand it to the run lane."""
    assert store.claim(CONTROL_LANE).id == job_id
    assert store.promote(job_id)


def test_one_active_run_per_issue_is_enforced(store):
    a = store.record_delivery("d1", "issue_comment", run_job(1))
    # A race past the intake check: two run jobs for the same issue.
    b = store.add_job(run_job(1))
    store._db().execute("UPDATE jobs SET kind = 'run' WHERE id = ?", (b.id,))
    accept(store, a.id)
    accept(store, b.id)
    assert store.claim(RUN_LANE).id == a.id and store.claim(RUN_LANE).id == b.id
    assert store.activate(a.id)
    assert not store.activate(b.id)
    store.finish(a.id, "done", "pr")
    assert store.activate(b.id)


def test_every_job_starts_in_the_control_lane_in_order(store):
    r1 = store.record_delivery("d1", "issue_comment", run_job(1))
    h = store.record_delivery("d2", "issue_comment", run_job(2, kind="help"))
    r2 = store.record_delivery("d3", "issue_comment", run_job(3))
    assert [store.claim(CONTROL_LANE).id for _ in range(3)] == [r1.id, h.id, r2.id]
    assert store.claim(CONTROL_LANE) is None and store.claim(RUN_LANE) is None
    assert store.promote(r2.id) and store.promote(r1.id)
    assert not store.promote(h.id + 100)
    claimed = store.claim(RUN_LANE)
    assert claimed.id == r1.id and claimed.state == "working" and claimed.attempts == 1
    assert store.claim(RUN_LANE).id == r2.id
    assert store.claim(RUN_LANE) is None


def test_cancel_queued_and_running(store):
    queued = store.record_delivery("d1", "issue_comment", run_job(1))
    assert store.cancel_queued(queued.id, "cancelled")
    assert store.get(queued.id).state == "cancelled"
    running = store.record_delivery("d2", "issue_comment", run_job(2))
    accept(store, running.id)
    assert store.cancel_queued(running.id, "cancelled")  # accepted but no run worker took it yet
    third = store.record_delivery("d3", "issue_comment", run_job(3))
    accept(store, third.id)
    store.claim(RUN_LANE)
    assert not store.cancel_queued(third.id, "cancelled")
    store.request_cancel(third.id)
    assert store.get(third.id).cancel_requested


def test_recover_resumes_then_reports(store):
    run = store.record_delivery("d1", "issue_comment", run_job(1))
    reply = store.record_delivery("d2", "issue_comment", run_job(2, kind="status"))
    done = store.record_delivery("d3", "issue_comment", run_job(3, kind="help"))
    accepting = store.record_delivery("d4", "issue_comment", run_job(4))
    accept(store, run.id)
    store.claim(RUN_LANE)
    store.activate(run.id)
    for _ in range(3):
        store.claim(CONTROL_LANE)  # reply, done, accepting
    store.finish(done.id, "done", "help")
    store.update_request(run.id, run_id="r-1", status_comment_id=77)

    recovered = {j.id: j for j in store.recover(max_attempts=2)}
    assert set(recovered) == {run.id, reply.id, accepting.id}
    resumed = recovered[run.id]
    assert (resumed.kind, resumed.lane, resumed.state, resumed.attempts) == ("run", RUN_LANE, "queued", 1)
    assert resumed.request["restarted"] and resumed.request["status_comment_id"] == 77
    assert (recovered[accepting.id].kind, recovered[accepting.id].lane) == ("run", CONTROL_LANE)
    assert recovered[reply.id].kind == "status"
    assert store.get(done.id).state == "done"

    # Killed again during the second attempt: no third try, a report instead.
    assert store.claim(RUN_LANE).id == run.id
    store.activate(run.id)
    (again,) = [j for j in store.recover(max_attempts=2) if j.id == run.id]
    assert (again.kind, again.lane, again.state) == ("interrupted", CONTROL_LANE, "queued")


def test_pool_runs_each_job_once_and_survives_a_failing_handler(store):
    seen: list[int] = []
    lock = threading.Lock()

    def handler(job, cancel):
        with lock:
            seen.append(job.id)
        if job.number % 7 == 0:
            raise RuntimeError("boom")
        store.finish(job.id, "done", "ok")

    pool = WorkerPool(store, handler, workers=4, control_workers=2, poll=0.05).start()
    jobs = [
        store.record_delivery(f"d{i}", "issue_comment", run_job(i, kind="run" if i % 2 else "help"))
        for i in range(60)
    ]
    pool.notify()
    wait_for(lambda: all(store.get(j.id).state in ("done", "failed") for j in jobs), timeout=30)
    pool.stop()
    assert sorted(seen) == sorted(j.id for j in jobs)
    failed = {j.id for j in store.jobs("failed")}
    assert failed == {j.id for j in jobs if j.number % 7 == 0}


def test_pool_cancel_reaches_the_handler(store):
    started = threading.Event()

    def handler(job, cancel):
        started.set()
        assert cancel.wait(10)
        store.finish(job.id, "cancelled", "cancelled")

    pool = WorkerPool(store, handler, workers=1, poll=0.05).start()
    job = store.record_delivery("d1", "issue_comment", run_job(1))
    pool.notify()
    assert started.wait(10)
    assert pool.cancel(job.id)
    wait_for(lambda: store.get(job.id).state == "cancelled", timeout=10)
    pool.stop()
    assert not pool.cancel(job.id)
