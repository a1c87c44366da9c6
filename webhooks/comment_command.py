"""The one behaviour both comment events share: a `/rlm` line in a new comment becomes a job.

Ignored: bots (so the app never answers itself), comments posted through this app, and
comments without a command. Everything else is recorded for a worker, which checks permission.
"""

from __future__ import annotations

from bot.github.commands import parse_command
from bot.github.review import review_task
from bot.jobs import NewJob
from bot.pipeline import RunRequest

from .context import IGNORED_BOT, IGNORED_NO_COMMAND, IGNORED_OWN, Delivery
from .kinds import JobKind
from .payload import typed


def is_from_bot(payload: dict) -> bool:
    sender = payload.get("sender") or {}
    author = (payload.get("comment") or {}).get("user") or {}
    return sender.get("type") == "Bot" or author.get("type") == "Bot"


def is_own(payload: dict, app_id: str | None) -> bool:
    via = (payload.get("comment") or {}).get("performed_via_github_app") or {}
    return app_id is not None and str(via.get("id")) == str(app_id)


def enqueue_command(
    payload: dict, delivery: Delivery, *, number: int, is_pull: bool, review: bool, html_url: str | None
) -> None:
    if is_from_bot(payload):
        return delivery.ignore(IGNORED_BOT)
    if is_own(payload, delivery.app_id):
        return delivery.ignore(IGNORED_OWN)
    comment = payload["comment"]
    command = parse_command(comment.get("body"), delivery.prefix)
    if command is None:
        return delivery.ignore(IGNORED_NO_COMMAND.format(prefix=delivery.prefix))
    kind, task, mode = command.kind, command.task, "change"
    if kind == "review":  # a review on a pull request; on an issue, "review …" is a task like any
        kind = "run"
        mode, task = (
            ("review", review_task(command.task)) if is_pull else ("change", f"review {command.task}".strip())
        )
    repo = payload["repository"]
    user = comment.get("user") or payload.get("sender") or {}
    full_name = typed(repo["full_name"], str, "repository.full_name")
    request = RunRequest(
        repo=full_name,
        repo_id=typed(repo.get("id"), int, "repository.id", optional=True),
        number=typed(number, int, "issue or pull request number"),
        requester=typed(user.get("login"), str, "comment.user.login", optional=True),
        requester_id=typed(user.get("id"), int, "comment.user.id", optional=True),
        task=task,
        mode=mode,
        clone_url=typed(repo.get("clone_url"), str, "repository.clone_url", optional=True),
        comment_id=typed(comment["id"], int, "comment.id"),
        review_comment=review,
        is_pull=is_pull,
        html_url=typed(html_url, str, "html_url", optional=True),
    )
    delivery.enqueue(
        NewJob(
            kind=JobKind(kind),
            repo=full_name,
            number=number,
            request=request.to_payload(),
            installation_id=delivery.installation_id,
        )
    )
