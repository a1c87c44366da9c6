"""What the runner tells the step about the workflow run: event, repository, commit, URLs, paths."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class ContextError(Exception):
    """The step is not running inside a GitHub Actions job (or a variable is missing)."""


COMMENT_EVENTS = ("issue_comment", "pull_request_review_comment")
PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target")


@dataclass(frozen=True)
class ActionContext:
    event_name: str
    event: dict = field(repr=False)
    repository: str  # owner/name
    sha: str
    ref: str
    api_url: str
    server_url: str
    run_id: str
    workspace: Path
    temp_dir: Path

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ActionContext:
        env = os.environ if environ is None else environ
        missing = [n for n in ("GITHUB_EVENT_NAME", "GITHUB_REPOSITORY") if not env.get(n)]
        if missing:
            raise ContextError(
                f"{' and '.join(missing)} not set: run this action as a step of a GitHub Actions job."
            )
        event: dict = {}
        path = env.get("GITHUB_EVENT_PATH")
        if path:
            try:
                event = json.loads(Path(path).read_text(encoding="utf-8")) or {}
            except (OSError, ValueError) as e:
                raise ContextError(f"the event payload {path} cannot be read: {e}.") from None
        workspace = Path(env.get("GITHUB_WORKSPACE") or os.getcwd())
        temp = Path(env.get("RUNNER_TEMP") or "/tmp")
        return cls(
            event_name=env["GITHUB_EVENT_NAME"],
            event=event if isinstance(event, dict) else {},
            repository=env["GITHUB_REPOSITORY"],
            sha=env.get("GITHUB_SHA", ""),
            ref=env.get("GITHUB_REF", ""),
            api_url=(env.get("GITHUB_API_URL") or "https://api.github.com").rstrip("/"),
            server_url=(env.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/"),
            run_id=env.get("GITHUB_RUN_ID", ""),
            workspace=workspace,
            temp_dir=temp / "rlm-bot",
        )

    # ------------------------------------------------------------------ derived

    @property
    def is_comment(self) -> bool:
        return self.event_name in COMMENT_EVENTS

    @property
    def run_url(self) -> str:
        """The workflow run's page: where the log, the step summary and the artifacts are."""
        if not self.run_id:
            return ""
        return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}"

    @property
    def clone_url(self) -> str:
        """Where the repository is fetched from. On github.com and GHES the payload's clone_url
        and `<server>/<owner>/<name>.git` are the same URL; the payload's wins when it describes
        this repository (it is what the App uses, and what tests point at a local bare repo)."""
        repo = self.event.get("repository") or {}
        url = repo.get("clone_url") if isinstance(repo, dict) else None
        if url and repo.get("full_name", "").lower() == self.repository.lower():
            return url
        return f"{self.server_url}/{self.repository}.git"

    @property
    def repository_id(self) -> int | None:
        """GitHub's id of this repository (the environment cache's scope)."""
        repo = self.event.get("repository") or {}
        value = repo.get("id") if isinstance(repo, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def branch(self) -> str:
        """The branch the workflow runs on (GITHUB_REF refs/heads/<name>), else empty."""
        prefix = "refs/heads/"
        return self.ref[len(prefix) :] if self.ref.startswith(prefix) else ""

    @property
    def comment(self) -> dict:
        return self.event.get("comment") or {} if self.is_comment else {}

    @property
    def issue_number(self) -> int | None:
        """The issue or pull request the triggering comment is on."""
        if self.event_name == "issue_comment":
            return (self.event.get("issue") or {}).get("number")
        if self.event_name == "pull_request_review_comment":
            return (self.event.get("pull_request") or {}).get("number")
        return None

    @property
    def pull_number(self) -> int | None:
        """The pull request a `pull_request` (or `pull_request_target`) event is about."""
        if self.event_name in PULL_REQUEST_EVENTS:
            return (self.event.get("pull_request") or {}).get("number")
        return None

    @property
    def on_pull_request(self) -> bool:
        if self.event_name == "pull_request_review_comment":
            return True
        return bool((self.event.get("issue") or {}).get("pull_request")) if self.is_comment else False
