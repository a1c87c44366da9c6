"""How a run ended: the outcome kinds, the outcome itself, and the delivery target.

Kinds are str-valued so the job store keeps storing the same strings it always did.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the engine (and litellm) is not imported just to describe an outcome
    from bot.rlm import RolloutResult


class OutcomeKind(str, enum.Enum):
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
    GITHUB_ERROR = "github_error"

    def __str__(self) -> str:
        return self.value

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


@dataclass
class Target:
    """Where the run starts and where its change goes."""

    commit: str | None  # None: resolved when the repository is fetched (CLI)
    base_branch: str | None = None
    fork: bool = False
    default_branch: str | None = None


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
    error: str | None = None  # the failure's own sentence (ERROR, GITHUB_ERROR), without decoration
    review_url: str | None = None  # the posted review (REVIEW)

    @property
    def ok(self) -> bool:
        return self.kind.ok
