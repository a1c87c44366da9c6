"""The pipeline's Deliverer on GitHub: which commit a request runs on, and where its change goes.

Same-repository requests get a pull request (into the PR's head branch for a PR comment); fork
pull requests get the patch in a comment. Whatever GitHub refuses, the outcome names where the
change is: the pushed branch with a compare link, the patch comment, or the saved patch file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from bot.pipeline import OutcomeKind, RunOutcome, RunRequest, RunState, Target
from bot.rlm import RunMode

from . import messages, review
from .api import GitHubAPI, GitHubError
from .pull_request import REASON_ONLY_WORKFLOWS, created_by_bot, open_pull_request, push_commit
from .repo_config import DeliveryPrefs, PullRequestMode

log = logging.getLogger(__name__)


def requester_identity(request: RunRequest) -> str:
    """The `Co-authored-by:` identity of the person who asked (their noreply address when known)."""
    if request.requester_id:
        return f"{request.requester} <{request.requester_id}+{request.requester}@users.noreply.github.com>"
    return request.requester


def resolve_target(api: GitHubAPI, request: RunRequest) -> Target:
    """The commit (the PR head for a PR, else the head of the request's base branch, else of the
    default branch), the base branch, fork?,
    whether the PR's branch is one this bot made (a follow-up), and for a fork's pull request the
    base commit it targets (the base branch's head when GitHub does not say): setup and AGENTS.md
    come from it. Reads GitHub; changes nothing (the pipeline's `resolve` asks once and records the
    answer on the request)."""
    info = api.get_repo(request.repo)
    default_branch = info.get("default_branch") or "main"
    if request.is_pull:
        pull = api.get_pull(request.repo, request.number)
        head = pull.get("head") or {}
        head_repo = (head.get("repo") or {}).get("full_name")
        fork = head_repo is None or head_repo.lower() != request.repo.lower()
        follow_up = not fork and created_by_bot(pull, request.repo)
        trusted = None
        if fork:
            base = pull.get("base") or {}
            trusted = base.get("sha") or api.get_branch_sha(request.repo, base.get("ref") or default_branch)
        return Target(
            head["sha"], head.get("ref") or default_branch, fork, default_branch, follow_up, trusted
        )
    branch = request.base_branch or default_branch  # the Action's `base-branch`, else the default
    commit = request.commit or api.get_branch_sha(request.repo, branch)
    return Target(commit, branch, False, default_branch)


@dataclass
class DeliveryOptions:
    draft: bool = False
    can_push_workflows: bool = False
    trace_url: str | None = None  # the run's trace page (App) or workflow run (Action)
    patch_url: str | None = None  # where the full patch file can be downloaded
    # The commit's `Co-authored-by` and whether the PR body names the requester (a run no person
    # asked for, e.g. a scheduled Action, is authored by the Actions bot).
    author: Callable[[RunRequest], str] = requester_identity
    name_requester: Callable[[RunRequest], bool] = lambda request: bool(request.requester)
    source: Callable[[RunRequest], str | None] = lambda request: request.source
    keep_branch_without_pr: bool = True  # False: delete our branch when the PR is refused (Action)


class GitHubDeliverer:
    def __init__(
        self,
        api: GitHubAPI,
        options: DeliveryOptions,
        on_pushed: Callable[[RunRequest], None] | None = None,
        prefs: DeliveryPrefs | None = None,
    ):
        self.api, self.options = api, options
        self.on_pushed = on_pushed or (lambda _request: None)
        self.prefs = prefs or DeliveryPrefs()

    def use_prefs(self, prefs: DeliveryPrefs) -> None:
        """The repository's `.github/rlm.yml` delivery keys (RepoConfigStage hands them over)."""
        self.prefs = prefs

    def target(self, request: RunRequest) -> Target:
        return resolve_target(self.api, request)

    def patch_link(self, run_id: str) -> str:
        if self.options.patch_url:
            return messages.PATCH_LINK.format(name=f"{run_id}.patch", url=self.options.patch_url)
        return f"`{run_id}.patch`"

    def deliver(self, state: RunState) -> RunOutcome:
        outcome = self._deliver(state)
        if state.partial and state.result is not None:
            return partial_outcome(outcome, state.result.results)
        return outcome

    def _deliver(self, state: RunState) -> RunOutcome:
        request, result = state.request, state.result
        assert result is not None and state.prepared is not None
        if result.mode is RunMode.REVIEW:
            return self._review(state)
        if request.fork:
            body = messages.patch_comment(result.run_id, result.patch, self.options.patch_url)
            url = self.api.post_comment(request.repo, request.number, body).get(
                "html_url"
            ) or self.patch_link(result.run_id)
            return RunOutcome(
                result.run_id, OutcomeKind.PATCH_COMMENT, messages.OUTCOME_PATCH_COMMENT.format(url=url)
            )
        if request.is_pull and (request.follow_up or self.prefs.pull_requests is PullRequestMode.PUSH):
            return self._push(state)
        o = self.options
        partial = messages.partial_note(result.results) if state.partial else None
        by_person = o.name_requester(request)
        source = o.source(request)
        closes = (
            request.number if request.number and not request.is_pull and self.prefs.closes_issue else None
        )
        pr = open_pull_request(
            self.api,
            request.repo,
            prepared=state.prepared,
            patch=result.patch,
            base_branch=request.base_branch or request.default_branch or "main",
            title=messages.pr_title_from(result.answer, request.task),
            body=lambda skipped: messages.pr_body(
                result,
                o.trace_url,
                requester=request.requester if by_person and source else None,
                source=source,
                notes=_workflow_note(skipped),
                closes=closes,
                partial_note=partial,
            ),
            requester=o.author(request),
            branch_name=request.pushed_branch or branch_name(request),
            draft=o.draft or partial is not None,  # a partial change is a draft, whatever the setting
            can_push_workflows=o.can_push_workflows,
            on_pushed=lambda branch: self._pushed(request, branch),
            keep_branch=o.keep_branch_without_pr,
        )
        notes = _workflow_note(pr.skipped_workflow_files)
        if pr.url is not None:
            if self.prefs.request_review and by_person and pr.number:
                notes += self._ask_review(request, pr.number)
            message = messages.OUTCOME_PR.format(url=pr.url)
            return RunOutcome(
                result.run_id, OutcomeKind.PR, message, pr_url=pr.url, branch=pr.branch, notes=notes
            )
        if pr.reason == REASON_ONLY_WORKFLOWS:
            message = messages.OUTCOME_ONLY_WORKFLOWS.format(patch=self.patch_link(result.run_id))
            return RunOutcome(result.run_id, OutcomeKind.ONLY_WORKFLOWS, message, notes=notes)
        if pr.error is None:
            return RunOutcome(result.run_id, OutcomeKind.NO_CHANGES, messages.OUTCOME_NO_CHANGES, notes=notes)
        if pr.branch is None:  # refused, and our branch was taken away again: the patch is the change
            message = messages.OUTCOME_PR_REFUSED.format(error=pr.error, patch=self.patch_link(result.run_id))
            return RunOutcome(result.run_id, OutcomeKind.DELIVERY_ERROR, message, notes=notes)
        compare = self.api.compare_url(request.repo, request.base_branch or "main", pr.branch)
        message = messages.OUTCOME_BRANCH.format(
            branch=pr.branch, compare=compare, error=pr.error, patch=self.patch_link(result.run_id)
        )
        return RunOutcome(
            result.run_id, OutcomeKind.BRANCH, message, branch=pr.branch, compare_url=compare, notes=notes
        )

    def _review(self, state: RunState) -> RunOutcome:
        """A review run: its findings as one review on the pull request's head (nothing is pushed,
        so a fork's pull request is reviewed the same way)."""
        request, result = state.request, state.result
        assert result is not None
        summary = "\n\n".join(
            p for p in ((result.answer or "").strip(), messages.report_section(result.report)) if p
        )
        footer = review.review_footer(result, messages.trace_line(self.options.trace_url, result.run_id))
        return review.deliver_review(
            self.api,
            request.repo,
            request.number,
            request.commit or state.prepared.commit,
            result,
            summary=summary,
            footer=footer,
        )

    def _ask_review(self, request: RunRequest, number: int) -> list[str]:
        """The requester is asked to review the bot's PR; GitHub refusing it is a note, not a failure."""
        if not request.requester or request.requester.endswith("[bot]"):
            return []
        try:
            self.api.request_reviewers(request.repo, number, [request.requester])
        except GitHubError as e:
            log.info("could not request a review from %s: %s", request.requester, e)
            return [messages.REVIEW_REQUEST_FAILED.format(requester=request.requester, error=e)]
        return []

    def _push(self, state: RunState) -> RunOutcome:
        """A follow-up: one commit on top of the PR's head branch (where the agents worked), and, on
        the bot's own PR, its description updated. Someone else's PR keeps its description."""
        request, result, o = state.request, state.result, self.options
        assert result is not None and state.prepared is not None
        branch = request.base_branch or ""
        try:
            pushed = push_commit(
                self.api,
                request.repo,
                prepared=state.prepared,
                patch=result.patch,
                branch=branch,
                title=messages.pr_title_from(result.answer, request.task),
                requester=o.author(request),
                can_push_workflows=o.can_push_workflows,
            )
        except GitHubError as e:
            if e.status != 422:
                raise
            return RunOutcome(
                result.run_id,
                OutcomeKind.DELIVERY_ERROR,
                messages.OUTCOME_PUSH_MOVED.format(branch=branch),
                error=str(e),
            )
        notes = _workflow_note(pushed.skipped_workflow_files)
        if pushed.sha is None:
            if pushed.reason == REASON_ONLY_WORKFLOWS:
                message = f"{messages.OUTCOME_ONLY_WORKFLOWS} {self.patch_link(result.run_id)}"
                return RunOutcome(result.run_id, OutcomeKind.ONLY_WORKFLOWS, message, notes=notes)
            return RunOutcome(result.run_id, OutcomeKind.NO_CHANGES, messages.OUTCOME_NO_CHANGES, notes=notes)
        request.pushed_branch = branch
        self.on_pushed(request)
        pull = self.api.get_pull(request.repo, request.number)
        url = pull.get("html_url") or f"#{request.number}"
        if request.follow_up:
            partial = messages.partial_note(result.results) if state.partial else None
            body = messages.pr_body(result, o.trace_url, notes=notes, partial_note=partial)
            try:
                self.api.update_pull(
                    request.repo,
                    request.number,
                    body=messages.follow_up_body(
                        body,
                        pull.get("body"),
                        run_id=result.run_id,
                        requester=request.requester,
                        task=request.task,
                    ),
                )
            except GitHubError as e:
                log.warning("could not update the description of %s: %s", url, e)
                notes.append(messages.PR_UPDATE_FAILED.format(url=url, error=e))
        message = messages.OUTCOME_PUSHED.format(sha=pushed.sha[:12], branch=branch, url=url)
        return RunOutcome(result.run_id, OutcomeKind.PUSHED, message, pr_url=url, branch=branch, notes=notes)

    def _pushed(self, request: RunRequest, branch: str) -> None:
        request.pushed_branch = branch
        self.on_pushed(request)


def partial_outcome(outcome: RunOutcome, results: dict) -> RunOutcome:
    """The outcome of a change the cost cap cut short, saying so first."""
    note = messages.partial_note(results)
    outcome.message = messages.OUTCOME_PARTIAL.format(note=note, outcome=outcome.message)
    return outcome


def branch_name(request: RunRequest) -> str:
    return f"rlm/{request.number or 'run'}-{(request.run_id or '')[-6:]}"


def _workflow_note(skipped: list[str]) -> list[str]:
    return [messages.WORKFLOW_FILES_SKIPPED.format(files=", ".join(skipped))] if skipped else []
