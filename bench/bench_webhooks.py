"""Webhook throughput against a real `rlm serve` on loopback (run by hand, not part of the tests).

    python bench/bench_webhooks.py [--deliveries 500] [--clients 8] [--replays 50] [--warmup 32]

Starts the fake GitHub API (tests/fakes) and `rlm serve` (waitress + worker pool) pointing at it,
then sends signed `issue_comment` deliveries from concurrent clients: mostly `/rlm status` and
`/rlm help` (each answered by a worker with exactly one comment on its own issue) plus comments
without a command (ignored), and finally replays of already-sent delivery ids (must be 409).
Reports p50/p90/p99/max response times and checks that no delivery was lost or handled twice.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.github_app import SECRET, comment_payload, headers_for, private_key_pem  # noqa: E402
from tests.fakes.github_fake import FakeGitHub  # noqa: E402

REPO = "bench/repo"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run_fake(bare: str, conn) -> None:
    """The fake GitHub in a child process: sends its URL, then, when asked, comments per issue."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    fake = FakeGitHub().start()
    fake.add_repo(REPO, bare)
    fake.grant(REPO, "octocat", "write")
    conn.send(fake.url)
    conn.recv()
    per_issue: dict[int, int] = {}
    for comment in list(fake.comments.values()):
        per_issue[comment["issue"]] = per_issue.get(comment["issue"], 0) + 1
    conn.send(per_issue)
    fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--replays", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=32, help="GET /healthz first (not timed)")
    args = parser.parse_args()

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the fake GitHub's access log
    tmp = Path(tempfile.mkdtemp(prefix="rlm-bench-"))
    bare = tmp / "repo.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    # The fake GitHub API gets its own process, so it does not compete with the clients for a GIL.
    fake_end, here = multiprocessing.Pipe()
    fake_proc = multiprocessing.Process(target=run_fake, args=(str(bare), fake_end), daemon=True)
    fake_proc.start()
    fake_url = here.recv()

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GITHUB_APP_ID": "1", "GITHUB_PRIVATE_KEY": private_key_pem(),
           "GITHUB_WEBHOOK_SECRET": SECRET, "GITHUB_API_URL": fake_url}  # fmt: skip
    log = open(tmp / "serve.log", "w")
    cmd = [sys.executable, "-m", "bot", "serve", "--port", str(port), "--workers", str(args.workers),
           "--db", str(tmp / "jobs.sqlite3")]  # fmt: skip
    server = subprocess.Popen(
        cmd, env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                if time.monotonic() > deadline or server.poll() is not None:
                    sys.exit(f"rlm serve did not start; see {tmp / 'serve.log'}")
                time.sleep(0.2)

        kinds = []
        bodies = []
        for i in range(args.deliveries):
            kind = ("ignored", "help", "status", "status", "status")[i % 5]
            text = {"ignored": "just a comment", "help": "/rlm help", "status": "/rlm status"}[kind]
            payload = comment_payload(text, repo=REPO, number=i + 1, comment_id=10_000 + i)
            bodies.append((str(uuid.uuid4()), json.dumps(payload).encode()))
            kinds.append(kind)

        local = threading.local()

        def send(item: tuple[str, bytes]) -> tuple[float, int]:
            conn = getattr(local, "conn", None)
            if conn is None:  # one keep-alive connection per client, like GitHub's senders
                conn = local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            delivery, body = item
            headers = headers_for("issue_comment", body, delivery=delivery)
            start = time.perf_counter()
            conn.request("POST", "/webhook", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            return time.perf_counter() - start, resp.status

        def warm(_: int) -> None:
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/healthz")  # opens the connection and each server thread's database handle
            conn.getresponse().read()

        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(warm, range(args.warmup)))
            started = time.perf_counter()
            results = list(pool.map(send, bodies))
            wall = time.perf_counter() - started
            replays = list(pool.map(send, bodies[: args.replays]))

        times = [t * 1000 for t, _ in results]
        statuses = [s for _, s in results]
        expected = [200 if k == "ignored" else 202 for k in kinds]
        wrong = sum(1 for s, e in zip(statuses, expected, strict=True) if s != e)
        replay_wrong = sum(1 for _, s in replays if s != 409)

        queued = [i for i, k in enumerate(kinds) if k != "ignored"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            jobs = requests.get(f"{url}/healthz", timeout=5).json()["jobs"]
            if jobs.get("done", 0) + jobs.get("failed", 0) >= len(queued):
                break
            time.sleep(0.2)
        here.send("report")
        per_issue = here.recv()
        lost = [i + 1 for i in queued if per_issue.get(i + 1, 0) == 0]
        twice = [n for n, count in per_issue.items() if count > 1]
        stray = [i + 1 for i, k in enumerate(kinds) if k == "ignored" and per_issue.get(i + 1)]

        print(f"deliveries: {len(results)} from {args.clients} clients in {wall:.2f}s "
              f"({len(results) / wall:.0f}/s); replays: {len(replays)}")  # fmt: skip
        print(f"response ms: p50 {statistics.median(times):.1f} · p90 {percentile(times, 90):.1f} · "
              f"p99 {percentile(times, 99):.1f} · max {max(times):.1f}")  # fmt: skip
        slowest = sorted(range(len(times)), key=times.__getitem__)[-8:]
        print(f"slowest 8 (send order: ms): {', '.join(f'{i}: {times[i]:.0f}' for i in sorted(slowest))}")
        print(f"unexpected status codes: {wrong}; replays not refused with 409: {replay_wrong}")
        print(f"jobs: {jobs}; answered issues: {len(per_issue)} of {len(queued)}")
        print(f"lost: {len(lost)}; handled twice: {len(twice)}; answered though ignored: {len(stray)}")
        ok = not (wrong or replay_wrong or lost or twice or stray)
        print("OK" if ok else "PROBLEMS (see above)")
        sys.exit(0 if ok else 1)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(10)
        fake_proc.terminate()


if __name__ == "__main__":
    main()
