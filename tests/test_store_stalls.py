"""The App against a database that stops answering, and DSNs that must never show their password.

A TCP proxy on loopback sits in front of the tests' real PostgreSQL; frozen, it keeps accepting
connections and holding the open ones but forwards nothing (a server that hangs, a network that
drops packets silently). The App must stay alive (/healthz), say it is not ready (/readyz) and
refuse deliveries with 503, each within a few seconds.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from bot.jobs import StoreUnavailable, open_store, safe_target
from tests.fakes.github_app import SECRET, comment_payload, headers_for, serve
from webhooks import ServerConfig, create_app
from webhooks.intake import DB_DOWN
from webhooks.observability import DB_UNREACHABLE

ANSWER_WITHIN = 12.0  # seconds: connect 5 s or a call cut at 6 s, plus a loaded CI machine


class FrozenProxy:
    """Forwards 127.0.0.1:<port> to `target` until `freeze()`; then forwards nothing, ever."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.frozen = threading.Event()
        self.stopped = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def freeze(self) -> None:
        self.frozen.set()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.sockets.append(client)
            if self.frozen.is_set():
                continue  # accepted, never answered
            upstream = socket.create_connection(self.target, timeout=5)
            self.sockets.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        src.settimeout(0.2)
        while not self.stopped.is_set():
            if self.frozen.is_set():
                time.sleep(0.05)  # hold the connection open, read nothing
                continue
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            try:
                dst.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()
        for s in self.sockets:
            s.close()
        self.thread.join(timeout=5)


def through(dsn: str, port: int) -> str:
    parts = urlsplit(dsn)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


@pytest.fixture
def proxy(postgres_url):
    parts = urlsplit(postgres_url)
    p = FrozenProxy((parts.hostname, parts.port))
    yield p, through(postgres_url, p.port)
    p.close()


def timed(fn):
    start = time.monotonic()
    try:
        return fn(), time.monotonic() - start
    except requests.RequestException as e:
        return e, time.monotonic() - start


def test_a_frozen_database_gets_503s_within_seconds_and_healthz_never_waits(proxy):
    p, dsn = proxy
    app = create_app(ServerConfig(webhook_secret=SECRET, db_path=dsn), start_workers=False)
    store = app.extensions["rlm"].store
    body = json.dumps(comment_payload("/rlm help")).encode()

    def deliver(delivery: str) -> requests.Response:
        headers = headers_for("issue_comment", body, delivery=delivery)
        return requests.post(f"{url}/webhook", data=body, headers=headers, timeout=30)

    try:
        with serve(app) as url:
            assert requests.get(f"{url}/readyz", timeout=10).status_code == 200
            assert deliver("before-freeze").status_code == 202
            p.freeze()
            with ThreadPoolExecutor(4) as pool:
                ready = pool.submit(timed, lambda: requests.get(f"{url}/readyz", timeout=30))
                delivered = pool.submit(timed, lambda: deliver("while-frozen"))
                time.sleep(0.5)  # both now wait on the frozen database
                health, health_took = timed(lambda: requests.get(f"{url}/healthz", timeout=30))
                (ready, ready_took), (delivered, delivered_took) = ready.result(), delivered.result()
            assert health_took < 2 and health.status_code == 200, health
            assert ready_took < ANSWER_WITHIN, ready
            assert (ready.status_code, ready.json()["reason"]) == (503, DB_UNREACHABLE)
            assert delivered_took < ANSWER_WITHIN, delivered
            assert (delivered.status_code, delivered.json()["error"]) == (503, DB_DOWN)
            # A new connection (the old one was cut) meets the same frozen server: bounded too.
            again, again_took = timed(lambda: requests.get(f"{url}/readyz", timeout=30))
            assert again_took < ANSWER_WITHIN and again.status_code == 503
    finally:
        p.stopped.set()
        store.close()


# ---------------------------------------------------------------- DSNs never show their password

PASSWORD = "Zq9-hunter2"
MALFORMED = [
    f"postgresql://rlm:{PASSWORD}127.0.0.1:5432/rlm",  # the `@` forgotten
    f"postgresql://rlm:{PASSWORD}/127.0.0.1:5432/rlm",  # a `/` for the `@`
    f"postgresql://rlm:{PASSWORD}@x@127.0.0.1:1/rlm",  # an unencoded `@` in the password
    f"postgres://rlm:{PASSWORD}%zz@127.0.0.1:1/rlm",  # a bad percent-escape
    f"postgresql://rlm:{PASSWORD}@[::1:1/rlm",  # an unclosed IPv6 bracket
    f"postgresql://rlm:{PASSWORD}@127.0.0.1:notaport/rlm",
    f"postgresql://127.0.0.1:1/rlm?user=rlm&password={PASSWORD}",  # the password as a parameter
    f"postgresql://rlm:{PASSWORD}@127.0.0.1:1/rlm?sslmode=bogus",
]


@pytest.mark.parametrize("dsn", MALFORMED)
def test_no_dsn_form_prints_its_password(dsn, caplog, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert PASSWORD not in safe_target(dsn)
    with caplog.at_level(logging.DEBUG), pytest.raises(StoreUnavailable) as e:
        open_store(dsn)
    message = str(e.value)
    assert PASSWORD not in message and PASSWORD[:6] not in message, message
    assert PASSWORD not in caplog.text
    assert message.startswith("cannot open the job database postgres")


def test_a_key_value_dsn_never_shows_its_password():
    assert safe_target(f"host=db user=rlm password={PASSWORD} dbname=rlm") == (
        "host=db user=rlm password=*** dbname=rlm"
    )
    assert safe_target(f"host=db password='{PASSWORD} x' dbname=rlm") == "host=db password=*** dbname=rlm"


def test_a_well_formed_dsn_shows_all_but_its_password():
    assert safe_target(f"postgresql://rlm:{PASSWORD}@db.internal:5433/rlm?sslmode=require") == (
        "postgresql://rlm:***@db.internal:5433/rlm?sslmode=require"
    )
    assert safe_target("postgresql://rlm@db/rlm") == "postgresql://rlm@db/rlm"
