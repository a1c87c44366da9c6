"""The job store contract, run on every backend (SQLite file, SQLite :memory:, PostgreSQL): unique
deliveries, one active run per issue, lanes, cancellation, leases with heartbeats, schema versions;
and the worker pool on top of it."""

from __future__ import annotations

import threading

import pytest

from bot.jobs import (
    CONTROL_LANE,
    RUN_LANE,
    DuplicateDelivery,
    JobLane,
    JobState,
    NewJob,
    WorkerPool,
    open_store,
)
from tests.fakes.github_app import wait_for
from webhooks.kinds import busy_instead, requeue_policy

APP_REQUEUE = requeue_policy(max_attempts=2)  # the App's decision for a dead worker's job


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def run_job(number: int = 1, repo: str = "o/r", kind: str = "run") -> NewJob:
    return NewJob(
        kind=kind, repo=repo, number=number, request={"task": "t", "requester": "u"}, installation_id=5
    )


def make_store(kind: str, tmp_path, request, **kwargs):
    if kind == "postgres":
        from bot.jobs.postgres import PostgresJobStore

        return PostgresJobStore(request.getfixturevalue("postgres_url"), **kwargs)
    from bot.jobs.sqlite import SqliteJobStore

    return SqliteJobStore(":memory:" if kind == "memory" else tmp_path / "jobs.sqlite3", **kwargs)


@pytest.fixture(params=["sqlite", "memory", "postgres"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(backend, tmp_path, request, clock):
    s = make_store(backend, tmp_path, request, lease_seconds=10, clock=clock)
    yield s
    s.close()


def execute(store, sql: str, params: tuple = ()) -> None:
    """Raw SQL for tests that stage a state the public methods never produce."""
    with store._tx() as tx:
        tx.execute(sql, params)


def accept(store, job_id: int) -> None:
    """What the control worker does with a run it accepts: claim it, hand it to the run lane."""
    assert store.claim(CONTROL_LANE, "w").id == job_id
    assert store.promote(job_id)


def test_delivery_ids_are_unique(store):
    job = store.record_delivery("d1", "issue_comment", run_job())
    assert job.kind == "run" and job.state is JobState.QUEUED and job.state == "queued" and job.trace_token
    with pytest.raises(DuplicateDelivery):
        store.record_delivery("d1", "issue_comment", run_job(number=2))
    store.record_delivery("d2", "issue_comment", None, decision="no command")
    with pytest.raises(DuplicateDelivery):
        store.record_delivery("d2", "issue_comment", None)
    assert len(store.jobs()) == 1 and store.delivery_count() == 2
    assert store.get(job.id).request == {"task": "t", "requester": "u"}  # stored verbatim


def test_second_run_on_an_issue_is_busy(store):
    """The store says a run is active (facts); the App's `busy_instead` decides what is stored."""
    first = store.record_delivery("d1", "issue_comment", run_job(1), if_run_active=busy_instead)
    second = store.record_delivery("d2", "issue_comment", run_job(1), if_run_active=busy_instead)
    other_issue = store.record_delivery("d3", "issue_comment", run_job(2), if_run_active=busy_instead)
    help_ = store.record_delivery("d4", "issue_comment", run_job(1, kind="help"), if_run_active=busy_instead)
    assert (first.kind, second.kind, other_issue.kind, help_.kind) == ("run", "busy", "run", "help")
    assert second.lane == CONTROL_LANE and second.lane is JobLane.CONTROL
    # Without the App's decision the store keeps what it was given: storage decides nothing.
    assert store.record_delivery("d5", "issue_comment", run_job(1)).kind == "run"


def test_a_dead_workers_job_keeps_its_kind_unless_the_app_decides(store, clock):
    job = store.record_delivery("d1", "issue_comment", run_job(1))
    accept(store, job.id)
    store.claim(RUN_LANE, "dead")
    store.request_cancel(job.id)
    clock.now += 11
    (again,) = store.requeue_expired()
    assert (again.kind, again.lane, again.request["restarted"]) == ("run", RUN_LANE, True)


def test_one_active_run_per_issue_is_enforced_by_the_database(store):
    a = store.record_delivery("d1", "issue_comment", run_job(1))
    b = store.add_job(run_job(1))  # a race past the intake check: two run jobs for the same issue
    execute(store, "UPDATE jobs SET kind = 'run' WHERE id = ?", (b.id,))
    accept(store, a.id)
    accept(store, b.id)
    assert store.claim(RUN_LANE, "w").id == a.id and store.claim(RUN_LANE, "w").id == b.id
    assert store.activate(a.id)
    assert not store.activate(b.id)
    assert store.active_run("o/r", 1).id == a.id
    store.finish(a.id, "done", "pr")
    assert store.activate(b.id)


def test_every_job_starts_in_the_control_lane_in_order(store):
    r1 = store.record_delivery("d1", "issue_comment", run_job(1))
    h = store.record_delivery("d2", "issue_comment", run_job(2, kind="help"))
    r2 = store.record_delivery("d3", "issue_comment", run_job(3))
    assert [store.claim(CONTROL_LANE, "w").id for _ in range(3)] == [r1.id, h.id, r2.id]
    assert store.claim(CONTROL_LANE, "w") is None and store.claim(RUN_LANE, "w") is None
    assert store.queue_depth() == {CONTROL_LANE: 0, RUN_LANE: 0}
    assert store.promote(r2.id) and store.promote(r1.id)
    assert store.queue_depth() == {CONTROL_LANE: 0, RUN_LANE: 2}
    assert not store.promote(h.id + 100)
    claimed = store.claim(RUN_LANE, "w")
    assert claimed.id == r1.id and claimed.state is JobState.WORKING and claimed.attempts == 1
    assert claimed.lease_owner == "w"
    assert store.claim(RUN_LANE, "w").id == r2.id
    assert store.claim(RUN_LANE, "w") is None
    assert store.counts() == {"working": 3}


def test_cancel_queued_and_running(store):
    queued = store.record_delivery("d1", "issue_comment", run_job(1))
    assert store.cancel_queued(queued.id, "cancelled")
    assert store.get(queued.id).state is JobState.CANCELLED
    running = store.record_delivery("d2", "issue_comment", run_job(2))
    accept(store, running.id)
    assert store.cancel_queued(running.id, "cancelled")  # accepted but no run worker took it yet
    third = store.record_delivery("d3", "issue_comment", run_job(3))
    accept(store, third.id)
    store.claim(RUN_LANE, "holder")
    assert not store.cancel_queued(third.id, "cancelled")
    assert store.heartbeat("holder").cancel == set()
    store.request_cancel(third.id)  # through any replica: the holder learns it at its next heartbeat
    assert store.get(third.id).cancel_requested
    beat = store.heartbeat("holder")
    assert beat.held == {third.id} and beat.cancel == {third.id}
    assert store.heartbeat("someone-else").held == set()


def test_update_request_merges_fields(store):
    job = store.record_delivery("d1", "issue_comment", run_job(1))
    store.update_request(job.id, run_id="r-1")
    store.update_request(job.id, status_comment_id=77)
    assert store.get(job.id).request == {
        "task": "t",
        "requester": "u",
        "run_id": "r-1",
        "status_comment_id": 77,
    }
    assert store.by_trace_token(job.trace_token).id == job.id
    assert store.by_trace_token("nope") is None


def test_a_live_workers_job_is_never_taken(store, clock):
    job = store.record_delivery("d1", "issue_comment", run_job(1))
    accept(store, job.id)
    store.claim(RUN_LANE, "alive")
    store.activate(job.id)
    for _ in range(5):  # 25 s of heartbeats every 5 s, with a 10 s lease
        clock.now += 5
        assert store.heartbeat("alive").held == {job.id}
        assert store.requeue_expired(APP_REQUEUE) == [] and store.recover(APP_REQUEUE) == []
    assert store.get(job.id).state is JobState.RUNNING


def test_expired_leases_resume_then_report(store, clock):
    run = store.record_delivery("d1", "issue_comment", run_job(1))
    reply = store.record_delivery("d2", "issue_comment", run_job(2, kind="status"))
    done = store.record_delivery("d3", "issue_comment", run_job(3, kind="help"))
    accepting = store.record_delivery("d4", "issue_comment", run_job(4))
    accept(store, run.id)
    store.claim(RUN_LANE, "dead")
    store.activate(run.id)
    for _ in range(3):
        store.claim(CONTROL_LANE, "dead")  # reply, done, accepting
    store.finish(done.id, "done", "help")
    store.update_request(run.id, run_id="r-1", status_comment_id=77)
    clock.now += 9
    assert store.requeue_expired(APP_REQUEUE) == []  # not expired yet
    clock.now += 2

    recovered = {j.id: j for j in store.requeue_expired(APP_REQUEUE)}
    assert set(recovered) == {run.id, reply.id, accepting.id}
    resumed = recovered[run.id]
    assert (resumed.kind, resumed.lane, resumed.state, resumed.attempts) == ("run", RUN_LANE, "queued", 1)
    assert resumed.lease_owner is None
    assert resumed.request["restarted"] and resumed.request["status_comment_id"] == 77
    assert (recovered[accepting.id].kind, recovered[accepting.id].lane) == ("run", CONTROL_LANE)
    assert recovered[reply.id].kind == "status"
    assert store.get(done.id).state is JobState.DONE

    # Its second worker dies too: no third try, a report instead.
    assert store.claim(RUN_LANE, "second").id == run.id
    store.activate(run.id)
    clock.now += 11
    (again,) = [j for j in store.recover(APP_REQUEUE) if j.id == run.id]
    assert (again.kind, again.lane, again.state) == ("interrupted", CONTROL_LANE, "queued")


def test_cancelled_run_of_a_dead_worker_is_reported_not_resumed(store, clock):
    job = store.record_delivery("d1", "issue_comment", run_job(1))
    accept(store, job.id)
    store.claim(RUN_LANE, "dead")
    store.request_cancel(job.id)
    clock.now += 11
    (again,) = store.requeue_expired(APP_REQUEUE)
    assert again.kind == "interrupted"


def test_concurrent_claims_take_each_job_once(store):
    jobs = [store.record_delivery(f"d{i}", "issue_comment", run_job(i, kind="help")) for i in range(40)]
    taken: list[int] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while (job := store.claim(CONTROL_LANE, name)) is not None:
            with lock:
                taken.append(job.id)
            store.finish(job.id, "done", "help")

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(taken) == [j.id for j in jobs]
    assert store.counts() == {"done": 40}


def test_schema_is_versioned_and_reopening_keeps_jobs(backend, tmp_path, request):
    if backend == "memory":
        pytest.skip("a :memory: database ends with its store")
    first = make_store(backend, tmp_path, request)
    job = first.record_delivery("d1", "issue_comment", run_job(1))
    first.close()
    second = make_store(backend, tmp_path, request)
    try:
        assert second.schema_version == 2
        assert second.get(job.id).delivery_id == "d1"
        (row,) = second._rows("SELECT MAX(version) AS v FROM schema_version")
        assert row["v"] == 2
    finally:
        second.close()


def test_ping_and_close(store):
    store.ping()
    store.close()


def test_finish_refuses_a_state_that_is_not_final(store):
    job = store.record_delivery("d1", "issue_comment", run_job(1))
    with pytest.raises(AssertionError):
        store.finish(job.id, "running")
    with pytest.raises(ValueError):
        store.finish(job.id, "exploded")


def test_pool_runs_each_job_once_and_survives_a_failing_handler(backend, tmp_path, request):
    store = make_store(backend, tmp_path, request)
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
    store.close()
    assert sorted(seen) == sorted(j.id for j in jobs)


def test_pool_cancel_reaches_the_handler_in_process_and_through_the_database(backend, tmp_path, request):
    store = make_store(backend, tmp_path, request, lease_seconds=1.2)
    started = threading.Event()

    def handler(job, cancel):
        started.set()
        assert cancel.wait(10)
        store.finish(job.id, "cancelled", "cancelled")

    pool = WorkerPool(store, handler, workers=0, control_workers=1, poll=0.05).start()
    try:
        job = store.record_delivery("d1", "issue_comment", run_job(1))
        assert started.wait(10)
        assert pool.cancel(job.id)
        wait_for(lambda: store.get(job.id).state == "cancelled", timeout=10)
        assert not pool.cancel(job.id)

        started.clear()
        other = store.record_delivery("d2", "issue_comment", run_job(2))
        assert started.wait(10)
        store.request_cancel(other.id)  # as another replica would: only the database is shared
        wait_for(lambda: store.get(other.id).state == "cancelled", timeout=10, what="the heartbeat's cancel")
    finally:
        pool.stop()
        store.close()


def test_pool_with_no_run_workers_leaves_runs_queued(tmp_path):
    store = open_store(tmp_path / "j.sqlite3")
    seen: list[int] = []
    pool = WorkerPool(store, lambda job, cancel: seen.append(job.id), workers=0, control_workers=0, poll=0.05)
    assert [t.name for t in pool._threads] == ["rlm-heartbeat"]
    store.close()


def test_a_worker_that_lost_its_lease_stops_and_leaves_the_job_to_its_new_owner(
    backend, tmp_path, request, clock
):
    store = make_store(backend, tmp_path, request, lease_seconds=10, clock=clock)
    started, stopped = threading.Event(), threading.Event()

    def handler(job, cancel):
        started.set()
        if cancel.wait(10):
            stopped.set()

    pool = WorkerPool(store, handler, workers=0, control_workers=1, poll=0.05, heartbeat=3600).start()
    try:
        job = store.record_delivery("d1", "issue_comment", run_job(1, kind="status"))
        assert started.wait(10)
        clock.now += 11  # this worker stalled past its lease: another took the job over
        (again,) = store.requeue_expired(APP_REQUEUE)
        assert store.claim(CONTROL_LANE, "other").id == again.id == job.id
        pool.beat()
        assert stopped.wait(10)
        wait_for(lambda: not pool.running(), timeout=10)
        current = store.get(job.id)
        assert (current.state, current.lease_owner) == ("working", "other")  # not failed by the stale worker
    finally:
        pool.stop()
        store.close()


def test_a_worker_that_lost_its_lease_cannot_end_the_job_its_new_owner_runs(store, clock):
    job = store.record_delivery("d1", "issue_comment", run_job(1))
    assert store.claim(CONTROL_LANE, "stale").lease_owner == "stale"
    clock.now += 11  # "stale" stalled past its lease; "fresh" took the job over
    store.requeue_expired(APP_REQUEUE)
    assert store.claim(CONTROL_LANE, "fresh").id == job.id
    assert store.finish(job.id, "cancelled", "cancelled", "the stale worker's ending", owner="stale") is False
    current = store.get(job.id)
    assert (current.state, current.lease_owner, current.message) == ("working", "fresh", None)
    assert store.finish(job.id, "done", "pr", "opened", owner="fresh") is True
    assert (store.get(job.id).state, store.get(job.id).outcome) == ("done", "pr")


def test_a_database_from_before_versions_is_migrated(tmp_path):
    import sqlite3

    from bot.jobs.sqlite import MIGRATIONS, SqliteJobStore

    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    for statement in MIGRATIONS[0]:  # the first release's schema, with no schema_version table
        old.execute(statement)
    old.execute(
        "INSERT INTO jobs (delivery_id, kind, lane, repo, number, request, state, attempts, created, updated) "
        "VALUES ('d1', 'run', 'run', 'o/r', 1, '{}', 'running', 1, 0, 0)"
    )
    old.commit()
    old.close()
    store = SqliteJobStore(path)
    try:
        assert store.schema_version == 2
        (resumed,) = store.requeue_expired(APP_REQUEUE)  # left running by a server of that release: no lease
        assert (resumed.delivery_id, resumed.state, resumed.kind) == ("d1", "queued", "run")
    finally:
        store.close()


def test_leases_given_up_at_shutdown_are_taken_over_at_once(store):
    job = store.record_delivery("d1", "issue_comment", run_job(1))
    accept(store, job.id)
    store.claim(RUN_LANE, "leaving")
    store.activate(job.id)
    assert store.requeue_expired(APP_REQUEUE) == []
    assert store.heartbeat("leaving", lease=-1).held == {job.id}  # what `rlm worker` does after its drain
    (resumed,) = store.requeue_expired(APP_REQUEUE)
    assert (resumed.id, resumed.state, resumed.kind) == (job.id, "queued", "run")
