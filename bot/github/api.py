"""GitHub's REST API, as the bot uses it: PyGithub's transport with our own bounded retries.

Every write that carries user-visible text (comments, PR bodies, commit messages) is redacted here,
so no caller can leak a secret by forgetting to. Retries (bot.common.retry, tenacity) cover
rate limits (429, a secondary-limit 403; `retry-after` honoured) always, and 5xx or a dropped
connection for reads and for writes that are idempotent or whose effect is checked first.
"""

from __future__ import annotations

import base64
import logging
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from github import Github, GithubException
from github.Auth import AppAuthToken, Auth, Token

from bot.common.retry import call_with_retries
from bot.common.secrets import REDACTOR
from bot.common.version import USER_AGENT

from .failure import MISSING, Failure, GitHubError

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_API_URL = "https://api.github.com"
PERMISSIONS = ("admin", "maintain", "write", "triage", "read", "none")


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


class GitHubAPI:
    """REST calls as one identity: a token string (`bearer` for the app's JWT) or a PyGithub auth
    object (an installation's, which renews its own token). `sleep` and `max_tries` are
    injectable so tests run fast."""

    def __init__(
        self,
        token: str | Auth,
        api_url: str = DEFAULT_API_URL,
        *,
        max_tries: int = 5,
        backoff: float = 1.0,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        timeout: int = 30,
        bearer: bool = False,
    ):
        self.api_url = api_url.rstrip("/")
        self.max_tries = max(1, max_tries)
        self.backoff = backoff
        self.max_wait = max_wait
        self.sleep = sleep
        self.timeout = timeout
        if isinstance(token, str):
            REDACTOR.add(token)
            auth: Auth = AppAuthToken(token) if bearer else Token(token)
        else:
            auth = token
        self._auth = auth
        # PyGithub's own retry and throttling are off: bot.common.retry is the one place that waits, and
        # it knows which writes may be repeated.
        self._gh = Github(
            auth=auth,
            base_url=self.api_url,
            timeout=self.timeout,
            retry=None,
            seconds_between_requests=None,
            seconds_between_writes=None,
            user_agent=USER_AGENT,
        )

    # ------------------------------------------------------------------ transport

    def _wait_hint(self, exc: BaseException) -> float | None:
        """What GitHub asked for: `Retry-After`, or the rate limit's reset time."""
        headers = getattr(exc, "headers", None) or {}
        if headers.get("retry-after"):
            try:
                return float(headers["retry-after"])
            except ValueError:
                return None
        if headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset"):
            try:
                return float(headers["x-ratelimit-reset"]) - time.time()
            except ValueError:
                return None
        return None

    def _once(self, verb: str, path: str, body: Any, params: dict | None) -> Any:
        return self._attempt(
            lambda: self._gh.requester.requestJsonAndCheck(verb, path, parameters=params, input=body)[1]
        )

    @staticmethod
    def _attempt(fn: Callable[[], T]) -> T:
        """`fn()`, with PyGithub's and requests' failures as one attempt's Failure."""
        try:
            return fn()
        except GithubException as e:
            headers = {k.lower(): v for k, v in dict(e.headers or {}).items()}
            raise Failure(e.status, headers, e.data) from None
        except requests.RequestException as e:
            raise Failure(None, {}, None, type(e).__name__) from None

    def request(
        self,
        verb: str,
        path: str,
        *,
        body: Any = None,
        params: dict | None = None,
        ok_missing: bool = False,
        idempotent: bool | None = None,
        check: Callable[[], Any] | None = None,
    ) -> Any:
        """One REST call with bounded retries. Returns parsed JSON (None for an empty body);
        with `ok_missing`, a 404 returns None instead of raising.

        Rate limits (429, a secondary-limit 403) mean GitHub did nothing: always retried. A 5xx
        or a dropped connection may have done the write: retried for reads and idempotent
        writes (`idempotent`, default: every verb but POST); for any other write `check()` is
        asked first and, when it finds the effect (returns not None), that is the answer."""
        if idempotent is None:
            idempotent = verb != "POST"

        def attempt() -> Any:
            try:
                return self._once(verb, path, body, params)
            except Failure as failed:
                if failed.status == 404 and ok_missing:
                    return MISSING
                if failed.transient and not idempotent and check is not None:
                    found = check()
                    if found is not None:
                        log.info("GitHub %s %s failed (%s) but had taken effect", verb, path, failed.summary)
                        return found
                raise

        def retry_if(exc: BaseException) -> bool:
            return isinstance(exc, Failure) and (
                exc.rate_limited or (exc.transient and (idempotent or check is not None))
            )

        data = self._with_retries(attempt, retry_if, verb, path)
        return None if data is MISSING else data

    def _with_retries(
        self, attempt: Callable[[], Any], retry_if: Callable[[BaseException], bool], verb: str, path: str
    ) -> Any:
        """`attempt()` under this client's retry policy; the last failure as a GitHubError."""
        try:
            return call_with_retries(
                attempt,
                retry_if=retry_if,
                tries=self.max_tries,
                base=self.backoff,
                cap=self.max_wait,
                wait_hint=self._wait_hint,
                sleep=self.sleep,
                describe=f"GitHub {verb} {path}",
            )
        except Failure as failed:
            raise failed.error(verb, path, self.max_tries) from None

    def auth_token(self) -> str:
        """The token this client sends, for git over HTTPS. An installation's is fetched (or
        renewed near its expiry) here, retried like a read: a 5xx on GitHub's token endpoint does
        not end a run that is about to clone."""
        where = f"/app/installations/{getattr(self._auth, 'installation_id', '{id}')}/access_tokens"
        return self._with_retries(
            lambda: self._attempt(lambda: self._auth.token),
            lambda e: isinstance(e, Failure) and (e.rate_limited or e.transient),
            "POST",
            where,
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
        # GitHub answers a repeated reaction with the existing one: safe to retry.
        data = self.request(
            "POST", self._reactions_path(repo, comment_id, review), body={"content": content}, idempotent=True
        )
        return (data or {}).get("id")

    def delete_reaction(self, repo: str, comment_id: int, reaction_id: int, review: bool = False) -> None:
        self.request(
            "DELETE", f"{self._reactions_path(repo, comment_id, review)}/{reaction_id}", ok_missing=True
        )

    def post_comment(self, repo: str, issue_number: int, body: str) -> dict:
        """A new comment (its JSON: id, html_url). A 5xx is retried only after checking that the
        comment was not created anyway."""
        text = REDACTOR.redact(body)
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 120))

        def posted() -> dict | None:
            comments = (
                self.request(
                    "GET",
                    f"/repos/{repo}/issues/{issue_number}/comments",
                    params={"since": since, "per_page": 100},
                )
                or []
            )
            return next((c for c in reversed(comments) if c.get("body") == text), None)

        return self.request(
            "POST", f"/repos/{repo}/issues/{issue_number}/comments", body={"body": text}, check=posted
        )

    def create_comment(self, repo: str, issue_number: int, body: str) -> int:
        return int(self.post_comment(repo, issue_number, body)["id"])

    def edit_comment(self, repo: str, comment_id: int, body: str) -> None:
        self.request(
            "PATCH", f"/repos/{repo}/issues/comments/{comment_id}", body={"body": REDACTOR.redact(body)}
        )

    # ------------------------------------------------------------------ Git Data and pulls
    # Blobs, trees and commits are addressed by their content: creating one twice is harmless.

    def create_blob(self, repo: str, content: bytes) -> str:
        encoded = base64.b64encode(content).decode("ascii")
        data = self.request(
            "POST",
            f"/repos/{repo}/git/blobs",
            body={"content": encoded, "encoding": "base64"},
            idempotent=True,
        )
        return data["sha"]

    def create_tree(self, repo: str, base_tree: str, entries: list[dict]) -> str:
        """`entries`: {"path", "mode", "type": "blob", "sha"}; sha None deletes the path."""
        data = self.request(
            "POST",
            f"/repos/{repo}/git/trees",
            body={"base_tree": base_tree, "tree": entries},
            idempotent=True,
        )
        return data["sha"]

    def create_commit(self, repo: str, message: str, tree: str, parents: list[str]) -> str:
        body = {"message": REDACTOR.redact(message), "tree": tree, "parents": parents}
        return self.request("POST", f"/repos/{repo}/git/commits", body=body, idempotent=True)["sha"]

    def get_ref_sha(self, repo: str, ref: str) -> str | None:
        """The commit `ref` (e.g. `heads/rlm/7-abc123`) points at, or None when it does not exist."""
        data = self.request("GET", f"/repos/{repo}/git/ref/{_path(ref)}", ok_missing=True)
        if not isinstance(data, dict):  # a prefix of several refs answers with a list
            return None
        return (data.get("object") or {}).get("sha")

    def same_change(self, repo: str, commit: str, *, tree: str, parent: str) -> bool:
        """Whether `commit` has this tree on this single parent (the same change, made again)."""
        data = self.request("GET", f"/repos/{repo}/git/commits/{commit}", ok_missing=True) or {}
        parents = [p.get("sha") for p in data.get("parents") or []]
        return (data.get("tree") or {}).get("sha") == tree and parents == [parent]

    def create_ref(self, repo: str, ref: str, sha: str) -> None:
        def made() -> dict | None:
            return {"ref": ref} if self.get_ref_sha(repo, ref.removeprefix("refs/")) == sha else None

        self.request("POST", f"/repos/{repo}/git/refs", body={"ref": ref, "sha": sha}, check=made)

    def delete_ref(self, repo: str, ref: str) -> bool:
        """Delete `ref` (e.g. `heads/x`); False when GitHub would not."""
        try:
            self.request("DELETE", f"/repos/{repo}/git/refs/{_path(ref)}", ok_missing=True)
            return True
        except GitHubError as e:
            log.warning("could not delete %s on %s: %s", ref, repo, e)
            return False

    def find_open_pull(self, repo: str, branch: str) -> dict | None:
        """The open pull request from `branch` of `repo` itself, if there is one."""
        owner = repo.split("/")[0]
        pulls = self.request(
            "GET", f"/repos/{repo}/pulls", params={"head": f"{owner}:{branch}", "state": "open"}
        )
        return pulls[0] if isinstance(pulls, list) and pulls else None

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
        payload = {
            "title": REDACTOR.redact(title),
            "head": head,
            "base": base,
            "body": REDACTOR.redact(body),
            "draft": draft,
        }
        return self.request(
            "POST", f"/repos/{repo}/pulls", body=payload, check=lambda: self.find_open_pull(repo, head)
        )

    # ------------------------------------------------------------------ reviews and check runs

    def create_review(
        self, repo: str, number: int, *, commit_id: str, body: str, comments: list[dict]
    ) -> dict:
        """One review with inline comments; always `event: COMMENT` (the bot never approves or
        requests changes). A 5xx is retried only after checking the review was not posted."""
        payload = {
            "commit_id": commit_id,
            "body": REDACTOR.redact(body),
            "event": "COMMENT",
            "comments": [{**c, "body": REDACTOR.redact(c["body"])} for c in comments],
        }

        def posted() -> dict | None:
            reviews = self.request("GET", f"/repos/{repo}/pulls/{number}/reviews", params={"per_page": 100})
            return next((r for r in reversed(reviews or []) if r.get("body") == payload["body"]), None)

        return self.request("POST", f"/repos/{repo}/pulls/{number}/reviews", body=payload, check=posted)

    def create_check_run(self, repo: str, body: dict) -> dict:
        # A repeated create makes a second check run of the same name: harmless, GitHub shows the newest.
        return self.request("POST", f"/repos/{repo}/check-runs", body=_redact_output(body), idempotent=True)

    def update_check_run(self, repo: str, check_run_id: int, body: dict) -> dict:
        return self.request("PATCH", f"/repos/{repo}/check-runs/{check_run_id}", body=_redact_output(body))

    def compare_url(self, repo: str, base: str, head: str) -> str:
        """The web page comparing `head` with `base` (where a pull request can be opened by hand)."""
        return f"{web_url(self.api_url)}/{repo}/compare/{_path(base)}...{_path(head)}"


def _redact_output(body: dict) -> dict:
    """A check run's body with its user-visible text (output title, summary, text, annotations)
    redacted."""
    output = body.get("output")
    if not isinstance(output, dict):
        return body
    clean = {k: REDACTOR.redact(v) if isinstance(v, str) else v for k, v in output.items()}
    if isinstance(output.get("annotations"), list):
        clean["annotations"] = [
            {k: REDACTOR.redact(v) if isinstance(v, str) else v for k, v in a.items()}
            for a in output["annotations"]
        ]
    return {**body, "output": clean}


def _path(ref: str) -> str:
    return "/".join(_q(p) for p in ref.split("/"))


def web_url(api_url: str) -> str:
    """github.com for api.github.com; the server itself for GitHub Enterprise (`…/api/v3`)."""
    if api_url.rstrip("/") == DEFAULT_API_URL:
        return "https://github.com"
    return api_url.rstrip("/").removesuffix("/api/v3")
