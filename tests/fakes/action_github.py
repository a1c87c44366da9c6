"""A fake GitHub REST API on 127.0.0.1 for the Action's subprocess tests.

The action under test runs in a child process, so `responses` cannot intercept its calls; this
server answers the few endpoints the bot uses from in-memory state and records every request so
tests can assert the exact paths and bodies written.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Call:
    method: str
    path: str
    body: Any
    headers: dict[str, str]


@dataclass
class FakeGitHub:
    """State of one fake repository plus the log of calls. Tests tweak the fields before a run."""

    repo: str = "Codertocat/Hello-World"
    default_branch: str = "main"
    permissions: dict[str, str] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    pulls: dict[int, dict] = field(default_factory=dict)
    # (method, path regex) -> (status, body): forced answers, e.g. a 403 for missing permissions
    refuse: dict[tuple[str, str], tuple[int, dict]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    comments: dict[int, dict] = field(default_factory=dict)
    created_pulls: list[dict] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1000))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ------------------------------------------------------------------ queries for tests

    def requests(self, method: str, pattern: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and re.search(pattern, c.path)]

    # ------------------------------------------------------------------ routing

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        for (m, pattern), answer in self.refuse.items():
            if m == method and re.search(pattern, path):
                return answer
        base = f"/repos/{self.repo}"
        if not path.startswith(base):
            return 404, {"message": "Not Found"}
        rest = path[len(base) :].split("?")[0]
        if method == "GET" and rest == "":
            return 200, {"full_name": self.repo, "default_branch": self.default_branch, "fork": False,
                         "clone_url": f"https://github.com/{self.repo}.git"}  # fmt: skip
        if method == "GET" and (m := re.fullmatch(r"/collaborators/([^/]+)/permission", rest)):
            perm = self.permissions.get(m.group(1))
            if perm is None:
                return 404, {"message": "Not Found"}
            return 200, {"permission": perm, "user": {"login": m.group(1)}}
        if method == "GET" and (m := re.fullmatch(r"/branches/(.+)", rest)):
            sha = self.branches.get(m.group(1))
            if sha is None:
                return 404, {"message": "Branch not found"}
            return 200, {"name": m.group(1), "commit": {"sha": sha}}
        if method == "GET" and (m := re.fullmatch(r"/git/ref/heads/(.+)", rest)):
            sha = self.branches.get(m.group(1))
            if sha is None:
                return 404, {"message": "Not Found"}
            return 200, {"ref": f"refs/heads/{m.group(1)}", "object": {"sha": sha, "type": "commit"}}
        if method == "GET" and (m := re.fullmatch(r"/pulls/(\d+)", rest)):
            pull = self.pulls.get(int(m.group(1)))
            return (200, pull) if pull else (404, {"message": "Not Found"})
        if method == "GET" and rest.startswith("/contents/"):
            return 404, {"message": "Not Found"}
        if method == "POST" and re.fullmatch(r"/(issues|pulls)/comments/\d+/reactions", rest):
            return 201, {"id": next(self._ids), "content": body.get("content")}
        if method == "POST" and (m := re.fullmatch(r"/issues/(\d+)/comments", rest)):
            cid = next(self._ids)
            self.comments[cid] = {"id": cid, "issue": int(m.group(1)), "body": body.get("body", "")}
            return 201, {
                "id": cid,
                "html_url": f"https://github.com/{self.repo}/issues/{m.group(1)}#issuecomment-{cid}",
            }
        if method == "PATCH" and (m := re.fullmatch(r"/issues/comments/(\d+)", rest)):
            comment = self.comments.get(int(m.group(1)))
            if comment is None:
                return 404, {"message": "Not Found"}
            comment["body"] = body.get("body", "")
            return 200, {"id": comment["id"]}
        if method == "POST" and rest in ("/git/blobs", "/git/trees", "/git/commits"):
            return 201, {"sha": f"{next(self._ids):040x}"}
        if method == "POST" and rest == "/git/refs":
            name = body["ref"].removeprefix("refs/heads/")
            self.branches[name] = body["sha"]
            return 201, {"ref": body["ref"], "object": {"sha": body["sha"]}}
        if method == "PATCH" and (m := re.fullmatch(r"/git/refs/heads/(.+)", rest)):
            self.branches[m.group(1)] = body["sha"]
            return 200, {"ref": f"refs/heads/{m.group(1)}", "object": {"sha": body["sha"]}}
        if method == "POST" and rest == "/pulls":
            number = 100 + len(self.created_pulls)
            pull = {**body, "number": number, "html_url": f"https://github.com/{self.repo}/pull/{number}"}
            self.created_pulls.append(pull)
            return 201, pull
        return 404, {"message": f"fake GitHub has no route for {method} {path}"}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGitHub

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with self.fake._lock:
            self.fake.calls.append(Call(self.command, self.path, body, dict(self.headers)))
            status, answer = self.fake.handle(self.command, self.path, body or {})
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


class FakeGitHubServer:
    """`with FakeGitHubServer(fake) as url:` serves `fake` on an ephemeral 127.0.0.1 port."""

    def __init__(self, fake: FakeGitHub):
        handler = type("Handler", (_Handler,), {"fake": fake})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> str:
        self.thread.start()
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
