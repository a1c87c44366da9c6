"""Helpers for the GitHub App tests: signing deliveries, serving the real Flask app on loopback,
payloads shaped like GitHub's, the webhook examples from @octokit/webhooks-examples, an RSA key."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.serving import make_server

EXAMPLES = (
    Path(__file__).resolve().parents[1]
    / "js/node_modules/@octokit/webhooks-examples/api.github.com/index.json"
)
SECRET = "test-webhook-secret-4f1c2a9e"


@lru_cache(maxsize=1)
def private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def headers_for(event: str, body: bytes, *, delivery: str | None = None, secret: str | None = SECRET) -> dict:
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
    }
    if secret is not None:
        headers["X-Hub-Signature-256"] = sign(body, secret)
    return headers


def post_event(
    url: str,
    event: str,
    payload: dict,
    *,
    delivery: str | None = None,
    secret: str | None = SECRET,
    session: requests.Session | None = None,
) -> requests.Response:
    body = json.dumps(payload).encode()
    return (session or requests).post(
        f"{url}/webhook",
        data=body,
        timeout=10,
        headers=headers_for(event, body, delivery=delivery, secret=secret),
    )


@contextlib.contextmanager
def serve(app) -> Iterator[str]:
    """The real Flask app over HTTP on 127.0.0.1 (a random port); yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


def comment_payload(
    body: str,
    *,
    repo: str = "octo/demo",
    clone_url: str = "",
    number: int = 7,
    user: str = "octocat",
    user_type: str = "User",
    pull: bool = False,
    installation: int | None = 42,
    comment_id: int = 555,
) -> dict:
    """An issue_comment.created payload (GitHub's shape, trimmed to what matters)."""
    issue = {
        "number": number,
        "title": "Fix things",
        "html_url": f"https://github.example/{repo}/issues/{number}",
    }
    if pull:
        issue["pull_request"] = {"url": f"https://api.github.example/repos/{repo}/pulls/{number}"}
    payload = {
        "action": "created",
        "issue": issue,
        "comment": {"id": comment_id, "body": body, "user": {"login": user, "id": 99, "type": user_type}},
        "repository": {"full_name": repo, "clone_url": clone_url, "default_branch": "main"},
        "sender": {"login": user, "id": 99, "type": user_type},
    }
    if installation is not None:
        payload["installation"] = {"id": installation}
    return payload


def review_comment_payload(
    body: str,
    *,
    repo: str = "octo/demo",
    clone_url: str = "",
    number: int = 8,
    user: str = "octocat",
    installation: int | None = 42,
    comment_id: int = 777,
) -> dict:
    payload = comment_payload(
        body,
        repo=repo,
        clone_url=clone_url,
        number=number,
        user=user,
        installation=installation,
        comment_id=comment_id,
    )
    del payload["issue"]
    payload["pull_request"] = {"number": number, "html_url": f"https://github.example/{repo}/pull/{number}"}
    return payload


def examples(*events: str) -> list[tuple[str, dict]]:
    """(event name, payload) for every example of the given events in @octokit/webhooks-examples."""
    data = json.loads(EXAMPLES.read_text())
    return [(e["name"], copy.deepcopy(ex)) for e in data if e["name"] in events for ex in e["examples"]]


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")
