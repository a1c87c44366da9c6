"""One `/rlm <task>` request, from 👀 to the pull request: the flow both the App and the Action run.

The caller has already decided the request is allowed (permission check, one run per issue).
This module knows nothing of Flask, webhooks or app authentication: it gets a GitHubAPI, an
engine config and, for cloning, an HTTP auth header that goes to git through its environment only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bot.rlm import engine
from bot.rlm.config import Config, ConfigError
from bot.rlm.errors import RLMError
from bot.rlm.patch import PatchError
from bot.rlm.repo import PreparedRepo
from bot.rlm.rollout import RolloutResult, new_run_id
from bot.rlm.secrets import REDACTOR

from . import report
from .api import GitHubAPI, GitHubError
from .pull_request import REASON_ONLY_WORKFLOWS, open_pull_request
from .repo_config import load_repo_config
from .status import LiveStatus, StatusComment

log = logging.getLogger(__name__)


@dataclass
class RunRequest:
    repo: str  # owner/name
    number: int  # issue or pull request number
    requester: str  # login of the person who asked
    task: str
    clone_url: str  # from the signed payload (App) or the runner's environment (Action)
    comment_id: int | None = None
    review_comment: bool = False  # the command came as a pull request review comment
    is_pull: bool = False
    requester_id: int | None = None
    # The commit choice. None: the PR head for a PR, else the default branch head (resolved now).
    commit: str | None = None
    base_branch: str | None = None  # where the bot's PR goes; set together with `commit`
    fork: bool = False  # the PR's head lives in another repository: no push, patch in a comment
    # Set when a run is resumed after a restart, so nothing is posted twice.
    run_id: str | None = None
    status_comment_id: int | None = None
    reaction_id: int | None = None
    restarted: bool = False


@dataclass
class RunOptions:
    results_dir: Path = Path("results")
    prefix: str = "/rlm"
    auth_header: str | None = None  # e.g. basic_auth_header(installation token)
    api_key: str | None = None  # the LLM key; None = LLM_API_KEY from the environment
    draft: bool = False
    can_push_workflows: bool = False
    status_interval: float = 15.0
    read_repo_config: bool = True
    allowed_models: set[str] = field(default_factory=set)
    trace_url: Callable[[str], str | None] | None = None  # run_id -> public URL of the trace


@dataclass
class RunOutcome:
    run_id: str
    # pr, patch_comment, no_changes, only_workflows, timeout, budget, cancelled, error, github_error
    kind: str
    message: str  # the status comment's last line
    pr_url: str | None = None
    result: RolloutResult | None = None

    @property
    def ok(self) -> bool:
        return self.kind in ("pr", "patch_comment", "no_changes")


def requester_identity(request: RunRequest) -> str:
    """The `Co-authored-by:` identity of the person who asked (their noreply address when known)."""
    if request.requester_id:
        return f"{request.requester} <{request.requester_id}+{request.requester}@users.noreply.github.com>"
    return request.requester


def resolve_base(api: GitHubAPI, request: RunRequest) -> tuple[str, str, bool, str]:
    """(commit, base branch for the bot's PR, fork?, default branch)."""
    info = api.get_repo(request.repo)
    default_branch = info.get("default_branch") or "main"
    if request.commit and request.base_branch:
        return request.commit, request.base_branch, request.fork, default_branch
    if request.is_pull:
        pull = api.get_pull(request.repo, request.number)
        head = pull.get("head") or {}
        head_repo = (head.get("repo") or {}).get("full_name")
        fork = head_repo is None or head_repo.lower() != request.repo.lower()
        return head["sha"], head.get("ref") or default_branch, fork, default_branch
    return api.get_branch_sha(request.repo, default_branch), default_branch, False, default_branch


def outcome_for(result: RolloutResult, prefix: str) -> tuple[str, str]:
    """(kind, message) for a finished rollout, before any change is delivered."""
    if result.status == "timeout":
        return "timeout", report.OUTCOME_TIMEOUT
    if result.status == "budget":
        return "budget", report.OUTCOME_BUDGET
    if result.status == "cancelled":
        return "cancelled", report.OUTCOME_CANCELLED.format(prefix=prefix)
    if result.status != "completed":
        return "error", report.OUTCOME_ERROR.format(error=result.error or "unknown error")
    return "no_changes", report.OUTCOME_NO_CHANGES


class _Cancelled(Exception):
    """`/rlm cancel` arrived before the rollout started."""


def status_comment(request: RunRequest, api: GitHubAPI, options: RunOptions,
                   record: Callable[..., None] | None = None) -> StatusComment:  # fmt: skip
    """The request's status comment (not posted yet if it has none); gives the request its run id."""
    record = record or (lambda **_: None)
    if request.run_id is None:
        request.run_id = new_run_id()
        record(run_id=request.run_id)
    trace_url = options.trace_url(request.run_id) if options.trace_url else None
    return StatusComment(api, request.repo, request.number, request.run_id, request.task, prefix=options.prefix,
                         trace_url=trace_url, comment_id=request.status_comment_id,
                         on_created=lambda cid: record(status_comment_id=cid))  # fmt: skip


def _acknowledge(
    request: RunRequest, api: GitHubAPI, status: StatusComment, record: Callable[..., None]
) -> None:
    if request.comment_id and request.reaction_id is None:
        request.reaction_id = api.add_reaction(request.repo, request.comment_id, report.REACTION_SEEN,
                                               review=request.review_comment)  # fmt: skip
        record(reaction_id=request.reaction_id)
    if status.comment_id is None or request.restarted:
        status.show(report.STATUS_QUEUED)


def acknowledge(request: RunRequest, api: GitHubAPI, options: RunOptions,
                record: Callable[..., None] | None = None) -> None:  # fmt: skip
    """👀 on the command and a "queued" status comment, each posted once (their ids go to `record`,
    and `execute_run` then posts neither again). The App does this as soon as a run is accepted,
    before a run worker is free."""
    record = record or (lambda **_: None)
    status = status_comment(request, api, options, record)
    _acknowledge(request, api, status, record)
    request.status_comment_id = status.comment_id


def execute_run(
    request: RunRequest,
    api: GitHubAPI,
    config: Config,
    options: RunOptions,
    *,
    cancel: threading.Event | None = None,
    record: Callable[..., None] | None = None,
) -> RunOutcome:
    """👀 → status comment → prepare → run (live status) → PR / patch comment / reason → 🚀 or 😕.
    `record(**fields)` is told run_id, status_comment_id, reaction_id, commit, base_branch, fork
    as soon as each is known, so a restarted server can resume without posting twice."""
    record = record or (lambda **_: None)
    cancel = cancel or threading.Event()
    status = status_comment(request, api, options, record)
    run_id = status.run_id
    if request.restarted:
        status.notes.append(report.STATUS_RESTARTED)
    outcome: RunOutcome
    result: RolloutResult | None = None
    try:
        _acknowledge(request, api, status, record)
        if cancel.is_set():
            raise _Cancelled
        commit, base_branch, fork, default_branch = resolve_base(api, request)
        request.commit, request.base_branch, request.fork = commit, base_branch, fork
        record(commit=commit, base_branch=base_branch, fork=fork)
        run_config = config
        if options.read_repo_config:
            run_config, problems = load_repo_config(
                api, request.repo, default_branch, config, options.allowed_models
            )
            status.notes += [report.REPO_CONFIG_PROBLEM.format(reason=p) for p in problems]
        status.show(report.STATUS_PREPARING.format(commit=commit[:12]))
        prepared = engine.prepare(
            run_config, request.clone_url, commit=commit, auth_header=options.auth_header
        )
        if cancel.is_set():
            raise _Cancelled
        live = LiveStatus(status, options.status_interval).start()
        try:
            result = engine.run(run_config, prepared, request.task, run_id=run_id, results_dir=options.results_dir,
                                cancel=cancel, on_event=live.on_event, api_key=options.api_key)  # fmt: skip
        finally:
            live.stop()
        outcome = _deliver(api, request, options, prepared, result, status, status.trace_url)
    except _Cancelled:
        outcome = RunOutcome(run_id, "cancelled", report.OUTCOME_CANCELLED.format(prefix=options.prefix))
    except GitHubError as e:
        log.warning("run %s: %s", run_id, e)
        outcome = RunOutcome(
            run_id, "github_error", report.OUTCOME_GITHUB_ERROR.format(error=e), result=result
        )
    except (RLMError, ConfigError, PatchError) as e:
        outcome = RunOutcome(run_id, "error", report.OUTCOME_ERROR.format(error=e), result=result)
    except Exception:  # a bug: logged with its traceback, and the requester is still told
        log.exception("run %s failed unexpectedly", run_id)
        outcome = RunOutcome(run_id, "error", report.OUTCOME_ERROR.format(error=report.INTERNAL_ERROR))
    _finish(api, request, status, outcome)
    return outcome


def _deliver(api: GitHubAPI, request: RunRequest, options: RunOptions, prepared: PreparedRepo, result: RolloutResult,
             status: StatusComment, trace_url: str | None) -> RunOutcome:  # fmt: skip
    kind, message = outcome_for(result, options.prefix)
    if kind != "no_changes" or not result.has_changes:
        return RunOutcome(result.run_id, kind, message, result=result)
    if request.fork:
        api.create_comment(request.repo, request.number, report.patch_comment(result.run_id, result.patch))
        return RunOutcome(result.run_id, "patch_comment", report.OUTCOME_PATCH_COMMENT, result=result)
    status.show(report.STATUS_OPENING_PR)
    outcome, skipped = open_pr(api, request, options, prepared, result, trace_url,
                               base_branch=request.base_branch or "main", source=f"{request.repo}#{request.number}",
                               requester=request.requester, author=requester_identity(request))  # fmt: skip
    if skipped:
        status.notes.append(report.WORKFLOW_FILES_SKIPPED.format(files=", ".join(skipped)))
    return outcome


def open_pr(api: GitHubAPI, request: RunRequest, options: RunOptions, prepared: PreparedRepo,
            result: RolloutResult, trace_url: str | None, *, base_branch: str, source: str | None,
            requester: str | None, author: str) -> tuple[RunOutcome, list[str]]:  # fmt: skip
    """The pull request for a finished rollout's patch (App and Action alike). `requester` is named
    in the body when a person asked; `author` is the commit's `Co-authored-by`. Returns the outcome
    and the workflow files that were left out."""
    body = report.pr_body(result, trace_url, requester=requester, source=source)
    pr = open_pull_request(api, request.repo, prepared=prepared, patch=result.patch, base_branch=base_branch,
                           title=report.pr_title(request.task), body=body, requester=author,
                           branch_name=f"rlm/{request.number or 'run'}-{result.run_id[-6:]}",
                           draft=options.draft, can_push_workflows=options.can_push_workflows)  # fmt: skip
    skipped = list(pr.skipped_workflow_files)
    if pr.url is None:
        if pr.reason == REASON_ONLY_WORKFLOWS:
            return RunOutcome(
                result.run_id, "only_workflows", report.OUTCOME_ONLY_WORKFLOWS, result=result
            ), skipped
        return RunOutcome(result.run_id, "no_changes", report.OUTCOME_NO_CHANGES, result=result), skipped
    outcome = RunOutcome(
        result.run_id, "pr", report.OUTCOME_PR.format(url=pr.url), pr_url=pr.url, result=result
    )
    return outcome, skipped


def _finish(api: GitHubAPI, request: RunRequest, status: StatusComment, outcome: RunOutcome) -> None:
    """Final status edit and reaction swap; GitHub failing here is logged, never raised."""
    lines = [outcome.message]
    if outcome.result is not None:
        lines.append(report.final_totals(outcome.result.results))
    try:
        status.show(*lines, final=True)
    except GitHubError as e:
        log.error("run %s: could not write the final status: %s", outcome.run_id, REDACTOR.redact(str(e)))
    if not request.comment_id:
        return
    try:
        api.add_reaction(request.repo, request.comment_id,
                         report.REACTION_DONE if outcome.ok else report.REACTION_FAILED,
                         review=request.review_comment)  # fmt: skip
        if request.reaction_id:
            api.delete_reaction(
                request.repo, request.comment_id, request.reaction_id, review=request.review_comment
            )
    except GitHubError as e:
        log.error("run %s: could not set the final reaction: %s", outcome.run_id, e)
