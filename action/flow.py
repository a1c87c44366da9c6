"""The Action's run: the pipeline with GitHub's reporter and deliverer, or the artifact.

A `/rlm` comment with `create-pr` on is exactly the App's request: 👀, the live status comment
linking this workflow run, the commit choice (PR head or default branch), the rollout, the PR or
the fork patch comment, and 🚀/😕. A run with no issue to talk on (manual, scheduled) has no status
comment; a run with `create-pr: false` replies once at the end, and its patch is the artifact.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bot import pipeline
from bot.github.api import GitHubAPI
from bot.github.deliver import (
    DeliveryOptions,
    GitHubDeliverer,
    partial_outcome,
    requester_identity,
    resolve_target,
)
from bot.github.reporter import StatusReporter
from bot.pipeline import (
    NullReporter,
    OutcomeKind,
    Reporter,
    Reporters,
    RunOutcome,
    RunRequest,
    RunSettings,
    RunState,
    Target,
)

from . import messages as m
from .context import ActionContext
from .trust import Trigger

ACTIONS_BOT = "github-actions[bot] <41898282+github-actions[bot]@users.noreply.github.com>"


@dataclass
class Plan:
    """Everything a run needs, decided before it starts."""

    request: RunRequest
    settings: RunSettings
    create_pr: bool
    draft: bool = False
    run_url: str | None = None  # this workflow run: the trace, the artifact with the patch
    status_interval: float = 15.0
    deliverer: GitHubDeliverer | ArtifactDeliverer | None = None  # None: made from the fields above


def make_request(ctx: ActionContext, trigger: Trigger, base_branch: str, run_id: str) -> RunRequest:
    """The request for this event, with what the event itself fixes: the workflow's own commit on
    its branch (manual and scheduled runs), or the `base-branch` to start from. The commit is
    looked up once, by the pipeline's `resolve` (the PR head for a PR comment, else the base
    branch's head, else the default branch's)."""
    request = RunRequest(
        repo=ctx.repository,
        repo_id=ctx.repository_id,
        number=ctx.issue_number or 0,
        requester=trigger.requester,
        task=trigger.task,
        clone_url=ctx.clone_url,
        comment_id=trigger.comment_id,
        review_comment=ctx.event_name == "pull_request_review_comment",
        is_pull=ctx.on_pull_request,
        requester_id=trigger.requester_id,
        run_id=run_id,
        mode=trigger.mode,
    )
    if trigger.mode == "review" and ctx.pull_number is not None:  # a `pull_request` event
        request.number, request.is_pull = ctx.pull_number, True
        request.html_url = (ctx.event.get("pull_request") or {}).get("html_url")
    if request.is_pull:
        return request
    if base_branch:
        request.base_branch = base_branch
    elif not ctx.is_comment and ctx.branch and ctx.sha:
        request.commit, request.base_branch = ctx.sha, ctx.branch
    return request


class ArtifactDeliverer:
    """`create-pr: false`: the patch file is the delivery (the artifact and the `patch-file` output)."""

    def __init__(self, api: GitHubAPI, run_url: str | None):
        self.api, self.run_url = api, run_url

    def target(self, request: RunRequest) -> Target:
        return resolve_target(self.api, request)

    def deliver(self, state: RunState) -> RunOutcome:
        outcome = RunOutcome(
            state.run_id, OutcomeKind.PATCH, m.OUTCOME_PATCH_ARTIFACT.format(url=self.run_url or "").strip()
        )
        if state.partial and state.result is not None:
            return partial_outcome(outcome, state.result.results)
        return outcome


def _by_person(request: RunRequest) -> bool:
    """A run no person asked for (schedule, a bot) is authored by Actions and names nobody."""
    return bool(request.requester and not request.requester.endswith("[bot]"))


def deliverer(
    create_pr: bool, draft: bool, run_url: str | None, api: GitHubAPI, *, review: bool = False
) -> GitHubDeliverer | ArtifactDeliverer:
    if not create_pr and not review:  # a review is posted whatever create-pr
        return ArtifactDeliverer(api, run_url)
    options = DeliveryOptions(
        draft=draft,
        trace_url=run_url,
        patch_url=run_url,
        author=lambda r: requester_identity(r) if _by_person(r) else ACTIONS_BOT,
        name_requester=_by_person,
        source=lambda r: r.source or run_url,
        keep_branch_without_pr=False,
    )
    return GitHubDeliverer(api, options)


def reporter(plan: Plan, api: GitHubAPI) -> Reporter:
    request = plan.request
    if not request.number:
        return NullReporter()  # nowhere to talk: the log and the step summary say it all
    return StatusReporter(
        api,
        request,
        prefix=plan.settings.words.prefix,
        trace_url=plan.run_url,
        interval=plan.status_interval,
        live=plan.create_pr or plan.request.mode == "review",
    )


def run(plan: Plan, api: GitHubAPI, cancel: threading.Event, logs: Reporter | None = None) -> RunOutcome:
    """The run, heard by the status comment and (`logs`) the job log, through the one channel."""
    heard = reporter(plan, api) if logs is None else Reporters(reporter(plan, api), logs)
    delivery = plan.deliverer or deliverer(
        plan.create_pr, plan.draft, plan.run_url, api, review=plan.request.mode == "review"
    )
    return pipeline.run(plan.request, heard, delivery, cancel, settings=plan.settings)


def patch_link(run_url: str | None) -> Callable[[Path], str]:
    """Where a saved patch is, for people: the run's artifact."""
    return lambda path: m.PATCH_IN_ARTIFACT.format(
        name=path.name, run_id=path.stem, url=run_url or "this workflow run"
    )


def results_dir(ctx: ActionContext, run_id: str) -> Path:
    """Outside the workspace (the checkout): results, events and patch of one run, the artifact."""
    return ctx.temp_dir / "runs" / run_id
