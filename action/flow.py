"""The run itself, through the App's code in bot.github.

A `/rlm` comment with `create-pr` on is exactly the App's request: `bot.github.run.execute_run`
does 👀, the live status comment linking this workflow run, the commit choice (PR head or default
branch), the rollout, the PR or the fork patch comment, and 🚀/😕. Runs with no issue to talk on
(manual, scheduled) and runs with `create-pr: false` take the same steps without a status comment,
built from the same pieces (`resolve_base`, engine, `open_pull_request`, `report`).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from bot.github import report
from bot.github.api import GitHubAPI, GitHubError
from bot.github.run import (
    RunOptions,
    RunOutcome,
    RunRequest,
    execute_run,
    open_pr,
    outcome_for,
    requester_identity,
    resolve_base,
)
from bot.rlm import engine
from bot.rlm.config import Config, ConfigError
from bot.rlm.errors import RLMError
from bot.rlm.patch import PatchError
from bot.rlm.repo import PreparedRepo
from bot.rlm.rollout import RolloutResult

from . import messages as m
from .context import ActionContext
from .trust import Trigger

log = logging.getLogger(__name__)
ACTIONS_BOT = "github-actions[bot] <41898282+github-actions[bot]@users.noreply.github.com>"


@dataclass
class Plan:
    """Everything a run needs, decided before it starts."""

    request: RunRequest
    options: RunOptions
    create_pr: bool


def make_request(
    ctx: ActionContext, trigger: Trigger, api: GitHubAPI, base_branch: str, run_id: str
) -> RunRequest:
    """The App's request object for this event. The commit: the PR head for a PR comment, else
    `base-branch`'s head, else the workflow's own commit on its branch, else the default branch."""
    request = RunRequest(repo=ctx.repository, number=ctx.issue_number or 0, requester=trigger.requester,
                         task=trigger.task, clone_url=ctx.clone_url, comment_id=trigger.comment_id,
                         review_comment=ctx.event_name == "pull_request_review_comment",
                         is_pull=ctx.on_pull_request, requester_id=trigger.requester_id, run_id=run_id)  # fmt: skip
    if request.is_pull:
        return request
    if base_branch:
        request.commit, request.base_branch = api.get_branch_sha(ctx.repository, base_branch), base_branch
    elif not ctx.is_comment and ctx.branch and ctx.sha:
        request.commit, request.base_branch = ctx.sha, ctx.branch
    return request


def run(plan: Plan, api: GitHubAPI, config: Config, cancel: threading.Event) -> RunOutcome:
    if plan.request.number and plan.create_pr:
        return execute_run(plan.request, api, config, plan.options, cancel=cancel)
    return _run_headless(plan, api, config, cancel)


def _run_headless(plan: Plan, api: GitHubAPI, config: Config, cancel: threading.Event) -> RunOutcome:
    request, options = plan.request, plan.options
    run_id = request.run_id or ""
    trace_url = options.trace_url(run_id) if options.trace_url else None
    result: RolloutResult | None = None
    try:
        if request.comment_id:
            api.add_reaction(
                request.repo, request.comment_id, report.REACTION_SEEN, review=request.review_comment
            )
        commit, base_branch, fork, _ = resolve_base(api, request)
        prepared = engine.prepare(config, request.clone_url, commit=commit, auth_header=options.auth_header)
        result = engine.run(config, prepared, request.task, run_id=run_id, results_dir=options.results_dir,
                            cancel=cancel, api_key=options.api_key)  # fmt: skip
        kind, message = outcome_for(result, options.prefix)
        outcome = RunOutcome(run_id, kind, message, result=result)
        if kind == "no_changes" and result.has_changes:
            if plan.create_pr and not fork:
                outcome = _open_pr(api, request, options, prepared, result, base_branch, trace_url)
            else:
                outcome.message = m.OUTCOME_PATCH_ARTIFACT.format(url=trace_url or "").strip()
    except GitHubError as e:  # the rollout's result (and patch) stay with the outcome
        outcome = RunOutcome(
            run_id, "github_error", report.OUTCOME_GITHUB_ERROR.format(error=e), result=result
        )
    except (RLMError, ConfigError, PatchError) as e:  # the same errors execute_run reports
        outcome = RunOutcome(run_id, "error", report.OUTCOME_ERROR.format(error=e), result=result)
    if request.comment_id:
        _reply(api, request, outcome, trace_url)
    return outcome


def _open_pr(api: GitHubAPI, request: RunRequest, options: RunOptions, prepared: PreparedRepo,
             result: RolloutResult, base_branch: str, trace_url: str | None) -> RunOutcome:  # fmt: skip
    """The App's PR step; a run no person asked for (schedule, bot) is authored by Actions."""
    source = f"{request.repo}#{request.number}" if request.number else trace_url
    by_person = bool(request.requester and not request.requester.endswith("[bot]") and source)
    outcome, _ = open_pr(api, request, options, prepared, result, trace_url, base_branch=base_branch,
                         source=source, requester=request.requester if by_person else None,
                         author=requester_identity(request) if by_person else ACTIONS_BOT)  # fmt: skip
    return outcome


def _reply(api: GitHubAPI, request: RunRequest, outcome: RunOutcome, trace_url: str | None) -> None:
    """The one comment of a run without a status comment (create-pr false): how it ended."""
    lines = [outcome.message]
    if outcome.result is not None:
        lines.append(report.final_totals(outcome.result.results))
    body = report.status_body(outcome.run_id, request.task, lines, trace_url=trace_url, final=True)
    try:
        api.create_comment(request.repo, request.number, body)
        api.add_reaction(request.repo, request.comment_id or 0,
                         report.REACTION_DONE if outcome.ok else report.REACTION_FAILED,
                         review=request.review_comment)  # fmt: skip
    except GitHubError as e:  # the outcome is in the log and the step summary anyway
        log.warning("could not post the final comment: %s", e)


def results_dir(ctx: ActionContext, run_id: str) -> Path:
    """Outside the workspace (the checkout): results, events and patch of one run, the artifact."""
    return ctx.temp_dir / "runs" / run_id
