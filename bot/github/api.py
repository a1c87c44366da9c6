"""GitHub's REST API, as the bot uses it: PyGithub's transport with our own bounded retries.

Every write that carries user-visible text (comments, PR bodies, commit messages) is redacted here,
so no caller can leak a secret by forgetting to. Retries cover what GitHub asks clients to retry:
502/503/504, 429, and 403 when it is a (secondary) rate limit; `retry-after` is honoured.
"""

from __future__ import annotations

import base64
import logging
import random
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import requests
from github import Github, GithubException
from github.Auth import AppAuthToken, Token

from bot.rlm.secrets import REDACTOR

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.github.com"
RETRY_STATUSES = {429, 502, 503, 504}
PERMISSIONS = ("admin", "maintain", "write", "triage", "read", "none")


class GitHubError(Exception):
    """A GitHub API call failed for good. The message is one sentence a user can read."""

    def __init__(self, message: str, status: int | None = None, data: Any = None):
        super().__init__(message)
        self.status = status
        self.data = data


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def _is_rate_limited(status: int, headers: dict, data: Any) -> bool:
    if status == 429:
        return True
    if status != 403:
        return False
    message = (data or {}).get("message", "") if isinstance(data, dict) else ""
    lower = {k.lower(): v for k, v in (headers or {}).items()}
    return (
        "rate limit" in message.lower() or "retry-after" in lower or lower.get("x-ratelimit-remaining") == "0"
    )


class GitHubAPI:
    """REST calls for one token (`bearer` for the app's JWT). `sleep` and `max_tries` are
    injectable so tests run fast."""

    def __init__(
        self,
        token: str,
        api_url: str = DEFAULT_API_URL,
        *,
        max_tries: int = 5,
        backoff: float = 1.0,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        timeout: int = 30,
        bearer: bool = False,
        refresh: Callable[[], str] | None = None,
    ):
        """`refresh`, when given, returns the current token before each call (an installation
        token expires after an hour; a long run outlives it)."""
        self.api_url = api_url.rstrip("/")
        self.max_tries = max(1, max_tries)
        self.backoff = backoff
        self.max_wait = max_wait
        self.sleep = sleep
        self.timeout = timeout
        self.bearer = bearer
        self.refresh = refresh
        self._token = ""
        self._use(token)

    def _use(self, token: str) -> None:
        REDACTOR.add(token)
        self._token = token
        auth = AppAuthToken(token) if self.bearer else Token(token)
        # PyGithub's own retry and throttling are off: the loop below is the one place that waits.
        self._gh = Github(auth=auth, base_url=self.api_url, timeout=self.timeout, retry=None,
                          seconds_between_requests=None, seconds_between_writes=None,
                          user_agent="rlm-bot")  # fmt: skip

    # ------------------------------------------------------------------ transport

    def _wait_for(self, attempt: int, headers: dict) -> float:
        lower = {k.lower(): v for k, v in (headers or {}).items()}
        if lower.get("retry-after"):
            try:
                return min(self.max_wait, max(0.0, float(lower["retry-after"])))
            except ValueError:
                pass
        if lower.get("x-ratelimit-remaining") == "0" and lower.get("x-ratelimit-reset"):
            try:
                return min(self.max_wait, max(0.0, float(lower["x-ratelimit-reset"]) - time.time()))
            except ValueError:
                pass
        return min(self.max_wait, self.backoff * (2**attempt) * (1 + random.random() / 4))

    def request(self, verb: str, path: str, *, body: Any = None, params: dict | None = None,
                ok_missing: bool = False) -> Any:  # fmt: skip
        """One REST call with bounded retries. Returns parsed JSON (None for an empty body);
        with `ok_missing`, a 404 returns None instead of raising."""
        last = ""
        if self.refresh is not None:
            token = self.refresh()
            if token != self._token:
                self._use(token)
        for attempt in range(self.max_tries):
            try:
                _, data = self._gh.requester.requestJsonAndCheck(verb, path, parameters=params, input=body)
                return data
            except GithubException as e:
                status, headers, data = e.status, dict(e.headers or {}), e.data
                if status == 404 and ok_missing:
                    return None
                message = data.get("message") if isinstance(data, dict) else None
                last = f"{status} {message or 'no message'}"
                if not (status in RETRY_STATUSES or _is_rate_limited(status, headers, data)):
                    raise GitHubError(
                        f"GitHub answered {verb} {path} with {last}.", status=status, data=data
                    ) from None
                wait = self._wait_for(attempt, headers)
            except requests.RequestException as e:
                last = f"{type(e).__name__}"
                wait = self._wait_for(attempt, {})
            if attempt + 1 < self.max_tries:
                log.warning("GitHub %s %s failed (%s); retrying in %.1fs", verb, path, last, wait)
                self.sleep(wait)
        raise GitHubError(
            f"GitHub kept failing on {verb} {path} ({last}) after {self.max_tries} tries; "
            "it may be down or rate limiting this app, so try again later.",
            status=int(last.split()[0]) if last[:3].isdigit() else None,
        )

    # ------------------------------------------------------------------ reads

    def get_permission(self, repo: str, user: str) -> str:
        data = self.request("GET", f"/repos/{repo}/collaborators/{_q(user)}/permission", ok_missing=True)
        if not data:
            return "none"
        role = data.get("permission") or "none"
        return role if role in PERMISSIONS else "none"

    def get_repo(self, repo: str) -> dict:
        return self.request("GET", f"/repos/{repo}")

    def get_pull(self, repo: str, number: int) -> dict:
        return self.request("GET", f"/repos/{repo}/pulls/{number}")

    def get_branch_sha(self, repo: str, branch: str) -> str:
        data = self.request("GET", f"/repos/{repo}/branches/{_q(branch)}")
        return data["commit"]["sha"]

    def get_file(self, repo: str, path: str, ref: str) -> str | None:
        """A text file's content at `ref`, or None when it does not exist."""
        quoted = "/".join(_q(p) for p in path.split("/"))
        data = self.request("GET", f"/repos/{repo}/contents/{quoted}", params={"ref": ref}, ok_missing=True)
        if not isinstance(data, dict) or data.get("type", "file") != "file" or "content" not in data:
            return None
        return base64.b64decode(data["content"]).decode("utf-8", "replace")

    # ------------------------------------------------------------------ request context (reads)

    def get_issue(self, repo: str, number: int) -> dict:
        """An issue or pull request as an issue (title, body, labels, user, author_association)."""
        return self.request("GET", f"/repos/{repo}/issues/{number}")

    def _pages(self, path: str, max_items: int) -> list[dict]:
        items: list[dict] = []
        page = 1
        while len(items) < max_items:
            data = self.request("GET", path, params={"per_page": 100, "page": page}) or []
            items += data
            if len(data) < 100:
                break
            page += 1
        return items[:max_items]

    def list_issue_comments(self, repo: str, number: int, max_pages: int = 10) -> list[dict]:
        """Comments on an issue or pull request, oldest first (at most max_pages × 100)."""
        return self._pages(f"/repos/{repo}/issues/{number}/comments", max_pages * 100)

    def list_pull_files(self, repo: str, number: int, max_files: int = 300) -> list[dict]:
        """A pull request's changed files with their stats and `patch` (absent when binary/large)."""
        return self._pages(f"/repos/{repo}/pulls/{number}/files", max_files)

    def get_review_comment(self, repo: str, comment_id: int) -> dict | None:
        return self.request("GET", f"/repos/{repo}/pulls/comments/{comment_id}", ok_missing=True)

    def list_review_comments(self, repo: str, number: int, max_pages: int = 10) -> list[dict]:
        return self._pages(f"/repos/{repo}/pulls/{number}/comments", max_pages * 100)

    # ------------------------------------------------------------------ comments and reactions

    @staticmethod
    def _reactions_path(repo: str, comment_id: int, review: bool) -> str:
        kind = "pulls" if review else "issues"
        return f"/repos/{repo}/{kind}/comments/{comment_id}/reactions"

    def add_reaction(self, repo: str, comment_id: int, content: str, review: bool = False) -> int | None:
        data = self.request("POST", self._reactions_path(repo, comment_id, review), body={"content": content})
        return (data or {}).get("id")

    def delete_reaction(self, repo: str, comment_id: int, reaction_id: int, review: bool = False) -> None:
        self.request("DELETE", f"{self._reactions_path(repo, comment_id, review)}/{reaction_id}")

    def create_comment(self, repo: str, issue_number: int, body: str) -> int:
        data = self.request("POST", f"/repos/{repo}/issues/{issue_number}/comments",
                            body={"body": REDACTOR.redact(body)})  # fmt: skip
        return int(data["id"])

    def edit_comment(self, repo: str, comment_id: int, body: str) -> None:
        self.request(
            "PATCH", f"/repos/{repo}/issues/comments/{comment_id}", body={"body": REDACTOR.redact(body)}
        )

    # ------------------------------------------------------------------ Git Data and pulls

    def create_blob(self, repo: str, content: bytes) -> str:
        encoded = base64.b64encode(content).decode("ascii")
        data = self.request(
            "POST", f"/repos/{repo}/git/blobs", body={"content": encoded, "encoding": "base64"}
        )
        return data["sha"]

    def create_tree(self, repo: str, base_tree: str, entries: list[dict]) -> str:
        """`entries`: {"path", "mode", "type": "blob", "sha"}; sha None deletes the path."""
        data = self.request(
            "POST", f"/repos/{repo}/git/trees", body={"base_tree": base_tree, "tree": entries}
        )
        return data["sha"]

    def create_commit(self, repo: str, message: str, tree: str, parents: list[str]) -> str:
        body = {"message": REDACTOR.redact(message), "tree": tree, "parents": parents}
        return self.request("POST", f"/repos/{repo}/git/commits", body=body)["sha"]

    def create_ref(self, repo: str, ref: str, sha: str) -> None:
        self.request("POST", f"/repos/{repo}/git/refs", body={"ref": ref, "sha": sha})

    def update_ref(self, repo: str, ref: str, sha: str) -> None:
        """Move `ref` ("heads/branch") to `sha`, fast-forward only (GitHub answers 422 otherwise)."""
        self.request("PATCH", f"/repos/{repo}/git/refs/{ref}", body={"sha": sha, "force": False})

    def update_pull(
        self, repo: str, number: int, *, title: str | None = None, body: str | None = None
    ) -> dict:
        payload = {k: REDACTOR.redact(v) for k, v in (("title", title), ("body", body)) if v is not None}
        return self.request("PATCH", f"/repos/{repo}/pulls/{number}", body=payload)

    def request_reviewers(self, repo: str, number: int, reviewers: list[str]) -> None:
        self.request(
            "POST", f"/repos/{repo}/pulls/{number}/requested_reviewers", body={"reviewers": reviewers}
        )

    def create_pull(
        self, repo: str, *, title: str, head: str, base: str, body: str, draft: bool = False
    ) -> dict:
        payload = {"title": REDACTOR.redact(title), "head": head, "base": base,
                   "body": REDACTOR.redact(body), "draft": draft}  # fmt: skip
        return self.request("POST", f"/repos/{repo}/pulls", body=payload)
