"""The job store's logic in SQL that SQLite and PostgreSQL both speak; each backend supplies its
connections, transactions, schema and the few words where the two differ."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from .model import (
    FINAL_STATES,
    IN_FLIGHT,
    RUN_KIND,
    RUN_LANE,
    DuplicateDelivery,
    Heartbeat,
    IfRunActive,
    Job,
    JobLane,
    JobOutcome,
    JobState,
    NewJob,
    Requeue,
)

DEFAULT_LEASE = 30.0  # seconds a claimed job stays its worker's without a heartbeat


def _sql_in(states: tuple[JobState, ...]) -> str:
    """A SQL list of job states for `state IN ...` (the values are the enum's own, never input)."""
    return "(" + ", ".join(f"'{s.value}'" for s in states) + ")"


_IN_FLIGHT = _sql_in(IN_FLIGHT)
_ACTIVE = _sql_in((JobState.QUEUED, *IN_FLIGHT))
_QUEUED, _WORKING, _RUNNING = (f"'{s.value}'" for s in (JobState.QUEUED, JobState.WORKING, JobState.RUNNING))
_CANCELLED, _OUT_CANCELLED = f"'{JobState.CANCELLED.value}'", f"'{JobOutcome.CANCELLED.value}'"


class Cursor:
    """What `Tx.execute` returns: rows and a rowcount, whichever driver."""

    rowcount: int

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Tx:
    """One transaction: `execute(sql with ? placeholders, params)`."""

    def __init__(self, execute: Callable[[str, tuple], Cursor]):
        self.execute = execute


def migrate(tx: Tx, migrations: list[list[str]]) -> int:
    """Apply the migrations this database lacks, in order; the caller holds a lock that keeps two
    processes from migrating at once. Returns the schema version."""
    tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)", ())
    row = tx.execute("SELECT MAX(version) AS v FROM schema_version", ()).fetchone()
    current = (row["v"] if row else None) or 0
    for version, statements in enumerate(migrations, start=1):
        if version <= current:
            continue
        for statement in statements:
            tx.execute(statement, ())
        tx.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
    return len(migrations)


class SqlJobStore:
    """The shared implementation. Subclasses define `_tx`, `_rows`, `errors`, `integrity_errors`,
    `skip_locked` and `close`."""

    errors: tuple[type[Exception], ...] = ()
    integrity_errors: tuple[type[Exception], ...] = ()
    skip_locked = ""  # PostgreSQL: " FOR UPDATE SKIP LOCKED" (SQLite serialises writers instead)
    lock_row = ""  # PostgreSQL: " FOR UPDATE"

    def __init__(self, lease_seconds: float = DEFAULT_LEASE, clock: Callable[[], float] = time.time):
        self.lease_seconds = lease_seconds
        self.clock = clock

    # Backend hooks -----------------------------------------------------------------------

    def _tx(self) -> AbstractContextManager[Tx]:
        raise NotImplementedError

    def _rows(self, sql: str, params: tuple = ()) -> list[Any]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # Intake ------------------------------------------------------------------------------

    def record_delivery(
        self,
        delivery_id: str,
        event: str,
        job: NewJob | None = None,
        decision: str = "ignored",
        *,
        if_run_active: IfRunActive | None = None,
    ) -> Job | None:
        """Store the delivery (and its job) atomically. Raises DuplicateDelivery on a replay. When a
        run is already active on the job's issue, `if_run_active(job)` says what to store instead
        (in the same transaction, so two deliveries cannot both miss each other)."""
        now = self.clock()
        try:
            with self._tx() as tx:
                tx.execute(
                    "INSERT INTO deliveries (id, event, received, decision) VALUES (?, ?, ?, ?)",
                    (delivery_id, event, now, "queued" if job else decision),
                )
                if job is None:
                    return None
                if (
                    if_run_active is not None
                    and tx.execute(
                        f"SELECT 1 FROM jobs WHERE repo = ? AND number = ? AND kind = ? AND state IN {_ACTIVE} "
                        "LIMIT 1",
                        (job.repo, job.number, RUN_KIND),
                    ).fetchone()
                ):
                    job = if_run_active(job)
                row = tx.execute(
                    "INSERT INTO jobs (delivery_id, kind, lane, repo, number, installation_id, request, "
                    "trace_token, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
                    (
                        delivery_id,
                        str(job.kind),
                        str(job.lane),
                        job.repo,
                        job.number,
                        job.installation_id,
                        json.dumps(job.request),
                        secrets.token_urlsafe(24),
                        now,
                        now,
                    ),
                ).fetchone()
                return Job.from_row(row)
        except self.integrity_errors:
            raise DuplicateDelivery(delivery_id) from None

    def add_job(self, job: NewJob, delivery_id: str | None = None) -> Job:
        """A job that no delivery brought (e.g. a report of an interrupted run)."""
        created = self.record_delivery(delivery_id or f"internal-{secrets.token_hex(8)}", "internal", job)
        assert created is not None
        return created

    # Lifecycle ---------------------------------------------------------------------------

    def claim(self, lane: JobLane, owner: str = "", lease: float | None = None) -> Job | None:
        """The oldest queued job of `lane`, now `working` and leased to `owner`."""
        now = self.clock()
        until = now + (self.lease_seconds if lease is None else lease)
        with self._tx() as tx:
            row = tx.execute(
                f"UPDATE jobs SET state = {_WORKING}, attempts = attempts + 1, lease_owner = ?, lease_until = ?, "
                f"updated = ? WHERE id = (SELECT id FROM jobs WHERE lane = ? AND state = {_QUEUED} ORDER BY id "
                f"LIMIT 1{self.skip_locked}) RETURNING *",
                (owner, until, now, str(lane)),
            ).fetchone()
        return Job.from_row(row) if row else None

    def promote(self, job_id: int) -> bool:
        """An accepted run (permission checked, acknowledged) moves to the run lane, attempts reset."""
        with self._tx() as tx:
            cur = tx.execute(
                f"UPDATE jobs SET lane = ?, state = {_QUEUED}, attempts = 0, lease_owner = NULL, "
                f"lease_until = NULL, updated = ? WHERE id = ? AND state = {_WORKING}",
                (str(RUN_LANE), self.clock(), job_id),
            )
            return cur.rowcount == 1

    def activate(self, job_id: int) -> bool:
        """Take the issue's one active-run slot; False when another run holds it."""
        try:
            with self._tx() as tx:
                tx.execute(
                    f"UPDATE jobs SET state = {_RUNNING}, updated = ? WHERE id = ?", (self.clock(), job_id)
                )
        except self.integrity_errors:
            return False
        return True

    def finish(
        self,
        job_id: int,
        state: JobState,
        outcome: str | None = None,
        message: str | None = None,
        owner: str | None = None,
    ) -> bool:
        """End the job. With `owner`, only while that worker still holds its lease: a worker that
        stalled past its lease must not end the job its new owner is running. True when ended."""
        state = JobState(state)
        assert state in FINAL_STATES, state
        held, params = ("", ()) if owner is None else (" AND lease_owner = ?", (owner,))
        with self._tx() as tx:
            cur = tx.execute(
                "UPDATE jobs SET state = ?, outcome = ?, message = ?, lease_owner = NULL, lease_until = NULL, "
                f"updated = ? WHERE id = ?{held}",
                (state.value, outcome, message, self.clock(), job_id, *params),
            )
            return cur.rowcount == 1

    def update_request(self, job_id: int, **fields: Any) -> None:
        with self._tx() as tx:
            row = tx.execute(f"SELECT request FROM jobs WHERE id = ?{self.lock_row}", (job_id,)).fetchone()
            data = json.loads(row["request"]) if row else {}
            data.update(fields)
            tx.execute(
                "UPDATE jobs SET request = ?, updated = ? WHERE id = ?",
                (json.dumps(data), self.clock(), job_id),
            )

    def request_cancel(self, job_id: int) -> None:
        """Flag the job; the worker holding it sees the flag at its next heartbeat, in any process."""
        with self._tx() as tx:
            tx.execute(
                "UPDATE jobs SET cancel_requested = 1, updated = ? WHERE id = ?", (self.clock(), job_id)
            )

    def cancel_queued(self, job_id: int, message: str) -> bool:
        """Cancel a run no worker has picked up yet; False when it already started."""
        with self._tx() as tx:
            cur = tx.execute(
                f"UPDATE jobs SET state = {_CANCELLED}, cancel_requested = 1, outcome = {_OUT_CANCELLED}, "
                f"message = ?, updated = ? WHERE id = ? AND state = {_QUEUED}",
                (message, self.clock(), job_id),
            )
            return cur.rowcount == 1

    # Leases ------------------------------------------------------------------------------

    def heartbeat(self, owner: str, lease: float | None = None) -> Heartbeat:
        """Renew every lease `owner` holds; say which it still holds and which are to be cancelled."""
        now = self.clock()
        until = now + (self.lease_seconds if lease is None else lease)
        with self._tx() as tx:
            rows = tx.execute(
                f"UPDATE jobs SET lease_until = ? WHERE lease_owner = ? AND state IN {_IN_FLIGHT} "
                "RETURNING id, cancel_requested",
                (until, owner),
            ).fetchall()
        return Heartbeat(
            held={r["id"] for r in rows}, cancel={r["id"] for r in rows if r["cancel_requested"]}
        )

    def requeue_expired(self, requeue: Requeue | None = None) -> list[Job]:
        """Jobs whose worker died (lease expired, or no lease at all) are queued again, marked
        `restarted`. `requeue(job)` chooses each one's (kind, lane) — resume it, report it, do it
        again; without it a job keeps both."""
        return self._requeue("(lease_until IS NULL OR lease_until < ?)", (self.clock(),), requeue)

    def release(self, owner: str, requeue: Requeue | None = None) -> list[Job]:
        """A stopping worker hands its jobs back: each is queued again at once, marked `restarted`,
        as `requeue_expired` would after its lease (another worker resumes it without waiting)."""
        return self._requeue("lease_owner = ?", (owner,), requeue)

    def _requeue(self, where: str, params: tuple, requeue: Requeue | None) -> list[Job]:
        now = self.clock()
        touched = []
        with self._tx() as tx:
            rows = tx.execute(
                f"SELECT * FROM jobs WHERE state IN {_IN_FLIGHT} AND {where} ORDER BY id{self.skip_locked}",
                params,
            ).fetchall()
            for row in rows:
                job = Job.from_row(row)
                request = dict(job.request, restarted=True)
                kind, lane = requeue(job) if requeue is not None else (job.kind, job.lane)
                tx.execute(
                    f"UPDATE jobs SET state = {_QUEUED}, kind = ?, lane = ?, request = ?, lease_owner = NULL, "
                    "lease_until = NULL, updated = ? WHERE id = ?",
                    (str(kind), str(lane), json.dumps(request), now, job.id),
                )
                touched.append(job.id)
        return [j for j in (self.get(i) for i in touched) if j is not None]

    def recover(self, requeue: Requeue | None = None) -> list[Job]:
        """Lease-based recovery: the same as `requeue_expired` (a live worker's job is never taken)."""
        return self.requeue_expired(requeue)

    # Queries -----------------------------------------------------------------------------

    def _one(self, sql: str, params: tuple) -> Job | None:
        rows = self._rows(sql, params)
        return Job.from_row(rows[0]) if rows else None

    def get(self, job_id: int | None) -> Job | None:
        return self._one("SELECT * FROM jobs WHERE id = ?", (job_id,))

    def by_trace_token(self, token: str) -> Job | None:
        return self._one("SELECT * FROM jobs WHERE trace_token = ?", (token,))

    def active_run(self, repo: str, number: int) -> Job | None:
        """The run in progress (or waiting) on this issue, the running one first, then the oldest."""
        return self._one(
            f"SELECT * FROM jobs WHERE repo = ? AND number = ? AND kind = ? AND state IN {_ACTIVE} "
            f"ORDER BY CASE WHEN state = {_RUNNING} THEN 0 ELSE 1 END, id LIMIT 1",
            (repo, number, RUN_KIND),
        )

    def jobs(self, state: JobState | None = None) -> list[Job]:
        if state is None:
            return [Job.from_row(r) for r in self._rows("SELECT * FROM jobs ORDER BY id")]
        return [
            Job.from_row(r)
            for r in self._rows("SELECT * FROM jobs WHERE state = ? ORDER BY id", (str(state),))
        ]

    def counts(self) -> dict[str, int]:
        return {
            r["state"]: r["n"] for r in self._rows("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        }

    def queue_depth(self) -> dict[str, int]:
        """Queued jobs per lane (every lane present, zero included)."""
        depth = {str(lane): 0 for lane in JobLane}
        for r in self._rows(f"SELECT lane, COUNT(*) AS n FROM jobs WHERE state = {_QUEUED} GROUP BY lane"):
            depth[r["lane"]] = r["n"]
        return depth

    def delivery_count(self) -> int:
        return self._rows("SELECT COUNT(*) AS n FROM deliveries")[0]["n"]

    def ping(self) -> None:
        """Raises one of `errors` when the database cannot be reached."""
        self._rows("SELECT 1 AS ok")
