"""A small fake of GitHub's REST API, served over HTTP on loopback, keyed by URL.

It records every request (method, path, JSON body) so tests can assert the exact writes, and it
implements the Git Data API on a real local bare repository (blobs, trees on a base tree, commits,
refs), so a test can check out the bot's branch and read the file it changed. Faults (status,
headers, how many times) can be injected per method + path pattern.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

BODY_LIMIT = 65536  # characters in an issue comment or pull request body


class _KeepAliveHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"  # like GitHub: clients keep their connection between calls


@dataclass
class Call:
    method: str
    path: str
    query: dict
    body: Any
    auth: str
    agent: str = ""  # the User-Agent header


@dataclass
class Fault:
    method: str
    pattern: str
    status: int
    times: int
    headers: dict = field(default_factory=dict)
    message: str = "fault"
    errors: list | None = None  # GitHub's `errors[]` (what a 422 says was wrong)
    after: bool = False  # answer with the fault AFTER doing the request (a write that took effect)


def _git(bare: str, *args: str, input: bytes | None = None, env: dict | None = None) -> bytes:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        ["git", f"--git-dir={bare}", *args], input=input, capture_output=True, check=True, env=full_env
    ).stdout


class FakeGitHub:
    def __init__(
        self,
        *,
        installation_token: str = "fake-installation-token-0123456789",
        app_slug: str = "rlm-bot",
        prefix: str = "",
    ):
        self.repos: dict[str, str] = {}  # "owner/name" -> bare repo path
        self.default_branch: dict[str, str] = {}
        self.permissions: dict[tuple[str, str], str] = {}
        self.pulls: dict[tuple[str, int], dict] = {}
        self.installation_token = installation_token
        self.token_expires_at = "2099-01-01T00:00:00Z"  # what the next token's `expires_at` says
        self.app_slug = app_slug
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self.comments: dict[int, dict] = {}
        self.reactions: dict[int, dict] = {}
        self.created_pulls: list[dict] = []
        self.manifests: dict[str, dict] = {}  # one-time code -> the manifest posted to settings/apps/new
        self.issues: dict[tuple[str, int], dict] = {}  # GitHub's issue shape
        self.pull_files: dict[tuple[str, int], list[dict]] = {}
        self.review_comments: dict[int, dict] = {}
        self.updated_pulls: list[dict] = []
        self.review_requests: list[dict] = []
        self.deleted_refs: list[str] = []
        self.reviews: list[dict] = []  # posted pull request reviews, as GitHub stored them
        self.check_runs: dict[int, dict] = {}  # id -> the check run, with `history` of its bodies
        self._ids = itertools.count(1000)
        self._lock = threading.Lock()
        self._server = None
        self._thread: threading.Thread | None = None
        self.url = ""
        self.prefix = prefix  # e.g. "/api/v3", where GitHub Enterprise Server serves its API

    # ------------------------------------------------------------------ setup

    def add_repo(self, full_name: str, bare_path: str, default_branch: str = "main") -> None:
        self.repos[full_name] = str(bare_path)
        self.default_branch[full_name] = default_branch

    def add_issue(self, repo: str, issue: dict) -> None:
        """An issue (or a PR seen as an issue) in GitHub's shape: number, title, body, user, labels…"""
        self.issues[(repo, int(issue["number"]))] = issue

    def add_comment(self, repo: str, number: int, comment: dict) -> int:
        """A comment someone else wrote (GitHub's shape: id, body, user, author_association, created_at)."""
        cid = int(comment.get("id") or next(self._ids))
        self.comments[cid] = {
            **comment,
            "id": cid,
            "repo": repo,
            "issue": number,
            "history": [comment.get("body", "")],
        }
        return cid

    def add_review_comment(self, repo: str, number: int, comment: dict) -> int:
        cid = int(comment.get("id") or next(self._ids))
        self.review_comments[cid] = {**comment, "id": cid, "repo": repo, "pull": number}
        return cid

    def grant(self, repo: str, user: str, permission: str) -> None:
        self.permissions[(repo, user)] = permission

    def fail(
        self,
        method: str,
        pattern: str,
        status: int,
        times: int = 1,
        headers: dict | None = None,
        message: str = "fault",
        errors: list | None = None,
        after: bool = False,
    ) -> None:
        """The next `times` requests matching method + path regex answer `status`. With `after`,
        the request is carried out first (GitHub timing out on a write that did happen)."""
        self.faults.append(Fault(method, pattern, status, times, headers or {}, message, errors, after))

    def start(self) -> FakeGitHub:
        self._server = make_server(
            "127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_KeepAliveHandler
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}{self.prefix}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()

    # ------------------------------------------------------------------ queries for tests

    def writes(self) -> list[Call]:
        return [c for c in self.calls if c.method != "GET"]

    def write_paths(self) -> list[tuple[str, str]]:
        return [(c.method, c.path) for c in self.writes() if "/access_tokens" not in c.path]

    def issue_comments(self, repo: str, number: int) -> list[dict]:
        return [c for c in self.comments.values() if c["repo"] == repo and c["issue"] == number]

    # ------------------------------------------------------------------ the server

    def _wsgi(self, environ, start_response):
        request = Request(environ)
        raw = request.get_data()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        path = request.path
        if request.method == "POST" and re.fullmatch(r"(/organizations/[^/]+)?/settings/apps/new", path):
            # A web page, never under the API prefix.
            return self._new_app_page(request)(environ, start_response)
        if self.prefix:
            if not path.startswith(self.prefix + "/"):
                return Response('{"message": "Not Found"}', status=404)(environ, start_response)
            path = path[len(self.prefix) :]
        call = Call(
            request.method,
            path,
            request.args.to_dict(),
            body,
            request.headers.get("Authorization", ""),
            request.headers.get("User-Agent", ""),
        )
        with self._lock:
            self.calls.append(call)
            fault = next(
                (
                    f
                    for f in self.faults
                    if f.times > 0 and f.method == call.method and re.fullmatch(f.pattern, call.path)
                ),
                None,
            )
            if fault is not None:
                fault.times -= 1
        if fault is not None and not fault.after:
            return self._fault_response(fault)(environ, start_response)
        try:
            status, data = self._route(call)
        except subprocess.CalledProcessError as e:
            status, data = 422, {"message": e.stderr.decode("utf-8", "replace")}
        if fault is not None:
            return self._fault_response(fault)(environ, start_response)
        payload = "" if data is None else json.dumps(data)
        return Response(payload, status=status, content_type="application/json")(environ, start_response)

    def _new_app_page(self, request: Request) -> Response:
        """What GitHub does when a manifest form is posted and the user confirms: create the App and
        redirect to the manifest's redirect_url with a one-time code and the caller's state."""
        from urllib.parse import urlencode

        manifest = json.loads(request.form["manifest"])
        code = f"code-{next(self._ids)}"
        with self._lock:
            self.manifests[code] = {**manifest, "owner": request.path}
        query = urlencode(
            {"code": code, **({"state": request.args["state"]} if "state" in request.args else {})}
        )
        return Response("", status=302, headers={"Location": f"{manifest['redirect_url']}?{query}"})

    @staticmethod
    def _fault_response(fault: Fault) -> Response:
        data: dict[str, Any] = {"message": fault.message}
        if fault.errors is not None:
            data["errors"] = fault.errors
        return Response(
            json.dumps(data), status=fault.status, headers=fault.headers, content_type="application/json"
        )

    @staticmethod
    def _too_long(resource: str, body: str | None) -> tuple[int, Any] | None:
        """GitHub's 422 for a comment or pull request body over its limit."""
        if body is None or len(body) <= BODY_LIMIT:
            return None
        return 422, {
            "message": "Validation Failed",
            "errors": [
                {
                    "resource": resource,
                    "code": "custom",
                    "field": "body",
                    "message": f"body is too long (maximum is {BODY_LIMIT} characters)",
                }
            ],
        }

    def _route(self, c: Call) -> tuple[int, Any]:
        m, p = c.method, c.path
        if m == "POST" and (g := re.fullmatch(r"/app-manifests/([^/]+)/conversions", p)):
            with self._lock:
                manifest = self.manifests.pop(g.group(1), None)  # a code works once
            if manifest is None:
                return 404, {"message": "Not Found"}
            from tests.fakes.github_app import private_key_pem

            return 201, {
                "id": 4242,
                "slug": manifest["name"].lower(),
                "name": manifest["name"],
                "html_url": f"https://github.example/apps/{manifest['name'].lower()}",
                "pem": private_key_pem(),
                "webhook_secret": "whsec-from-fake-github-0123456789",
                "client_id": "Iv1.fake",
                "client_secret": "fake-client-secret-0123456789",
                "owner": {"login": "octo"},
            }
        if m == "POST" and (g := re.fullmatch(r"/app/installations/(\d+)/access_tokens", p)):
            return 201, {"token": self.installation_token, "expires_at": self.token_expires_at}
        if m == "GET" and p == "/app":
            return 200, {"slug": self.app_slug, "id": 1}
        g = re.fullmatch(r"/repos/([^/]+/[^/]+)(/.*)?", p)
        if not g or g.group(1) not in self.repos:
            return 404, {"message": "Not Found"}
        repo, rest = g.group(1), g.group(2) or ""
        bare = self.repos[repo]
        if m == "GET" and rest == "":
            return 200, {"full_name": repo, "default_branch": self.default_branch[repo], "clone_url": bare}
        if m == "GET" and (g := re.fullmatch(r"/collaborators/([^/]+)/permission", rest)):
            perm = self.permissions.get((repo, g.group(1)))
            if perm is None:
                return 404, {"message": "Not Found"}
            return 200, {"permission": perm, "user": {"login": g.group(1)}}
        if m == "GET" and (g := re.fullmatch(r"/branches/(.+)", rest)):
            sha = _git(bare, "rev-parse", f"refs/heads/{g.group(1)}").decode().strip()
            return 200, {"name": g.group(1), "commit": {"sha": sha}}
        if m == "GET" and (g := re.fullmatch(r"/contents/(.+)", rest)):
            ref = c.query.get("ref") or self.default_branch[repo]
            proc = subprocess.run(
                ["git", f"--git-dir={bare}", "show", f"{ref}:{g.group(1)}"], capture_output=True
            )
            if proc.returncode != 0:
                return 404, {"message": "Not Found"}
            return 200, {
                "type": "file",
                "encoding": "base64",
                "content": base64.b64encode(proc.stdout).decode(),
            }
        if m == "GET" and (g := re.fullmatch(r"/pulls/(\d+)", rest)):
            pull = self.pulls.get((repo, int(g.group(1))))
            return (200, pull) if pull else (404, {"message": "Not Found"})
        if m == "GET" and (g := re.fullmatch(r"/issues/(\d+)", rest)):
            # Every number exists, like the issues the payload helpers name (comment_payload).
            issue = self.issues.get((repo, int(g.group(1)))) or {
                "number": int(g.group(1)),
                "title": "Fix things",
                "body": "",
                "state": "open",
                "labels": [],
                "user": {"login": "octocat", "type": "User"},
                "author_association": "OWNER",
            }
            return 200, issue
        if m == "GET" and (g := re.fullmatch(r"/issues/(\d+)/comments", rest)):
            items = [
                self._public({**c, "id": cid})
                for cid, c in sorted(self.comments.items())
                if c["repo"] == repo and c["issue"] == int(g.group(1))
            ]
            return 200, self._page(items, c.query)
        if m == "GET" and (g := re.fullmatch(r"/pulls/(\d+)/files", rest)):
            return 200, self._page(self.pull_files.get((repo, int(g.group(1))), []), c.query)
        if m == "GET" and (g := re.fullmatch(r"/pulls/comments/(\d+)", rest)):
            found = self.review_comments.get(int(g.group(1)))
            return (200, found) if found and found["repo"] == repo else (404, {"message": "Not Found"})
        if m == "GET" and (g := re.fullmatch(r"/pulls/(\d+)/comments", rest)):
            items = [
                rc
                for _, rc in sorted(self.review_comments.items())
                if rc["repo"] == repo and rc["pull"] == int(g.group(1))
            ]
            return 200, self._page(items, c.query)
        if m == "POST" and (g := re.fullmatch(r"/(issues|pulls)/comments/(\d+)/reactions", rest)):
            rid = next(self._ids)
            self.reactions[rid] = {"comment": int(g.group(2)), "content": c.body["content"], "deleted": False}
            return 201, {"id": rid, "content": c.body["content"]}
        if m == "DELETE" and (g := re.fullmatch(r"/(issues|pulls)/comments/(\d+)/reactions/(\d+)", rest)):
            self.reactions.get(int(g.group(3)), {})["deleted"] = True
            return 204, None
        if m == "POST" and (g := re.fullmatch(r"/issues/(\d+)/comments", rest)):
            if refused := self._too_long("IssueComment", c.body.get("body")):
                return refused
            cid = next(self._ids)
            self.comments[cid] = {
                "repo": repo,
                "issue": int(g.group(1)),
                "body": c.body["body"],
                "history": [c.body["body"]],
                "user": {"login": f"{self.app_slug}[bot]", "type": "Bot"},
                "author_association": "NONE",
                "created_at": "2026-01-01T00:00:00Z",
                "html_url": f"https://github.example/{repo}/issues/{g.group(1)}#issuecomment-{cid}",
            }
            return 201, {"id": cid, "html_url": self.comments[cid]["html_url"]}
        if m == "PATCH" and (g := re.fullmatch(r"/issues/comments/(\d+)", rest)):
            comment = self.comments.get(int(g.group(1)))
            if comment is None:
                return 404, {"message": "Not Found"}
            if refused := self._too_long("IssueComment", c.body.get("body")):
                return refused
            comment["body"] = c.body["body"]
            comment["history"].append(c.body["body"])
            return 200, {"id": int(g.group(1))}
        if m == "POST" and rest == "/git/blobs":
            content = (
                base64.b64decode(c.body["content"])
                if c.body.get("encoding") == "base64"
                else c.body["content"].encode()
            )
            sha = _git(bare, "hash-object", "-w", "--stdin", input=content).decode().strip()
            return 201, {"sha": sha}
        if m == "POST" and rest == "/git/trees":
            return 201, {"sha": self._make_tree(bare, c.body.get("base_tree"), c.body["tree"])}
        if m == "POST" and rest == "/git/commits":
            args = ["commit-tree", c.body["tree"]]
            for parent in c.body.get("parents", []):
                args += ["-p", parent]
            ident = {
                "GIT_AUTHOR_NAME": "rlm-bot[bot]",
                "GIT_AUTHOR_EMAIL": "bot@example.invalid",
                "GIT_COMMITTER_NAME": "rlm-bot[bot]",
                "GIT_COMMITTER_EMAIL": "bot@example.invalid",
            }
            sha = _git(bare, *args, input=c.body["message"].encode(), env=ident).decode().strip()
            return 201, {"sha": sha}
        if m == "GET" and (g := re.fullmatch(r"/git/ref/(.+)", rest)):
            proc = subprocess.run(
                ["git", f"--git-dir={bare}", "rev-parse", "--verify", "--quiet", f"refs/{g.group(1)}"],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                return 404, {"message": "Not Found"}
            return 200, {
                "ref": f"refs/{g.group(1)}",
                "object": {"sha": proc.stdout.strip(), "type": "commit"},
            }
        if m == "GET" and (g := re.fullmatch(r"/git/commits/([0-9a-f]{40})", rest)):
            lines = _git(bare, "cat-file", "commit", g.group(1)).decode().split("\n\n", 1)[0].splitlines()
            tree = next(line.split()[1] for line in lines if line.startswith("tree "))
            parents = [{"sha": line.split()[1]} for line in lines if line.startswith("parent ")]
            return 200, {"sha": g.group(1), "tree": {"sha": tree}, "parents": parents}
        if m == "DELETE" and (g := re.fullmatch(r"/git/refs/(.+)", rest)):
            _git(bare, "update-ref", "-d", f"refs/{g.group(1)}")
            self.deleted_refs.append(f"refs/{g.group(1)}")
            return 204, None
        if m == "GET" and rest == "/pulls":
            owner, _, branch = (c.query.get("head") or "").partition(":")
            found = [
                p
                for p in self.created_pulls
                if p["head"] == branch and owner == repo.split("/")[0] and p.get("state", "open") == "open"
            ]
            return 200, found
        if m == "POST" and rest == "/git/refs":
            exists = (
                subprocess.run(
                    ["git", f"--git-dir={bare}", "rev-parse", "--verify", "--quiet", c.body["ref"]],
                    capture_output=True,
                ).returncode
                == 0
            )
            if exists:
                return 422, {"message": "Reference already exists"}
            _git(bare, "update-ref", c.body["ref"], c.body["sha"])
            return 201, {"ref": c.body["ref"], "object": {"sha": c.body["sha"]}}
        if m == "POST" and rest == "/pulls":
            if refused := self._too_long("PullRequest", c.body.get("body")):
                return refused
            if any(
                p["head"] == c.body["head"] and p.get("state", "open") == "open" for p in self.created_pulls
            ):
                return 422, {
                    "message": "Validation Failed",
                    "errors": [
                        {
                            "resource": "PullRequest",
                            "code": "custom",
                            "message": f"A pull request already exists for {repo.split('/')[0]}:{c.body['head']}.",
                        }
                    ],
                }
            number = 100 + len(self.created_pulls) + 1
            pull = {**c.body, "number": number, "html_url": f"https://github.example/{repo}/pull/{number}"}
            self.created_pulls.append(pull)
            # Readable afterwards like a real PR (GET /pulls/N, GET /issues/N): a follow-up needs it.
            head_sha = _git(bare, "rev-parse", f"refs/heads/{c.body['head']}").decode().strip()
            bot = {"login": f"{self.app_slug}[bot]", "type": "Bot"}
            self.pulls[(repo, number)] = {
                **pull,
                "user": bot,
                "base": {"ref": c.body["base"]},
                "head": {"ref": c.body["head"], "sha": head_sha, "repo": {"full_name": repo}},
            }
            self.issues[(repo, number)] = {
                "number": number,
                "title": c.body["title"],
                "body": c.body.get("body"),
                "user": bot,
                "labels": [],
                "state": "open",
                "author_association": "NONE",
                "pull_request": {},
            }
            return 201, pull
        if m == "PATCH" and (g := re.fullmatch(r"/pulls/(\d+)", rest)):
            pull = self.pulls.get((repo, int(g.group(1))))
            if pull is None:
                return 404, {"message": "Not Found"}
            pull.update(c.body)
            self.updated_pulls.append({"number": int(g.group(1)), **c.body})
            return 200, pull
        if m == "POST" and (g := re.fullmatch(r"/pulls/(\d+)/requested_reviewers", rest)):
            self.review_requests.append({"number": int(g.group(1)), **c.body})
            return 201, {"number": int(g.group(1))}
        if m == "POST" and (g := re.fullmatch(r"/pulls/(\d+)/reviews", rest)):
            return self._create_review(repo, int(g.group(1)), c.body or {})
        if m == "GET" and (g := re.fullmatch(r"/pulls/(\d+)/reviews", rest)):
            items = [r for r in self.reviews if r["repo"] == repo and r["pull"] == int(g.group(1))]
            return 200, self._page(items, c.query)
        if m == "POST" and rest == "/check-runs":
            return self._check_run(repo, None, c.body or {})
        if m == "PATCH" and (g := re.fullmatch(r"/check-runs/(\d+)", rest)):
            return self._check_run(repo, int(g.group(1)), c.body or {})
        if m == "PATCH" and (g := re.fullmatch(r"/git/refs/(heads/.+)", rest)):
            ref = "refs/" + g.group(1)
            old = _git(bare, "rev-parse", "--verify", ref).decode().strip()
            ff = (
                subprocess.run(
                    ["git", f"--git-dir={bare}", "merge-base", "--is-ancestor", old, c.body["sha"]],
                    capture_output=True,
                ).returncode
                == 0
            )
            if not ff and not c.body.get("force"):
                return 422, {"message": "Update is not a fast forward"}
            _git(bare, "update-ref", ref, c.body["sha"])
            for pull in self.pulls.values():
                if pull.get("head", {}).get("ref") == g.group(1)[len("heads/") :]:
                    pull["head"]["sha"] = c.body["sha"]
            return 200, {"ref": ref, "object": {"sha": c.body["sha"]}}
        return 404, {"message": f"fake GitHub has no route for {m} {p}"}

    def diff_lines(self, repo: str, number: int) -> dict[str, set[int]]:
        """path -> the RIGHT-side lines of the pull request's diff (added and context lines of
        each hunk of `pull_files`): where GitHub accepts a review comment."""
        found: dict[str, set[int]] = {}
        for f in self.pull_files.get((repo, number), []):
            lines, new = found.setdefault(f["filename"], set()), None
            for row in (f.get("patch") or "").rstrip("\n").split("\n"):
                if g := re.match(r"@@ -\d+(?:,\d+)? \+(\d+)", row):
                    new = int(g.group(1))
                elif new is not None and row[:1] in (" ", "+", ""):
                    lines.add(new)
                    new += 1
        return found

    def _create_review(self, repo: str, number: int, body: dict) -> tuple[int, Any]:
        """POST /pulls/N/reviews as GitHub checks it: a known event, and every comment on a line
        of the diff (else 422, and nothing is posted)."""
        if (repo, number) not in self.pulls:
            return 404, {"message": "Not Found"}
        if body.get("event") not in (None, "COMMENT", "APPROVE", "REQUEST_CHANGES"):
            return 422, {"message": "Unprocessable Entity", "errors": ["event is not a valid value"]}
        if refused := self._too_long("PullRequestReview", body.get("body")):
            return refused
        lines = self.diff_lines(repo, number)
        for comment in body.get("comments") or []:
            if set(comment) - {"path", "line", "side", "body", "start_line", "start_side", "position"}:
                return 422, {"message": "Invalid request", "errors": [f"unknown keys in {sorted(comment)}"]}
            if comment.get("side", "RIGHT") != "RIGHT" or comment.get("line") not in lines.get(
                comment.get("path"), set()
            ):
                return 422, {
                    "message": "Unprocessable Entity",
                    "errors": ["Pull request review thread line must be part of the diff"],
                }
        rid = next(self._ids)
        review = {
            "id": rid,
            "repo": repo,
            "pull": number,
            "body": body.get("body") or "",
            "event": body.get("event"),
            "state": "COMMENTED" if body.get("event") == "COMMENT" else "PENDING",
            "commit_id": body.get("commit_id"),
            "comments": list(body.get("comments") or []),
            "user": {"login": f"{self.app_slug}[bot]", "type": "Bot"},
            "html_url": f"https://github.example/{repo}/pull/{number}#pullrequestreview-{rid}",
        }
        self.reviews.append(review)
        return 200, {k: v for k, v in review.items() if k not in ("repo", "pull", "comments")}

    def _check_run(self, repo: str, run_id: int | None, body: dict) -> tuple[int, Any]:
        """POST /check-runs and PATCH /check-runs/N, with GitHub's limits (50 annotations a
        request; `conclusion` required when completed)."""
        output = body.get("output") or {}
        if len(output.get("annotations") or []) > 50:
            return 422, {"message": "Validation Failed", "errors": ["annotations: more than 50 items"]}
        if output and not (output.get("title") and output.get("summary")):
            return 422, {"message": "Invalid request", "errors": ["output needs title and summary"]}
        if body.get("status") == "completed" and not body.get("conclusion"):
            return 422, {"message": "Invalid request", "errors": ["conclusion is required when completed"]}
        if run_id is None:
            if not body.get("name") or not body.get("head_sha"):
                return 422, {"message": "Invalid request", "errors": ["name and head_sha are required"]}
            run_id = next(self._ids)
            self.check_runs[run_id] = {"id": run_id, "repo": repo, "annotations": [], "history": []}
        check = self.check_runs.get(run_id)
        if check is None or check["repo"] != repo:
            return 404, {"message": "Not Found"}
        check["history"].append(body)
        check.update({k: v for k, v in body.items() if k != "output"})
        if output:
            check["output"] = {k: v for k, v in output.items() if k != "annotations"}
            check["annotations"] += output.get("annotations") or []
        return (201 if len(check["history"]) == 1 else 200), {
            k: v for k, v in check.items() if k not in ("repo", "history")
        }

    @staticmethod
    def _public(comment: dict) -> dict:
        return {k: v for k, v in comment.items() if k not in ("repo", "issue", "history")}

    @staticmethod
    def _page(items: list, query: dict) -> list:
        per_page, page = int(query.get("per_page", 30)), int(query.get("page", 1))
        return items[(page - 1) * per_page : page * per_page]

    @staticmethod
    def _make_tree(bare: str, base_tree: str | None, entries: list[dict]) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
            if base_tree:
                _git(bare, "read-tree", base_tree, env=env)
            zero = "0" * 40
            lines = [
                f"0 {zero}\t{e['path']}" if e.get("sha") is None else f"{e['mode']} {e['sha']}\t{e['path']}"
                for e in entries
            ]
            _git(bare, "update-index", "--index-info", input=("\n".join(lines) + "\n").encode(), env=env)
            return _git(bare, "write-tree", env=env).decode().strip()
