"""The run request: what was asked, on which repository and commit, and what is already done.

A `RunRequest` IS the job payload: `to_payload()` gives the JSON object the job store keeps
verbatim, `from_payload()` reads it back (keys it does not know are kept in `extra`, so a payload
written by a newer or older version survives a round trip unchanged). The pipeline fills in the
fields marked "progress" as the run goes and tells its reporter, so a run resumed after a restart
posts nothing twice and repeats no delivery step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunRequest:
    task: str
    clone_url: str  # a git URL or local path (CLI); from the signed payload (App); the runner's (Action)
    repo: str = ""  # owner/name on GitHub; "" for a local run
    repo_id: int | None = None  # GitHub's repository id: whose caches (environments) the run uses
    number: int = 0  # issue or pull request number; 0 = no issue to talk on
    requester: str = ""  # login of the person who asked
    requester_id: int | None = None
    comment_id: int | None = None
    review_comment: bool = False  # the command came as a pull request review comment
    is_pull: bool = False
    html_url: str | None = None  # the issue or pull request page
    # The commit choice. None: the PR head for a PR, else the default branch head (resolved at run).
    commit: str | None = None
    branch: str | None = None  # a branch to take the head of (CLI `-b`)
    base_branch: str | None = None  # where the bot's PR goes; set together with `commit`
    default_branch: str | None = None  # the repository's, once known (saves asking GitHub again)
    fork: bool = False  # the PR's head lives in another repository: no push, patch in a comment
    # A fork's pull request: the base commit it targets. Setup runs on it and AGENTS.md comes from
    # it; the fork's own code only ever runs inside the agents' sandboxes.
    trusted_commit: str | None = None
    follow_up: bool = False  # the PR's head branch is one this bot made: the change is pushed onto it
    # Request context for the root agent (issue/PR text, thread, diff) as markdown; None = none.
    context: str | None = None
    mode: str = "change"  # bot.rlm.RunMode: `review` is a read-only run that posts one PR review
    started_by: str | None = None  # how a run no command started began (a label, an assignment)
    # ---- progress: set by the pipeline, stored as it goes
    run_id: str | None = None
    acknowledged: bool = False  # the requester was told the run is accepted (👀, status comment)
    ack_notes: list[str] = field(default_factory=list)  # what acknowledging could not do (a 👀 refused)
    status_comment_id: int | None = None
    reaction_id: int | None = None
    pushed_branch: str | None = None  # the branch holding the change, once pushed
    check_run_id: int | None = None  # the run's check run, once created (a resumed run reuses it)
    restarted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # payload keys this version does not know

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> RunRequest:
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: v for k, v in data.items() if k in known}
        extra = {k: v for k, v in data.items() if k not in known}
        if values.get("number") is None:
            values["number"] = 0
        return cls(**values, extra=extra)

    def to_payload(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**self.extra, **data}

    def progress(self) -> dict[str, Any]:
        """The fields the pipeline sets while running (what a store update needs)."""
        names = (
            "run_id",
            "acknowledged",
            "ack_notes",
            "status_comment_id",
            "reaction_id",
            "pushed_branch",
            "check_run_id",
            "commit",
            "base_branch",
            "fork",
            "trusted_commit",
            "default_branch",
            "follow_up",
        )
        return {name: getattr(self, name) for name in names}

    @property
    def source(self) -> str | None:
        """`owner/name#123`, where the request came from; None for a local run."""
        return f"{self.repo}#{self.number}" if self.repo and self.number else None
