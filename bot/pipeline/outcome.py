"""How a run ended: the outcome kinds, the outcome itself, and the delivery target.

Kinds are str-valued so the job store keeps storing the same strings it always did.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bot.common.enums import StrEnum

if TYPE_CHECKING:  # the engine (and litellm) is not imported just to describe an outcome
    from bot.rlm import RolloutResult


class OutcomeKind(StrEnum):
    PR = "pr"  # a pull request was opened (or an open one from our branch was found)
    PUSHED = "pushed"  # the change was pushed onto an existing branch (follow-ups)
    BRANCH = "branch"  # the change is on a pushed branch, but no pull request could be opened
    PATCH_COMMENT = "patch_comment"  # the patch is in a comment (fork pull requests)
    PATCH = "patch"  # the patch went to a file, stdout or an artifact (CLI, Action without a PR)
    NO_CHANGES = "no_changes"
    ANSWER = "answer"  # the run answered (a question) and changed no files: the answer is the result
    REVIEW = "review"  # a review run posted its findings as a pull request review
    ONLY_WORKFLOWS = "only_workflows"  # every change is under .github/workflows/: patch file only
    TIMEOUT = "timeout"
    BUDGET = "budget"
    CANCELLED = "cancelled"
    ERROR = "error"
    DELIVERY_ERROR = "github_error"  # a DeliveryError (the stored string predates the name)

    @property
    def ok(self) -> bool:
        """The run did what was asked (the requester gets 🚀)."""
        return self in _OK


_OK = {
    OutcomeKind.PR,
    OutcomeKind.PUSHED,
    OutcomeKind.PATCH_COMMENT,
    OutcomeKind.PATCH,
    OutcomeKind.NO_CHANGES,
    OutcomeKind.ANSWER,
    OutcomeKind.REVIEW,
}


@dataclass(frozen=True)
class OutcomeWords:
    """How a front end words the outcomes the pipeline decides itself (the rest are worded by the
    front end's Deliverer). Each front end passes its own in `RunSettings.words` (the CLI's
    CLI_WORDS are these neutral defaults; the App's and the Action's GITHUB_WORDS.with_prefix(p)).
    `{prefix}` is the command prefix (`prefix`: the App's or Action's; "" for the CLI), `{error}` the failure's sentence,
    `{where}` where the saved patch can be had, `{cap}` the run's cost cap in US dollars."""

    timeout: str = "⏱️ The run hit its time limit before finishing."
    budget: str = "⛔ The run used up its budget (sandboxes, iterations or cost)."
    cost_cap: str = "⛔ The run reached its cost cap of ${cap:.2f} before it finished, and changed no files."
    cancelled: str = "🚫 The run was cancelled."
    no_changes: str = "✅ Done, but the agents changed no files."
    answered: str = "✅ Answered; no files were changed."  # the answer is the result (ANSWER)
    error: str = "❌ The run failed: {error}"
    internal_error: str = "an internal error in rlm-bot (the log has the details)"
    delivery_error: str = "❌ Delivering the change failed: {error}"
    patch_saved: str = "The patch is saved: {where}."
    prefix: str = ""

    def with_prefix(self, prefix: str) -> OutcomeWords:
        """These words for a front end whose command prefix is `prefix` (the App's, the Action's)."""
        return dataclasses.replace(self, prefix=prefix)


@dataclass
class Target:
    """Where the run starts and where its change goes."""

    commit: str | None  # None: resolved when the repository is fetched (CLI)
    base_branch: str | None = None
    fork: bool = False
    default_branch: str | None = None
    follow_up: bool = False  # the PR's head branch is one this bot made: the change is pushed onto it
    trusted_commit: str | None = None  # a fork's pull request: the base commit setup runs on


@dataclass
class RunOutcome:
    run_id: str
    kind: OutcomeKind
    message: str  # one line for people: the status comment's last line, the step's annotation
    pr_url: str | None = None
    branch: str | None = None  # the pushed branch holding the change, if any
    compare_url: str | None = None
    patch_path: Path | None = None  # `<run_id>.patch` beside the results, when there is a change
    result: RolloutResult | None = None
    notes: list[str] = field(default_factory=list)  # said on the way (skipped workflow files, ...)
    error: str | None = None  # the failure's own sentence (ERROR, DELIVERY_ERROR), without decoration
    partial: bool = False  # the cost cap stopped the tree; the change delivered is what it made so far
    review_url: str | None = None  # the posted review (REVIEW)

    @property
    def ok(self) -> bool:
        return self.kind.ok
