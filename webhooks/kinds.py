"""What a job asks the App to do (`JobKind`), and the App's two decisions the job store asks for:
a command that arrives while a run is active on its issue is answered "busy", and a run whose worker
died is resumed while it has attempts left, else reported. The store keeps the strings, verbatim."""

from __future__ import annotations

import dataclasses

from bot.common.enums import StrEnum
from bot.jobs import CONTROL_LANE, RUN_KIND, Job, JobLane, NewJob
from bot.pipeline import RunRequest


class JobKind(StrEnum):
    RUN = RUN_KIND  # `/rlm <task>`: accepted in the control lane, then run in the run lane
    HELP = "help"
    INVALID = "invalid"  # an unknown flag or an empty task: answered with the help text
    STATUS = "status"
    CANCEL = "cancel"
    BUSY = "busy"  # a run command while another run is active on the issue
    INTERRUPTED = "interrupted"  # a run whose workers kept dying: its status says so
    TRIGGER = "trigger"  # a label or an assignment: a run if .github/rlm.yml `triggers:` says so


def request_of(job: Job) -> RunRequest:
    """The run request a job holds: every App job's payload is a `RunRequest.to_payload()`."""
    return RunRequest.from_payload(job.request)


def busy_instead(job: NewJob) -> NewJob:
    """A run is already active on this issue: a second run command is answered at once instead of
    queueing (one active run per issue); any other command is kept."""
    return dataclasses.replace(job, kind=JobKind.BUSY) if job.kind == JobKind.RUN else job


def requeue_policy(max_attempts: int):
    """How a job whose worker died is queued again: a run is resumed (in its lane) while it has
    attempts left and was not cancelled, else reported in the control lane; a reply is done again."""

    def requeue(job: Job) -> tuple[str, JobLane]:
        if job.kind != JobKind.RUN:
            return job.kind, job.lane
        if job.attempts < max_attempts and not job.cancel_requested:
            return JobKind.RUN, job.lane
        return JobKind.INTERRUPTED, CONTROL_LANE

    return requeue
