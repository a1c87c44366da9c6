"""POST /webhook over HTTP: signature, parsing, routing decisions, replays, every GitHub example.

No workers run here (start_workers=False): these tests look at what the endpoint records."""

from __future__ import annotations

import json
import time

import pytest
import requests

from bot.github.commands import Command, parse_command
from tests.fakes.github_app import (
    SECRET,
    comment_payload,
    examples,
    headers_for,
    post_event,
    review_comment_payload,
    serve,
)
from webhooks import ServerConfig, context, create_app
from webhooks import intake as entry
from webhooks import payload as parsing


@pytest.fixture
def server(tmp_path):
    config = ServerConfig(webhook_secret=SECRET, db_path=tmp_path / "jobs.sqlite3", max_body=64 * 1024)
    app = create_app(config, start_workers=False)
    with serve(app) as url:
        yield url, app.extensions["rlm"].store


def reason(resp: requests.Response) -> str:
    return resp.json()["error"]


# ---------------------------------------------------------------- every example from @octokit/webhooks-examples

COMMENT_EXAMPLES = examples("issue_comment", "pull_request_review_comment")


def test_examples_are_there():
    assert len(COMMENT_EXAMPLES) >= 10
    assert {name for name, _ in COMMENT_EXAMPLES} == {"issue_comment", "pull_request_review_comment"}


@pytest.mark.parametrize("index", range(len(COMMENT_EXAMPLES)))
def test_example_as_delivered(server, index):
    """As GitHub sent it: no command in the text, so ignored (200) — or 400 without an installation."""
    url, store = server
    name, payload = COMMENT_EXAMPLES[index]
    resp = post_event(url, name, payload)
    if "installation" not in payload:
        assert resp.status_code == 400 and reason(resp) == entry.NO_INSTALLATION
    else:
        assert resp.status_code == 200
        assert resp.json()["decision"] == "ignored"
        expected = (
            context.IGNORED_NO_COMMAND if payload["action"] == "created" else context.IGNORED_NO_HANDLER
        )
        assert resp.json()["reason"] == expected.format(prefix="/rlm", event=name, action=payload["action"])
    assert store.jobs() == []


@pytest.mark.parametrize("pull", [False, True])
@pytest.mark.parametrize("index", range(len(COMMENT_EXAMPLES)))
def test_example_with_a_command(server, index, pull):
    """The same payloads carrying `/rlm <task>`: created → a run job (202); edited/deleted → ignored."""
    url, store = server
    name, payload = COMMENT_EXAMPLES[index]
    payload["installation"] = {"id": 1}
    payload["comment"]["body"] = "/rlm fix the easiest TODO\nand add a test"
    if pull and name == "issue_comment":
        payload["issue"]["pull_request"] = {
            "url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/1"
        }
    resp = post_event(url, name, payload)
    if payload["action"] != "created":
        assert resp.status_code == 200 and resp.json()["decision"] == "ignored"
        assert store.jobs() == []
        return
    assert resp.status_code == 202, resp.text
    (job,) = store.jobs()
    assert (job.kind, job.state, job.lane, job.repo) == ("run", "queued", "control", "Codertocat/Hello-World")
    req = job.request
    assert req["task"] == "fix the easiest TODO\nand add a test"
    assert req["requester"] == payload["comment"]["user"]["login"]
    assert req["comment_id"] == payload["comment"]["id"]
    assert req["clone_url"] == payload["repository"]["clone_url"]
    assert req["review_comment"] == (name == "pull_request_review_comment")
    assert req["is_pull"] == (pull or name == "pull_request_review_comment")
    number = payload["issue"]["number"] if name == "issue_comment" else payload["pull_request"]["number"]
    assert job.number == req["number"] == number


@pytest.mark.parametrize("index", range(len(COMMENT_EXAMPLES)))
def test_example_from_a_bot_is_ignored(server, index):
    url, store = server
    name, payload = COMMENT_EXAMPLES[index]
    payload["installation"] = {"id": 1}
    payload["comment"]["body"] = "/rlm fix it"
    payload["sender"]["type"] = "Bot"
    resp = post_event(url, name, payload)
    assert resp.status_code == 200 and resp.json()["decision"] == "ignored"
    assert store.jobs() == []


def test_ping_examples(server):
    url, store = server
    for name, payload in examples("ping"):
        resp = post_event(url, name, payload)
        assert resp.status_code == 200 and resp.json()["reason"] == entry.PONG
    assert store.jobs() == []


# ---------------------------------------------------------------- decisions


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("/rlm help", "help"),
        ("/rlm status", "status"),
        ("/rlm cancel", "cancel"),
        ("/rlm", "invalid"),
        ("/rlm --model x do it", "invalid"),
        ("please\n/rlm do it", "run"),
    ],
)
def test_command_kinds(server, body, kind):
    url, store = server
    resp = post_event(url, "issue_comment", comment_payload(body))
    assert resp.status_code == 202 and resp.json()["kind"] == kind
    (job,) = store.jobs()
    assert job.kind == kind and job.lane == "control"  # a run goes to the run lane once accepted


def test_review_comment_command(server):
    url, store = server
    resp = post_event(url, "pull_request_review_comment", review_comment_payload("/rlm tidy this"))
    assert resp.status_code == 202
    (job,) = store.jobs()
    assert job.request["review_comment"] and job.request["is_pull"] and job.number == 8


def test_own_app_comment_is_ignored(tmp_path):
    from bot.github.auth import AppSettings
    from tests.fakes.github_app import private_key_pem

    app_settings = AppSettings(app_id="1234", private_key=private_key_pem(), webhook_secret=SECRET)
    config = ServerConfig(webhook_secret=SECRET, app=app_settings, db_path=tmp_path / "db.sqlite3")
    app = create_app(config, start_workers=False)
    payload = comment_payload("/rlm do it")
    payload["comment"]["performed_via_github_app"] = {"id": 1234, "slug": "rlm-bot"}
    with serve(app) as url:
        resp = post_event(url, "issue_comment", payload)
    assert resp.status_code == 200 and resp.json()["reason"] == context.IGNORED_OWN


# ---------------------------------------------------------------- refusals: each a 4xx with a reason, and no job


def raw_post(url: str, body: bytes, headers: dict) -> requests.Response:
    return requests.post(f"{url}/webhook", data=body, headers=headers, timeout=10)


def test_wrong_signature(server):
    url, store = server
    resp = post_event(url, "issue_comment", comment_payload("/rlm x"), secret="not-the-secret")
    assert resp.status_code == 401 and reason(resp) == entry.BAD_SIGNATURE
    assert store.jobs() == [] and store.delivery_count() == 0


def test_missing_signature(server):
    url, store = server
    resp = post_event(url, "issue_comment", comment_payload("/rlm x"), secret=None)
    assert resp.status_code == 401 and reason(resp) == entry.NO_SIGNATURE
    assert store.jobs() == []


def test_sha1_signature_is_not_enough(server):
    import hashlib
    import hmac

    url, store = server
    body = json.dumps(comment_payload("/rlm x")).encode()
    headers = headers_for("issue_comment", body, secret=None)
    headers["X-Hub-Signature-256"] = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    assert raw_post(url, body, headers).status_code == 401
    assert store.jobs() == []


def test_replayed_delivery(server):
    url, store = server
    payload = comment_payload("/rlm fix it")
    first = post_event(url, "issue_comment", payload, delivery="delivery-1")
    again = post_event(url, "issue_comment", payload, delivery="delivery-1")
    assert first.status_code == 202
    assert again.status_code == 409 and reason(again) == entry.REPLAYED.format(delivery="delivery-1")
    assert len(store.jobs()) == 1


def test_oversized_body(server):
    url, store = server
    payload = comment_payload("/rlm " + "x" * (70 * 1024))
    resp = post_event(url, "issue_comment", payload)
    assert resp.status_code == 413 and reason(resp) == entry.TOO_LARGE.format(limit=64 * 1024)
    assert store.jobs() == []


@pytest.mark.parametrize(
    ("body", "expected"), [(b'{"action": "created", ', parsing.BAD_JSON), (b"[1, 2]", parsing.NOT_AN_OBJECT)]
)
def test_malformed_json(server, body, expected):
    url, store = server
    resp = raw_post(url, body, headers_for("issue_comment", body))
    assert resp.status_code == 400 and reason(resp) == expected
    assert store.jobs() == []


def test_wrong_content_type(server):
    url, store = server
    body = b"payload=%7B%7D"
    headers = headers_for("issue_comment", body)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    resp = raw_post(url, body, headers)
    assert resp.status_code == 415 and reason(resp) == entry.BAD_CONTENT_TYPE
    assert store.jobs() == []


def test_unknown_event(server):
    url, store = server
    resp = post_event(url, "deployment", {"installation": {"id": 1}})
    assert resp.status_code == 400 and reason(resp) == entry.UNKNOWN_EVENT.format(event="deployment")


def test_missing_headers(server):
    url, _ = server
    body = json.dumps(comment_payload("/rlm x")).encode()
    headers = headers_for("issue_comment", body)
    del headers["X-GitHub-Delivery"]
    assert reason(raw_post(url, body, headers)) == entry.NO_DELIVERY
    headers = headers_for("issue_comment", body)
    del headers["X-GitHub-Event"]
    assert reason(raw_post(url, body, headers)) == entry.NO_EVENT


def test_payload_missing_fields(server):
    url, store = server
    payload = comment_payload("/rlm x")
    del payload["repository"]
    resp = post_event(url, "issue_comment", payload)
    assert resp.status_code == 400 and reason(resp).startswith(entry.MISSING_FIELD.split("{")[0])
    assert store.jobs() == []


def test_no_secret_refuses_everything(tmp_path):
    app = create_app(ServerConfig(webhook_secret=None, db_path=tmp_path / "db.sqlite3"), start_workers=False)
    with serve(app) as url:
        resp = post_event(url, "issue_comment", comment_payload("/rlm x"))
        ping = post_event(url, "ping", {"zen": "hi"})
    assert resp.status_code == 403 and reason(resp) == entry.NO_SECRET
    assert ping.status_code == 403
    assert app.extensions["rlm"].store.jobs() == []


def test_get_is_not_allowed_and_healthz(server):
    url, _ = server
    assert requests.get(f"{url}/webhook", timeout=5).status_code == 405
    health = requests.get(f"{url}/healthz", timeout=5)
    assert health.status_code == 200 and health.json()["status"] == "ok"


def test_answers_fast(server):
    url, _ = server
    session = requests.Session()
    took = []
    for i in range(20):
        start = time.perf_counter()
        resp = post_event(url, "issue_comment", comment_payload(f"/rlm task {i}", number=i), session=session)
        took.append(time.perf_counter() - start)
        assert resp.status_code == 202
    assert sorted(took)[len(took) // 2] < 0.2  # generous: the bench measures the real figures


def test_parse_command_contract():
    assert parse_command("/rlm fix it") == Command("run", "fix it")
    assert parse_command("nothing here") is None


def test_server_config_from_env(tmp_path):
    from bot.rlm import Config
    from tests.fakes.github_app import private_key_pem

    env = {
        "GITHUB_APP_ID": "9",
        "GITHUB_PRIVATE_KEY": private_key_pem(),
        "GITHUB_WEBHOOK_SECRET": "whsec-123456",
        "RLM_DB": str(tmp_path / "j.db"),
        "RLM_PUBLIC_URL": "https://bot.example",
        "RLM_DRAFT_PRS": "true",
        "RLM_ALLOWED_MODELS": "a/b, c/d",
        "RLM_STATUS_INTERVAL": "30",
        "RLM_COMMAND_PREFIX": "/bot",
    }
    config = ServerConfig.from_env(Config(), env, workers=4)
    assert (config.app.app_id, config.webhook_secret, config.workers) == ("9", "whsec-123456", 4)
    assert config.db_path == tmp_path / "j.db" and config.prefix == "/bot"
    w = config.worker
    assert (w.public_url, w.draft, w.can_push_workflows, w.status_interval) == (
        "https://bot.example",
        True,
        False,
        30.0,
    )
    assert w.allowed_models == {"a/b", "c/d"}


def test_server_refuses_unisolated_sandboxes_unless_told(monkeypatch):
    """A server holds others' secrets: no bubblewrap means no start, unless isolation is 'none'."""
    import bot.rlm.sandbox as sandboxes
    from bot.github.auth import AppSettingsError
    from bot.rlm import load_config
    from webhooks.startup import UNISOLATED, check_isolation

    monkeypatch.setattr(sandboxes, "bwrap_works", lambda: False)  # a container without user namespaces
    with pytest.raises(AppSettingsError) as refused:
        check_isolation(load_config(None, environ={}))
    assert str(refused.value) == UNISOLATED
    check_isolation(load_config(None, {"sandbox.isolation": "none"}, environ={}))
    check_isolation(load_config(None, {"sandbox.backend": "daytona"}, environ={}))
