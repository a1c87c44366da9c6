"""What a job is, and the small interface every job store implements (`JobStore`).

- Every delivery id is stored once: a redelivery or replay never makes a second job.
- A job is `queued` → `working` (a worker claimed it and holds its lease) → `running` (it holds its
  issue's one active-run slot, enforced by a unique partial index) → `done` / `failed` / `cancelled`.
- Two lanes. Every job starts in the quick `control` lane (help, status, cancel, reports, and the
  permission check + acknowledgement of a run), so `/rlm cancel` and the 👀 are immediate even when
  every run worker is busy; an accepted run is then `promote`d to the `run` lane.
- A claimed job carries a lease (owner, expiry) that its worker's heartbeat renews. A job whose lease
  ran out (its worker died) is queued again by any worker — resumed while it has attempts left, else
  turned into a report on its issue. A job whose worker is alive is never taken.
- The request is an opaque JSON object, stored verbatim.
- Facts, not policy: the store knows only that jobs of kind `RUN_KIND` hold an issue's run slot.
  What a kind means, when a command is answered "busy" and when a dead worker's run is reported
  instead of resumed are the App's decisions (webhooks/handler.py), handed in as small callables.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bot.common.enums import StrEnum

RUN_KIND = "run"  # the kind of job that holds its issue's one active-run slot


class JobLane(StrEnum):
    """The worker pool's two lanes; every job starts in CONTROL."""

    CONTROL = "control"
    RUN = "run"


RUN_LANE = JobLane.RUN
CONTROL_LANE = JobLane.CONTROL


class JobState(StrEnum):
    QUEUED = "queued"
    WORKING = "working"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobOutcome(StrEnum):
    """The outcomes the store and the worker pool write themselves. Every other outcome is the
    App's word for how its job ended (a run's OutcomeKind, the command answered), kept verbatim."""

    INTERNAL_ERROR = "internal_error"  # the handler returned or raised without ending its job
    CANCELLED = "cancelled"  # cancelled before a worker picked it up


FINAL_STATES = (JobState.DONE, JobState.FAILED, JobState.CANCELLED)
IN_FLIGHT = (JobState.WORKING, JobState.RUNNING)


class DuplicateDelivery(Exception):
    """This delivery id was already received."""


@dataclass
class Job:
    id: int
    delivery_id: str
    kind: str  # what the App asked for (webhooks' JobKind); opaque to the store but RUN_KIND
    lane: JobLane
    repo: str
    number: int
    installation_id: int | None
    request: dict
    state: JobState
    attempts: int
    cancel_requested: bool
    outcome: str | None  # a JobOutcome, or the App's word for how its job ended
    message: str | None
    trace_token: str | None
    lease_owner: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> Job:
        """From a database row that can be indexed by column name (sqlite3.Row, a psycopg dict row)."""
        return cls(
            id=row["id"],
            delivery_id=row["delivery_id"],
            kind=row["kind"],
            lane=JobLane(row["lane"]),
            repo=row["repo"],
            number=row["number"],
            installation_id=row["installation_id"],
            request=json.loads(row["request"]),
            state=JobState(row["state"]),
            attempts=row["attempts"],
            cancel_requested=bool(row["cancel_requested"]),
            outcome=row["outcome"],
            message=row["message"],
            trace_token=row["trace_token"],
            lease_owner=row["lease_owner"],
        )


@dataclass
class NewJob:
    kind: str
    repo: str
    number: int
    request: dict
    installation_id: int | None = None

    @property
    def lane(self) -> JobLane:
        return CONTROL_LANE  # every job starts there; an accepted run is then `promote`d


# The App's answer for a new job when a run is already active on its issue (e.g. a "busy" reply).
IfRunActive = Callable[[NewJob], NewJob]
# The App's choice of (kind, lane) for a job whose worker died (resume it, report it, redo it).
Requeue = Callable[["Job"], tuple[str, JobLane]]


@dataclass
class Heartbeat:
    """What a worker learns when it renews its leases."""

    held: set[int]  # jobs whose lease it still holds
    cancel: set[int]  # of those, the ones someone asked to cancel (through any replica)


class JobStore(Protocol):
    """The durable job store. Backends: SQLite (`bot.jobs.sqlite`) and PostgreSQL (`bot.jobs.postgres`);
    `open_store` picks one. Every method is safe to call from any thread."""

    errors: tuple[type[Exception], ...]  # what a database failure raises (for callers that retry)
    lease_seconds: float

    def record_delivery(
        self,
        delivery_id: str,
        event: str,
        job: NewJob | None = None,
        decision: str = "ignored",
        *,
        if_run_active: IfRunActive | None = None,
    ) -> Job | None: ...
    def add_job(self, job: NewJob, delivery_id: str | None = None) -> Job: ...
    def claim(self, lane: JobLane, owner: str = "", lease: float | None = None) -> Job | None: ...
    def promote(self, job_id: int) -> bool: ...
    def activate(self, job_id: int) -> bool: ...
    def finish(
        self,
        job_id: int,
        state: JobState,
        outcome: str | None = None,
        message: str | None = None,
        owner: str | None = None,
    ) -> bool: ...
    def update_request(self, job_id: int, **fields: Any) -> None: ...
    def request_cancel(self, job_id: int) -> None: ...
    def cancel_queued(self, job_id: int, message: str) -> bool: ...
    def heartbeat(self, owner: str, lease: float | None = None) -> Heartbeat: ...
    def requeue_expired(self, requeue: Requeue | None = None) -> list[Job]: ...
    def release(self, owner: str, requeue: Requeue | None = None) -> list[Job]: ...
    def recover(self, requeue: Requeue | None = None) -> list[Job]: ...
    def get(self, job_id: int | None) -> Job | None: ...
    def by_trace_token(self, token: str) -> Job | None: ...
    def active_run(self, repo: str, number: int) -> Job | None: ...
    def jobs(self, state: JobState | None = None) -> list[Job]: ...
    def counts(self) -> dict[str, int]: ...
    def queue_depth(self) -> dict[str, int]: ...
    def delivery_count(self) -> int: ...
    def ping(self) -> None: ...
    def close(self) -> None: ...
