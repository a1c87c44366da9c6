"""Durable jobs: a SQLite store (WAL) and a worker pool inside the server process.

- Every delivery id is stored once (a primary key): a redelivery or replay never makes a second job.
- A job is `queued` → `working` (a worker claimed it) → `running` (it holds its issue's one active
  run slot, enforced by a unique partial index) → `done` / `failed` / `cancelled`.
- Two lanes. Every job starts in the quick `control` lane (help, status, cancel, reports, and the
  permission check + acknowledgement of a run), so `/rlm cancel` and the 👀 are immediate even when
  every run worker is busy; an accepted run is then `promote`d to the `run` lane.
- On start, `recover` finds jobs a killed server left `working`/`running`: each is queued again
  (to be resumed) while it has attempts left, else turned into a report on its issue.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RUN_LANE = "run"
CONTROL_LANE = "control"
FINAL_STATES = ("done", "failed", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    received REAL NOT NULL,
    decision TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    lane TEXT NOT NULL,
    repo TEXT NOT NULL,
    number INTEGER NOT NULL,
    installation_id INTEGER,
    request TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    outcome TEXT,
    message TEXT,
    trace_token TEXT UNIQUE,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS one_active_run ON jobs(repo, number) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(lane, state, id);
"""


class DuplicateDelivery(Exception):
    """This delivery id was already received."""


@dataclass
class Job:
    id: int
    delivery_id: str
    kind: str
    lane: str
    repo: str
    number: int
    installation_id: int | None
    request: dict
    state: str
    attempts: int
    cancel_requested: bool
    outcome: str | None
    message: str | None
    trace_token: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        return cls(
            id=row["id"], delivery_id=row["delivery_id"], kind=row["kind"], lane=row["lane"], repo=row["repo"],
            number=row["number"], installation_id=row["installation_id"], request=json.loads(row["request"]),
            state=row["state"], attempts=row["attempts"], cancel_requested=bool(row["cancel_requested"]),
            outcome=row["outcome"], message=row["message"], trace_token=row["trace_token"],
        )  # fmt: skip


@dataclass
class NewJob:
    kind: str
    repo: str
    number: int
    request: dict
    installation_id: int | None = None

    @property
    def lane(self) -> str:
        return CONTROL_LANE  # every job starts there; an accepted run is then `promote`d


class JobStore:
    """Thread-safe: one SQLite connection per thread, short transactions, WAL for concurrent readers."""

    def __init__(self, path: str | Path, checkpoint_every: float = 5.0):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._db().executescript(_SCHEMA)
        # SQLite checkpoints the WAL inside whichever commit crosses the threshold, stalling that
        # writer (a webhook answer) on disk I/O; a background thread checkpoints instead.
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, args=(checkpoint_every,),
                                              name="rlm-jobs-checkpoint", daemon=True)  # fmt: skip
        self._checkpointer.start()

    def _checkpoint_loop(self, every: float) -> None:
        while True:
            time.sleep(every)
            try:
                self._db().execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as e:  # busy or closed: the next round tries again
                log.debug("WAL checkpoint skipped: %s", e)

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("PRAGMA wal_autocheckpoint=0")
            self._local.db = db
        return db

    class _Tx:
        """BEGIN IMMEDIATE ... COMMIT, serialised in-process by a lock: threads queue on the lock
        (woken at once) instead of in SQLite's busy handler (which sleeps up to 100 ms a try)."""

        def __init__(self, db: sqlite3.Connection, lock: threading.Lock):
            self.db, self.lock = db, lock

        def __enter__(self) -> sqlite3.Connection:
            self.lock.acquire()
            try:
                self.db.execute("BEGIN IMMEDIATE")
            except BaseException:
                self.lock.release()
                raise
            return self.db

        def __exit__(self, exc_type, exc, tb) -> None:
            try:
                self.db.execute("ROLLBACK" if exc_type else "COMMIT")
            finally:
                self.lock.release()

    def _tx(self) -> JobStore._Tx:
        return JobStore._Tx(self._db(), self._write_lock)

    # ------------------------------------------------------------------ intake

    def record_delivery(self, delivery_id: str, event: str, job: NewJob | None = None,
                        decision: str = "ignored") -> Job | None:  # fmt: skip
        """Store the delivery (and its job) atomically. Raises DuplicateDelivery on a replay."""
        now = time.time()
        try:
            with self._tx() as db:
                db.execute("INSERT INTO deliveries (id, event, received, decision) VALUES (?, ?, ?, ?)",
                           (delivery_id, event, now, "queued" if job else decision))  # fmt: skip
                if job is None:
                    return None
                kind = job.kind
                if (
                    kind == "run"
                    and db.execute(
                        "SELECT 1 FROM jobs WHERE repo = ? AND number = ? AND kind = 'run' "
                        "AND state IN ('queued', 'working', 'running') LIMIT 1",
                        (job.repo, job.number),
                    ).fetchone()
                ):
                    kind = "busy"  # one active run per issue: answer at once instead of queueing
                cur = db.execute(
                    "INSERT INTO jobs (delivery_id, kind, lane, repo, number, installation_id, request, "
                    "trace_token, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (delivery_id, kind, job.lane, job.repo, job.number, job.installation_id,
                     json.dumps(job.request), secrets.token_urlsafe(24), now, now),
                )  # fmt: skip
                job_id = cur.lastrowid
        except sqlite3.IntegrityError:
            raise DuplicateDelivery(delivery_id) from None
        return self.get(job_id)

    def add_job(self, job: NewJob, delivery_id: str | None = None) -> Job:
        """A job that no delivery brought (e.g. a report of an interrupted run)."""
        created = self.record_delivery(delivery_id or f"internal-{secrets.token_hex(8)}", "internal", job)
        assert created is not None
        return created

    # ------------------------------------------------------------------ lifecycle

    def claim(self, lane: str) -> Job | None:
        with self._tx() as db:
            row = db.execute("SELECT id FROM jobs WHERE lane = ? AND state = 'queued' ORDER BY id LIMIT 1",
                             (lane,)).fetchone()  # fmt: skip
            if row is None:
                return None
            db.execute("UPDATE jobs SET state = 'working', attempts = attempts + 1, updated = ? WHERE id = ?",
                       (time.time(), row["id"]))  # fmt: skip
        return self.get(row["id"])

    def promote(self, job_id: int) -> bool:
        """An accepted run (permission checked, acknowledged) moves to the run lane, attempts reset."""
        with self._tx() as db:
            cur = db.execute("UPDATE jobs SET lane = ?, state = 'queued', attempts = 0, updated = ? "
                             "WHERE id = ? AND state = 'working'", (RUN_LANE, time.time(), job_id))  # fmt: skip
            return cur.rowcount == 1

    def activate(self, job_id: int) -> bool:
        """Take the issue's one active-run slot; False when another run holds it."""
        try:
            with self._tx() as db:
                db.execute(
                    "UPDATE jobs SET state = 'running', updated = ? WHERE id = ?", (time.time(), job_id)
                )
        except sqlite3.IntegrityError:
            return False
        return True

    def finish(self, job_id: int, state: str, outcome: str | None = None, message: str | None = None) -> None:
        assert state in FINAL_STATES
        with self._tx() as db:
            db.execute("UPDATE jobs SET state = ?, outcome = ?, message = ?, updated = ? WHERE id = ?",
                       (state, outcome, message, time.time(), job_id))  # fmt: skip

    def update_request(self, job_id: int, **fields: Any) -> None:
        with self._tx() as db:
            row = db.execute("SELECT request FROM jobs WHERE id = ?", (job_id,)).fetchone()
            data = json.loads(row["request"]) if row else {}
            data.update(fields)
            db.execute(
                "UPDATE jobs SET request = ?, updated = ? WHERE id = ?",
                (json.dumps(data), time.time(), job_id),
            )

    def request_cancel(self, job_id: int) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET cancel_requested = 1, updated = ? WHERE id = ?", (time.time(), job_id)
            )

    def cancel_queued(self, job_id: int, message: str) -> bool:
        """Cancel a run no worker has picked up yet; False when it already started."""
        with self._tx() as db:
            cur = db.execute("UPDATE jobs SET state = 'cancelled', cancel_requested = 1, outcome = 'cancelled', "
                             "message = ?, updated = ? WHERE id = ? AND state = 'queued'",
                             (message, time.time(), job_id))  # fmt: skip
            return cur.rowcount == 1

    def recover(self, max_attempts: int = 2) -> list[Job]:
        """Jobs a killed server left in flight: requeued to resume, or turned into reports."""
        touched = []
        with self._tx() as db:
            rows = db.execute(
                "SELECT * FROM jobs WHERE state IN ('working', 'running') ORDER BY id"
            ).fetchall()
            for row in rows:
                job = Job.from_row(row)
                request = dict(job.request, restarted=True)
                if job.kind == "run" and job.attempts < max_attempts and not job.cancel_requested:
                    kind, lane = "run", job.lane
                elif job.kind == "run":
                    kind, lane = "interrupted", CONTROL_LANE
                else:
                    kind, lane = job.kind, job.lane  # a quick reply: just do it again
                db.execute("UPDATE jobs SET state = 'queued', kind = ?, lane = ?, request = ?, updated = ? "
                           "WHERE id = ?", (kind, lane, json.dumps(request), time.time(), job.id))  # fmt: skip
                touched.append(job.id)
        return [j for j in (self.get(i) for i in touched) if j is not None]

    # ------------------------------------------------------------------ queries

    def get(self, job_id: int | None) -> Job | None:
        row = self._db().execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job.from_row(row) if row else None

    def by_trace_token(self, token: str) -> Job | None:
        row = self._db().execute("SELECT * FROM jobs WHERE trace_token = ?", (token,)).fetchone()
        return Job.from_row(row) if row else None

    def active_run(self, repo: str, number: int) -> Job | None:
        """The run in progress (or waiting) on this issue, oldest first."""
        row = (
            self._db()
            .execute(
                "SELECT * FROM jobs WHERE repo = ? AND number = ? AND kind = 'run' "
                "AND state IN ('queued', 'working', 'running') ORDER BY (state = 'running') DESC, id LIMIT 1",
                (repo, number),
            )
            .fetchone()
        )
        return Job.from_row(row) if row else None

    def jobs(self, state: str | None = None) -> list[Job]:
        if state is None:
            rows = self._db().execute("SELECT * FROM jobs ORDER BY id").fetchall()
        else:
            rows = self._db().execute("SELECT * FROM jobs WHERE state = ? ORDER BY id", (state,)).fetchall()
        return [Job.from_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        rows = self._db().execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state").fetchall()
        return {r["state"]: r["n"] for r in rows}

    def delivery_count(self) -> int:
        return self._db().execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]


JobHandler = Callable[[Job, threading.Event], None]


class WorkerPool:
    """`workers` threads for run jobs plus `control_workers` for quick replies, in this process."""

    def __init__(self, store: JobStore, handler: JobHandler, *, workers: int = 2, control_workers: int = 1,
                 poll: float = 1.0):  # fmt: skip
        self.store = store
        self.handler = handler
        self.poll = poll
        self._wake = {RUN_LANE: threading.Condition(), CONTROL_LANE: threading.Condition()}
        self._stopping = threading.Event()
        self._cancels: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._loop, args=(lane,), name=f"rlm-{lane}-{i}", daemon=True)
            for lane, n in ((RUN_LANE, max(1, workers)), (CONTROL_LANE, max(1, control_workers)))
            for i in range(n)
        ]

    def start(self) -> WorkerPool:
        for t in self._threads:
            t.start()
        return self

    def notify(self, lane: str | None = None) -> None:
        for name, cond in self._wake.items():
            if lane in (None, name):
                with cond:
                    cond.notify()

    def cancel(self, job_id: int) -> bool:
        """Stop a job this process is running; True when it was running here."""
        with self._lock:
            event = self._cancels.get(job_id)
        if event is None:
            return False
        event.set()
        return True

    def stop(self, timeout: float = 10.0, cancel_running: bool = False) -> None:
        """Stop taking jobs. Running jobs are left to finish (or, if the process dies, to be
        recovered on the next start) unless `cancel_running`."""
        self._stopping.set()
        if cancel_running:
            with self._lock:
                for event in self._cancels.values():
                    event.set()
        self.notify()
        for t in self._threads:
            t.join(timeout=timeout)

    def _settle(self, job_id: int, lane: str) -> None:
        """A handler that returned (or raised) without finishing its job leaves it failed, not stuck."""
        try:
            current = self.store.get(job_id)
            handed_on = current is None or current.lane != lane  # an accepted run went to the run lane
            if not handed_on and current.state in ("working", "running"):
                self.store.finish(job_id, "failed", "internal_error", "the job ended without a result")
        except sqlite3.Error:
            log.exception("could not settle job %s", job_id)

    def _loop(self, lane: str) -> None:
        cond = self._wake[lane]
        while not self._stopping.is_set():
            try:
                job = self.store.claim(lane)
            except sqlite3.Error:
                log.exception("could not claim a job")
                job = None
            if job is None:
                with cond:
                    cond.wait(self.poll)
                continue
            cancel = threading.Event()
            if job.cancel_requested:
                cancel.set()
            with self._lock:
                self._cancels[job.id] = cancel
            try:
                self.handler(job, cancel)
            except Exception:  # a bug in one job must not kill the worker
                log.exception("job %s (%s) failed unexpectedly", job.id, job.kind)
            finally:
                self._settle(job.id, lane)
                with self._lock:
                    if self._cancels.get(job.id) is cancel:  # a run worker may hold it by now
                        del self._cancels[job.id]
