"""Who may start a run from this event, and with which task.

Comment events: the comment must be new, not by a bot, hold a `/rlm` command, and its author must
have write, maintain or admin permission (the App's check, bot.github.permissions). Manual and
scheduled runs need the `prompt` input; any other event is also checked against its sender.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.github.api import GitHubAPI
from bot.github.commands import CommandKind, help_text, parse_command
from bot.github.messages import INVALID_COMMAND
from bot.github.permissions import WRITE_PERMISSIONS, not_allowed
from bot.github.review import review_task

from . import messages as m
from .context import ActionContext
from .inputs import Inputs

# Events only people with write access (or the repository itself) can cause.
TRUSTED_EVENTS = ("workflow_dispatch", "schedule")
SCHEDULER = "github-actions[bot]"


@dataclass(frozen=True)
class Trigger:
    """A run that may start."""

    task: str
    requester: str
    requester_id: int | None = None
    comment_id: int | None = None
    mode: str = "change"  # `review`: a read-only review of the pull request (bot.rlm.RunMode)


class Stop(Exception):
    """Nothing runs. `reply` (if any) is posted on the issue; the message goes to log and summary."""

    def __init__(self, conclusion: str, message: str, reply: str | None = None):
        super().__init__(message)
        self.conclusion = conclusion
        self.message = message
        self.reply = reply


def _is_bot(user: dict) -> bool:
    return user.get("type") == "Bot" or str(user.get("login", "")).endswith("[bot]")


def check_permission(api: GitHubAPI, repo: str, user: str, prefix: str) -> None:
    permission = api.get_permission(repo, user)
    if permission not in WRITE_PERMISSIONS:
        raise Stop(
            m.NOT_ALLOWED,
            m.NOT_PERMITTED.format(user=user, permission=permission, repo=repo),
            reply=not_allowed(user, prefix),
        )


def _from_comment(ctx: ActionContext, inputs: Inputs, api: GitHubAPI) -> Trigger:
    prefix = inputs.trigger
    action = ctx.event.get("action", "created")
    if action != "created":
        raise Stop(m.SKIPPED, m.NOT_CREATED.format(action=action))
    comment = ctx.comment
    user = comment.get("user") or ctx.event.get("sender") or {}
    login = str(user.get("login", ""))
    if _is_bot(user):
        raise Stop(m.SKIPPED, m.IGNORED_BOT.format(user=login))
    command = parse_command(comment.get("body"), prefix=prefix)
    if command is None:
        raise Stop(m.SKIPPED, m.NO_COMMAND.format(prefix=prefix))
    if command.kind is CommandKind.REVIEW or (inputs.mode == "review" and command.kind is CommandKind.RUN):
        check_permission(api, ctx.repository, login, prefix)
        focus = command.task if command.kind is CommandKind.REVIEW else inputs.prompt or command.task
        if ctx.on_pull_request:
            mode, task = "review", review_task(focus)
        else:  # `review …` on an issue is an ordinary task
            mode, task = "change", inputs.prompt or f"review {command.task}".strip()
        return Trigger(task, login, user.get("id"), comment.get("id"), mode=mode)
    if command.kind is CommandKind.RUN or (
        command.kind is CommandKind.INVALID and not command.task and inputs.prompt
    ):
        check_permission(api, ctx.repository, login, prefix)
        return Trigger(
            task=inputs.prompt or command.task,
            requester=login,
            requester_id=user.get("id"),
            comment_id=comment.get("id"),
        )
    # help, status, cancel, invalid: answered, but only for people who could start a run.
    check_permission(api, ctx.repository, login, prefix)
    if command.kind is CommandKind.HELP:
        raise Stop(m.SKIPPED, m.HELP_ANSWERED.format(prefix=prefix), reply=help_text(prefix))
    if command.kind is CommandKind.INVALID:
        raise Stop(
            m.SKIPPED,
            m.INVALID_ANSWERED.format(prefix=prefix),
            reply=f"{INVALID_COMMAND}\n\n{help_text(prefix)}",
        )
    runs = f"{ctx.server_url}/{ctx.repository}/actions"
    reply = (m.NO_STATUS_IN_ACTION if command.kind is CommandKind.STATUS else m.NO_CANCEL_IN_ACTION).format(
        url=runs
    )
    raise Stop(m.SKIPPED, m.KEYWORD_ANSWERED.format(prefix=prefix, word=command.kind), reply=reply)


def decide(ctx: ActionContext, inputs: Inputs, api: GitHubAPI) -> Trigger:
    """The run to start, or Stop with the reason nothing runs. Makes no model call."""
    if ctx.is_comment:
        return _from_comment(ctx, inputs, api)
    sender = ctx.event.get("sender") or {}
    login = str(sender.get("login") or SCHEDULER)  # a scheduled run has no sender
    if inputs.mode == "review":
        if ctx.pull_number is None:
            raise Stop(
                m.INVALID_INPUT,
                m.REVIEW_NEEDS_A_PULL_REQUEST.format(event=ctx.event_name, prefix=inputs.trigger),
            )
        check_permission(api, ctx.repository, login, inputs.trigger)
        task = review_task(inputs.prompt)
        return Trigger(task=task, requester=login, requester_id=sender.get("id"), mode="review")
    if not inputs.prompt:
        raise Stop(m.INVALID_INPUT, m.NO_PROMPT.format(event=ctx.event_name, prefix=inputs.trigger))
    if ctx.event_name not in TRUSTED_EVENTS and sender.get("login"):
        check_permission(api, ctx.repository, login, inputs.trigger)
    return Trigger(task=inputs.prompt, requester=login, requester_id=sender.get("id"))
