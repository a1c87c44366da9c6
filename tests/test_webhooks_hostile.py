"""Hostile webhook traffic: malformed signed bodies are always a 4xx with a reason, never a 500;
slow clients (slowloris) cannot stop signed deliveries from being answered by the real waitress
server that `rlm serve` runs. Everything on loopback, bounded in time."""

from __future__ import annotations

import contextlib
import json
import os
import random
import resource
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from waitress import wasyncore

from tests.fakes.github_app import SECRET, comment_payload, headers_for, serve
from webhooks import ServerConfig, create_app
from webhooks import payload as parsing
from webhooks.http_server import create_http_server
from webhooks.intake import DB_DOWN
from webhooks.settings import HttpSettings


@pytest.fixture
def app(tmp_path):
    return create_app(
        ServerConfig(webhook_secret=SECRET, db_path=tmp_path / "jobs.sqlite3"), start_workers=False
    )


def post_signed(url: str, body: bytes, session: requests.Session, event: str = "issue_comment", timeout=10.0):
    return session.post(f"{url}/webhook", data=body, headers=headers_for(event, body), timeout=timeout)


def test_a_database_that_stops_answering_is_503_not_500(app, tmp_path):
    store = app.extensions["rlm"].store
    store.close()
    db = tmp_path / "jobs.sqlite3"
    db.rename(tmp_path / "moved.sqlite3")
    db.mkdir()  # where the database was, nothing SQLite can open
    body = json.dumps(comment_payload("/rlm help")).encode()
    with serve(app) as url, requests.Session() as session:
        resp = post_signed(url, body, session)
    assert resp.status_code == 503 and resp.json()["error"] == DB_DOWN


# ---------------------------------------------------------------- parse errors are 400 with a reason


def nested(depth: int, open_: str = "[", close: str = "]") -> bytes:
    return (open_ * depth + "1" + close * depth).encode()


def with_field(value_json: str) -> bytes:
    """A valid command payload with one hostile extra field (text spliced, so anything goes)."""
    base = json.dumps(comment_payload("/rlm help"))
    return (base[:-1] + ', "extra": ' + value_json + "}").encode()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (nested(100_000), parsing.TOO_DEEP),
        (b'{"a":' * 3000 + b"1" + b"}" * 3000, parsing.TOO_DEEP),
        (with_field("[" * 65 + "]" * 65), parsing.TOO_DEEP),
        (with_field("[" * 900 + "]" * 900), parsing.TOO_DEEP),
        (b'{"a": "\xff\xfe"}', parsing.BAD_ENCODING),
        (with_field("9" * 5000), parsing.BAD_NUMBER),
        (
            json.dumps(dict(comment_payload("/rlm help"), installation={"id": 10**30})).encode(),
            parsing.BAD_NUMBER,
        ),
        (with_field("1e999999"), parsing.BAD_NUMBER),
        (with_field("NaN"), parsing.BAD_NUMBER),
        (b"[1, 2]", parsing.NOT_AN_OBJECT),
        (b"null", parsing.NOT_AN_OBJECT),
        (b'{"action": ', parsing.BAD_JSON),
        (b"", parsing.BAD_JSON),
    ],
    ids=[
        "deep-list",
        "deep-object",
        "deep-field-65",
        "deep-field-900",
        "invalid-utf8",
        "huge-int",
        "huge-installation",
        "infinite-float",
        "nan",
        "list",
        "null",
        "truncated",
        "empty",
    ],
)
def test_malformed_signed_bodies_are_400_with_the_reason(app, body, reason):
    with serve(app) as url, requests.Session() as session:
        resp = post_signed(url, body, session)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == reason


def test_lone_surrogates_in_a_payload_are_replaced_and_recorded(app):
    """Valid JSON escapes, invalid text: the job is recorded with U+FFFD, never a 500 from SQLite."""
    payload = comment_payload("/rlm fix \ud800 this", repo="octo/d\udc80mo", user="\udfffme")
    with serve(app) as url, requests.Session() as session:
        resp = post_signed(url, json.dumps(payload).encode(), session)
    assert resp.status_code == 202, resp.text
    (job,) = app.extensions["rlm"].store.jobs()
    assert job.repo == "octo/d\ufffdmo"
    assert job.request["task"] == "fix \ufffd this" and job.request["requester"] == "\ufffdme"


def retyped(path: str, value) -> bytes:
    payload = comment_payload("/rlm fix it")
    *parents, leaf = path.split(".")
    target = payload
    for key in parents:
        target = target[key]
    target[leaf] = value
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("path", "value", "field", "kind"),
    [
        ("repository.full_name", {"a": 1}, "repository.full_name", "a string"),
        ("issue.number", [7], "issue or pull request number", "an integer"),
        ("issue.number", True, "issue or pull request number", "an integer"),
        ("comment.id", "555", "comment.id", "an integer"),
        ("comment.user.login", ["x"], "comment.user.login", "a string"),
        ("comment.user.id", {"id": 1}, "comment.user.id", "an integer"),
        ("repository.clone_url", [], "repository.clone_url", "a string"),
        ("issue.html_url", {}, "html_url", "a string"),
    ],
)
def test_a_field_of_the_wrong_type_is_400_naming_it(app, path, value, field, kind):
    """These reached SQLite as lists and dicts: 500 in 13 of 10,000 fuzzed deliveries."""
    with serve(app) as url, requests.Session() as session:
        resp = post_signed(url, retyped(path, value), session)
    assert resp.status_code == 400
    assert resp.json()["error"] == parsing.WRONG_TYPE.format(field=field, kind=kind)
    assert app.extensions["rlm"].store.jobs() == []


HOSTILE_VALUES = [None, True, 0, -1, 2**63 - 1, "", "x" * 300, "\ud800", [], {}, [[[]]], {"id": []}, 1.5]


def mutate(rng: random.Random) -> bytes:
    """A real command payload with one field replaced, or its text cut, spliced or nested."""
    payload = comment_payload(
        rng.choice(["/rlm help", "/rlm fix it", "/rlm status", "hi"]), pull=rng.random() < 0.5
    )
    choice = rng.randrange(5)
    if choice == 0:  # a field of the wrong type anywhere
        target = rng.choice(
            [
                payload,
                payload["issue"],
                payload["comment"],
                payload["repository"],
                payload["sender"],
                payload["comment"]["user"],
                payload["installation"],
            ]
        )
        target[rng.choice(list(target))] = rng.choice(HOSTILE_VALUES)
        return json.dumps(payload).encode()
    text = json.dumps(payload).encode()
    if choice == 1:  # random bytes spliced in
        at = rng.randrange(len(text))
        return text[:at] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8))) + text[at:]
    if choice == 2:  # cut short
        return text[: rng.randrange(len(text))]
    if choice == 3:  # deep nesting around a real payload
        depth = rng.choice([2, 63, 64, 65, 500, 5000, 50_000])
        return b"[" * depth + text + b"]" * depth
    return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))  # noise


def test_fuzzed_signed_deliveries_are_never_5xx(app):
    rng = random.Random(20261130)
    statuses: dict[int, int] = {}
    with serve(app) as url, requests.Session() as session:
        for _ in range(1000):
            event = rng.choice(["issue_comment", "pull_request_review_comment", "ping"])
            resp = post_signed(url, mutate(rng), session, event=event)
            statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
            assert resp.status_code < 500, (resp.status_code, resp.text)
            if resp.status_code >= 400:
                assert resp.json()["error"]  # a reason, always
    assert statuses.get(400, 0) > 100 and (statuses.get(200, 0) + statuses.get(202, 0)) > 50, statuses


# ---------------------------------------------------------------- slow clients against the real waitress server


@contextlib.contextmanager
def waitress_server(app, settings: HttpSettings) -> Iterator[str]:
    server = create_http_server(app, "127.0.0.1", 0, settings)
    thread = threading.Thread(target=server.run, daemon=True, name="waitress")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.task_dispatcher.shutdown(timeout=2)
        wasyncore.close_all(server._map)
        thread.join(timeout=5)


class Slowloris:
    """`count` connections that send a request's headers one byte at a time, forever."""

    def __init__(self, port: int, count: int, interval: float = 0.2):
        self.sockets = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
        for sock in self.sockets:
            sock.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\n")
            sock.setblocking(False)
        self.interval, self.stop = interval, threading.Event()
        self.thread = threading.Thread(target=self._drip, daemon=True, name="slowloris")
        self.thread.start()

    def _drip(self) -> None:
        while not self.stop.wait(self.interval):
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.send(b"X")

    def closed_by_server(self) -> int:
        closed = 0
        for sock in self.sockets:
            try:
                closed += sock.recv(1) == b""
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
        return closed

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        for sock in self.sockets:
            sock.close()


def answered_deliveries(url: str, count: int) -> list[int]:
    body = json.dumps(comment_payload("no command here")).encode()
    with requests.Session() as session:
        return [post_signed(url, body, session, timeout=5).status_code for _ in range(count)]


@contextlib.contextmanager
def high_file_descriptors(count: int = 1100) -> Iterator[None]:
    """Hold `count` descriptors open so the server's sockets get numbers past 1023 (select()'s
    limit), as on a busy server; skipped where the open-files limit cannot allow it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + 512
    if soft != resource.RLIM_INFINITY and soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            yield
            return
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(count)]
    try:
        yield
    finally:
        for fd in held:
            os.close(fd)


def test_200_slow_connections_do_not_stop_signed_deliveries(app):
    """Waitress' default (100 connections) stopped accepting here; the configured server does not,
    even with its sockets' descriptors numbered past 1023."""
    settings = HttpSettings(threads=4)
    with high_file_descriptors(), waitress_server(app, settings) as url:
        attack = Slowloris(int(url.rsplit(":", 1)[1]), 200)
        try:
            time.sleep(0.5)  # the slow connections are all open and dripping
            started = time.monotonic()
            assert answered_deliveries(url, 20) == [200] * 20
            assert time.monotonic() - started < 5
            assert attack.closed_by_server() == 0  # still within request_timeout: only the limit was at stake
        finally:
            attack.close()


def test_slow_requests_are_cut_at_request_timeout_and_free_the_server(app):
    """Even past the connection limit: slow requests are closed at request_timeout, then deliveries go."""
    settings = HttpSettings(threads=2, connection_limit=50, request_timeout=1.0)
    with waitress_server(app, settings) as url:
        attack = Slowloris(int(url.rsplit(":", 1)[1]), 60)
        try:
            started = time.monotonic()
            assert answered_deliveries(url, 3) == [200] * 3
            assert time.monotonic() - started < 4.5
            deadline = time.monotonic() + 5
            while attack.closed_by_server() < 50 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert attack.closed_by_server() >= 50
        finally:
            attack.close()


def test_a_body_over_the_limit_is_413_from_waitress(app):
    settings = HttpSettings(threads=2, max_request_body_size=64 * 1024)
    body = json.dumps(comment_payload("/rlm " + "x" * 70_000)).encode()
    with waitress_server(app, settings) as url, requests.Session() as session:
        assert post_signed(url, body, session).status_code == 413
        assert post_signed(url, json.dumps(comment_payload("hi")).encode(), session).status_code == 200


def test_http_settings_from_the_environment():
    settings = HttpSettings.from_env({"RLM_HTTP_CONNECTION_LIMIT": "2000", "RLM_HTTP_REQUEST_TIMEOUT": "7.5"})
    assert (settings.connection_limit, settings.request_timeout, settings.channel_timeout) == (2000, 7.5, 30)
    with pytest.raises(ValueError, match="RLM_HTTP_CHANNEL_TIMEOUT must be a positive number"):
        HttpSettings.from_env({"RLM_HTTP_CHANNEL_TIMEOUT": "-1"})


def test_rlm_serve_refuses_a_bad_http_setting_in_one_sentence(monkeypatch):
    from bot.github.auth import AppSettingsError
    from bot.rlm import Config
    from webhooks.startup import build_config

    engine = Config()
    engine.sandbox.isolation = "none"
    monkeypatch.setenv("RLM_HTTP_REQUEST_TIMEOUT", "soon")
    with pytest.raises(
        AppSettingsError, match="^RLM_HTTP_REQUEST_TIMEOUT must be a positive number, not 'soon'$"
    ):
        build_config(engine)
