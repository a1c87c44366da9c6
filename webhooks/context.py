"""What a routed handler gets besides the event, and what it hands back: the job to record or the
reason the delivery is ignored. Handlers never touch GitHub or the store themselves."""

from __future__ import annotations

from dataclasses import dataclass

from bot.jobs import NewJob

IGNORED_BOT = "the comment comes from a bot"
IGNORED_OWN = "the comment is this app's own"
IGNORED_NO_COMMAND = "the comment has no {prefix} command"
IGNORED_NO_HANDLER = "nothing to do for {event}.{action}"


@dataclass
class Delivery:
    prefix: str
    installation_id: int
    app_id: str | None = None
    job: NewJob | None = None
    ignored: str | None = None

    def ignore(self, reason: str) -> None:
        self.ignored = reason

    def enqueue(self, job: NewJob) -> None:
        self.job = job
