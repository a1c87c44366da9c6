"""`rlm view`'s server and the webhook server's blueprint, over real HTTP: loopback only, a secret
path prefix, nothing served outside the given results, and the API the page uses."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server as werkzeug_server

from bench.synthetic import write_synthetic
from bot.viewer import make_server, new_token, viewer_blueprint
from bot.viewer.routes import SECURITY_HEADERS
from bot.viewer.server import ViewError, ViewerServer, in_background

SECRET = "TOP-SECRET-NOT-A-RUN"
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def results(tmp_path: Path) -> Path:
    results = tmp_path / "results"
    write_synthetic(results, agents=6, iterations=30, seed=11)
    _, events = write_synthetic(tmp_path / "staging", agents=4, iterations=16, seed=12, results=False)
    lines = events.read_text().splitlines(keepends=True)
    (results / "live-run.events.jsonl").write_text("".join(lines[:20]))
    (results / "notes.txt").write_text(SECRET)
    (results / "package.json").write_text(json.dumps({"name": SECRET}))
    (tmp_path / "outside.json").write_text(json.dumps({"secret": SECRET, "agents": [], "totals": {}}))
    (results / "escape.json").symlink_to(tmp_path / "outside.json")
    return results


@pytest.fixture
def server(results: Path) -> Iterator[ViewerServer]:
    with in_background(make_server(results, 0)) as s:
        yield s


def get(port: int, path: str, host: str | None = None, method: str = "GET", headers: dict | None = None):
    """A raw request: the path goes on the wire exactly as given (no client-side normalising)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", host or f"127.0.0.1:{port}")
    for name, value in (headers or {}).items():
        conn.putheader(name, value)
    conn.endheaders()
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, dict(response.getheaders()), body


def non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent; this only picks the outgoing interface
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_binds_loopback_only(server):
    assert server.server_address[0] == "127.0.0.1"
    assert server.url.startswith(f"http://127.0.0.1:{server.port}/")
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to try")
    with pytest.raises(OSError):
        socket.create_connection((address, server.port), timeout=2).close()


def test_everything_lives_under_the_secret_prefix(server):
    token = server.token
    assert len(token) >= 20
    assert get(server.port, "/")[0] == 404
    assert get(server.port, "/api/runs")[0] == 404
    assert get(server.port, f"/{token[:-1]}/api/runs")[0] == 404
    status, headers, _ = get(server.port, f"/{token}")
    assert status == 302 and headers["Location"] == f"/{token}/"
    status, headers, body = get(server.port, f"/{token}/")
    assert status == 200 and b'<script src="viewer.js"' in body
    for name, value in SECURITY_HEADERS.items():
        assert headers[name] == value
    assert get(server.port, f"/{token}/viewer.js")[0] == 200


@pytest.mark.parametrize(
    "path",
    [
        "/{t}/../notes.txt",
        "/{t}/..%2fnotes.txt",
        "/{t}/notes.txt",
        "/{t}/static/index.html",
        "/{t}/static/../server.py",
        "/{t}/server.py",
        "/{t}/api/runs/notes",
        "/{t}/api/runs/package",
        "/{t}/api/runs/escape",
        "/{t}/api/runs/..",
        "/{t}/api/runs/../notes.txt",
        "/{t}/api/runs/..%2F..%2Fetc%2Fpasswd",
        "/{t}/api/runs/%2Fetc%2Fpasswd",
        "/{t}/api/runs//etc/passwd",
        "/{t}/api/runs/synthetic-6a-30i/../../notes.txt",
        "/{t}/api/runs/synthetic-6a-30i/changes/../../../notes.txt",
        "/{t}//etc/passwd",
        "//etc/passwd",
        "/etc/passwd",
        "http://127.0.0.1/etc/passwd",
    ],
)
def test_nothing_outside_the_results_is_served(server, path):
    status, _, body = get(server.port, path.format(t=server.token))
    assert status in (400, 403, 404)
    assert SECRET.encode() not in body and b"root:" not in body


def test_other_host_names_and_methods_are_refused(server):
    status, _, body = get(server.port, f"/{server.token}/api/runs", host="attacker.example")
    assert status == 403 and b"localhost" in body
    assert get(server.port, f"/{server.token}/api/runs", host=f"localhost:{server.port}")[0] == 200
    assert get(server.port, f"/{server.token}/api/runs", method="POST")[0] == 405


def test_api_runs_run_and_events(server, results):
    base = f"/{server.token}/api/runs"
    status, _, body = get(server.port, base)
    runs = {r["id"]: r for r in json.loads(body)}
    assert status == 200 and set(runs) == {"synthetic-6a-30i", "live-run"}
    assert runs["live-run"]["live"] and runs["live-run"]["status"] == "running"

    status, _, body = get(server.port, f"{base}/synthetic-6a-30i")
    assert status == 200 and body == (results / "synthetic-6a-30i.json").read_bytes()

    status, _, body = get(server.port, f"{base}/live-run")
    folded = json.loads(body)
    assert folded["status"] == "running" and folded["_seq"] == 20 and "_index" not in folded

    status, _, body = get(server.port, f"{base}/live-run/changes?after=15")
    answer = json.loads(body)
    assert answer["run"]["_seq"] == 20 and answer["run"]["totals"] == folded["totals"]
    assert answer["agents"] and {a["id"] for a in answer["agents"]} <= {a["id"] for a in folded["agents"]}
    assert answer["live"] is True and answer["more"] is False and answer["now"] > 0
    assert json.loads(get(server.port, f"{base}/live-run/changes?after=20")[2])["agents"] == []
    assert json.loads(get(server.port, f"{base}/synthetic-6a-30i/changes?after=0")[2])["live"] is False
    assert get(server.port, f"{base}/live-run/changes?after=x")[0] == 400
    assert get(server.port, f"{base}/live-run/events?after=15")[0] == 404
    assert get(server.port, f"{base}/live-run/other")[0] == 404


def test_one_file_serves_that_run_only(results):
    with in_background(make_server(results / "synthetic-6a-30i.json", 0)) as server:
        status, _, body = get(server.port, f"/{server.token}/api/runs")
        assert [r["id"] for r in json.loads(body)] == ["synthetic-6a-30i"]
        assert get(server.port, f"/{server.token}/api/runs/live-run")[0] == 404


def test_missing_results_is_a_clear_error(tmp_path):
    with pytest.raises(ViewError, match="No results at"):
        make_server(tmp_path / "nothing-here", 0)


def test_rlm_view_command_prints_a_loopback_url(results):
    env = {**os.environ, "DISPLAY": "", "WAYLAND_DISPLAY": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "view", str(results), "--no-browser"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        url = lines[1].strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/"), lines
        port = int(url.split(":")[2].split("/")[0])
        path = "/" + url.split("/", 3)[3]
        status, _, body = get(port, path + "api/runs")
        assert status == 200 and len(json.loads(body)) == 2
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ---------------------------------------------------------------------- the Flask blueprint


@pytest.fixture
def webapp(results: Path):
    tokens = {
        new_token(): results / "synthetic-6a-30i.json",
        new_token(): results / "live-run.json",
        new_token(): results / "queued-run.json",  # a job whose run has not started
    }
    app = Flask(__name__)
    app.register_blueprint(viewer_blueprint(tokens.get))
    with in_background(werkzeug_server("127.0.0.1", 0, app, threaded=True)) as server:
        yield server.server_port, list(tokens)


def test_blueprint_serves_one_run_per_token(webapp):
    port, (done, live, _) = webapp
    status, headers, _ = get(port, f"/runs/{done}")
    assert status == 302 and headers["Location"].endswith(f"/runs/{done}/")
    status, headers, body = get(port, f"/runs/{done}/")
    assert status == 200 and b"viewer.js" in body
    assert headers["Referrer-Policy"] == "no-referrer" and headers["Cache-Control"] == "no-store"
    status, _, body = get(port, f"/runs/{done}/api/runs")
    assert [r["id"] for r in json.loads(body)] == ["synthetic-6a-30i"]
    status, headers, body = get(
        port, f"/runs/{done}/api/runs/synthetic-6a-30i", headers={"Accept-Encoding": "gzip"}
    )
    assert (
        headers["Content-Encoding"] == "gzip" and json.loads(gzip.decompress(body))["totals"]["agents"] == 6
    )
    # a link whose results file is not written yet shows the fold of the events, live
    status, _, body = get(port, f"/runs/{live}/api/runs/live-run")
    assert status == 200 and json.loads(body)["status"] == "running"
    status, _, body = get(port, f"/runs/{live}/api/runs/live-run/changes?after=18")
    assert json.loads(body)["run"]["_seq"] == 20 and json.loads(body)["live"] is True
    # one token never reaches another run
    assert get(port, f"/runs/{done}/api/runs/live-run")[0] == 404


@pytest.mark.parametrize(
    "path",
    [
        "/runs/{bad}/",
        "/runs/{bad}/api/runs",
        "/runs/short/",
        "/runs/{t}/notes.txt",
        "/runs/{t}/../../notes.txt",
        "/runs/{t}/api/runs/..%2F..%2Fnotes.txt",
        "/runs/{t}/api/runs/package",
        "/runs/{t}/api/runs/escape",
        "/runs/{t}/static/fold.js",
    ],
)
def test_blueprint_refuses_unknown_tokens_and_other_files(webapp, path):
    port, (done, _, _) = webapp
    status, _, body = get(port, path.format(t=done, bad=new_token()))
    assert status == 404
    assert SECRET.encode() not in body


def test_blueprint_shows_a_queued_run_once_it_starts(webapp, results):
    port, (_, _, queued) = webapp
    assert get(port, f"/runs/{queued}/")[0] == 200  # the page says it is waiting
    assert json.loads(get(port, f"/runs/{queued}/api/runs")[2]) == []
    (results / "queued-run.events.jsonl").write_bytes((results / "live-run.events.jsonl").read_bytes())
    status, _, body = get(port, f"/runs/{queued}/api/runs")
    assert status == 200 and [r["id"] for r in json.loads(body)] == ["queued-run"]
