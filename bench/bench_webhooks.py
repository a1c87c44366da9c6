"""Webhook throughput against real `rlm serve` processes on loopback (run by hand, not part of the tests).

    python bench/bench_webhooks.py [--deliveries 2000] [--clients 8] [--replays 50] [--backends sqlite,postgres]

Starts the fake GitHub API (tests/fakes) in its own process, then for each backend:
- sqlite: one `rlm serve` (waitress + in-process worker pool) on a SQLite file;
- postgres: two intake replicas (`rlm serve --workers 0`) and one `rlm worker` on one PostgreSQL
  database (RLM_BENCH_POSTGRES_DSN, else a throwaway server started from Debian's binaries);
and sends signed `issue_comment` deliveries from concurrent clients (spread over the replicas):
mostly `/rlm status` and `/rlm help` (each answered by a worker with exactly one comment on its own
issue) plus comments without a command (ignored), then replays of already-sent delivery ids to the
other replica (must be 409). Reports p50/p90/p99/max response times and checks that no delivery was
lost or handled twice.
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
    """The fake GitHub in a child process: sends its URL, then, each time asked, comments per issue
    (and forgets them, for the next backend)."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    fake = FakeGitHub().start()
    fake.add_repo(REPO, bare)
    fake.grant(REPO, "octocat", "write")
    conn.send(fake.url)
    while conn.recv() == "report":
        per_issue: dict[int, int] = {}
        for comment in list(fake.comments.values()):
            per_issue[comment["issue"]] = per_issue.get(comment["issue"], 0) + 1
        fake.comments.clear()
        conn.send(per_issue)
    fake.stop()


class Servers:
    def __init__(self, tmp: Path, fake_url: str, db: str):
        self.tmp, self.db, self.procs = tmp, db, []
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "GITHUB_APP_ID": "1",
            "GITHUB_PRIVATE_KEY": private_key_pem(),
            "GITHUB_WEBHOOK_SECRET": SECRET,
            "GITHUB_API_URL": fake_url,
            "RLM_DB": db,
            "RLM_SANDBOX__ISOLATION": "none",
        }

    def start(self, name: str, *args: str) -> None:
        log = open(self.tmp / f"{name}.log", "w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", *args],
            env=self.env,
            cwd=self.tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append((name, proc))

    def serve(self, name: str, workers: int) -> int:
        port = free_port()
        self.start(name, "serve", "--port", str(port), "--workers", str(workers))
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).ok:
                    return port
            except requests.RequestException:
                if time.monotonic() > deadline or any(p.poll() is not None for _, p in self.procs):
                    sys.exit(f"rlm serve did not start; see {self.tmp / f'{name}.log'}")
                time.sleep(0.2)

    def stop(self) -> None:
        for _, proc in self.procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for _, proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def bench(label: str, ports: list[int], fake_conn, args) -> bool:
    kinds, bodies = [], []
    for i in range(args.deliveries):
        kind = ("ignored", "help", "status", "status", "status")[i % 5]
        text = {"ignored": "just a comment", "help": "/rlm help", "status": "/rlm status"}[kind]
        payload = comment_payload(text, repo=REPO, number=i + 1, comment_id=10_000 + i)
        bodies.append((str(uuid.uuid4()), json.dumps(payload).encode()))
        kinds.append(kind)
    local = threading.local()
    clients = iter(range(10_000))
    lock = threading.Lock()

    def conn_for(replay: bool = False) -> http.client.HTTPConnection:
        if getattr(local, "index", None) is None:
            with lock:
                local.index = next(clients)
        attr = "replay_conn" if replay else "conn"
        conn = getattr(local, attr, None)
        if (
            conn is None
        ):  # one keep-alive connection per client, like GitHub's senders; clients spread over replicas
            port = ports[(local.index + (1 if replay else 0)) % len(ports)]
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            setattr(local, attr, conn)
        return conn

    def send(item: tuple[str, bytes], replay: bool = False) -> tuple[float, int]:
        conn = conn_for(replay)
        delivery, body = item
        start = time.perf_counter()
        conn.request(
            "POST", "/webhook", body=body, headers=headers_for("issue_comment", body, delivery=delivery)
        )
        resp = conn.getresponse()
        resp.read()
        return time.perf_counter() - start, resp.status

    def warm(_: int) -> None:
        conn = conn_for()
        conn.request("GET", "/healthz")  # opens the connection and each server thread's database handle
        conn.getresponse().read()

    with ThreadPoolExecutor(args.clients) as pool:
        list(pool.map(warm, range(args.warmup)))
        started = time.perf_counter()
        results = list(pool.map(send, bodies))
        wall = time.perf_counter() - started
        replays = list(pool.map(lambda item: send(item, replay=True), bodies[: args.replays]))

    times = [t * 1000 for t, _ in results]
    expected = [200 if k == "ignored" else 202 for k in kinds]
    wrong = sum(1 for (_, s), e in zip(results, expected, strict=True) if s != e)
    replay_wrong = sum(1 for _, s in replays if s != 409)
    queued = [i for i, k in enumerate(kinds) if k != "ignored"]
    url = f"http://127.0.0.1:{ports[0]}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        jobs = requests.get(f"{url}/healthz", timeout=5).json()["jobs"]
        if jobs.get("done", 0) + jobs.get("failed", 0) >= len(queued):
            break
        time.sleep(0.2)
    drained = time.perf_counter() - started
    fake_conn.send("report")
    per_issue = fake_conn.recv()
    lost = [i + 1 for i in queued if per_issue.get(i + 1, 0) == 0]
    twice = [n for n, count in per_issue.items() if count > 1]
    stray = [i + 1 for i, k in enumerate(kinds) if k == "ignored" and per_issue.get(i + 1)]
    print(f"\n== {label}")
    print(
        f"deliveries: {len(results)} from {args.clients} clients over {len(ports)} replica(s) in {wall:.2f}s "
        f"({len(results) / wall:.0f}/s); replays to the other replica: {len(replays)}"
    )
    print(
        f"response ms: p50 {statistics.median(times):.1f} · p90 {percentile(times, 90):.1f} · "
        f"p99 {percentile(times, 99):.1f} · max {max(times):.1f}"
    )
    print(f"unexpected status codes: {wrong}; replays not refused with 409: {replay_wrong}")
    print(
        f"jobs: {jobs}; answered issues: {len(per_issue)} of {len(queued)} (all answered after {drained:.1f}s)"
    )
    print(f"lost: {len(lost)}; handled twice: {len(twice)}; answered though ignored: {len(stray)}")
    ok = not (wrong or replay_wrong or lost or twice or stray)
    print("OK" if ok else "PROBLEMS (see above)")
    return ok


def postgres_dsn(stack: list) -> str:
    dsn = os.environ.get("RLM_BENCH_POSTGRES_DSN")
    if dsn:
        return dsn
    from tests.postgres import _bindir, start_throwaway, stop_throwaway

    bindir = _bindir()
    if bindir is None:
        sys.exit("no PostgreSQL: set RLM_BENCH_POSTGRES_DSN or install Debian's postgresql")
    dsn, data = start_throwaway(bindir)
    stack.append(lambda: stop_throwaway(bindir, data))
    return dsn


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--replays", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2, help="control threads answering the commands")
    parser.add_argument("--warmup", type=int, default=32, help="GET /healthz first (not timed)")
    parser.add_argument("--backends", default="sqlite,postgres")
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
    cleanup: list = []
    ok = True
    try:
        for backend in args.backends.split(","):
            case = tmp / backend
            case.mkdir()
            if backend == "sqlite":
                servers = Servers(case, fake_url, str(case / "jobs.sqlite3"))
                cleanup.append(servers.stop)
                ports = [servers.serve("serve", args.workers)]
                label = "SQLite: one `rlm serve` with in-process workers"
            else:
                servers = Servers(case, fake_url, postgres_dsn(cleanup))
                cleanup.append(servers.stop)
                servers.start("worker", "worker", "--workers", "0", "--control-workers", str(args.workers))
                ports = [servers.serve("intake-a", 0), servers.serve("intake-b", 0)]
                label = "PostgreSQL: two intake replicas (`rlm serve --workers 0`) + one `rlm worker`"
            ok = bench(label, ports, here, args) and ok
            servers.stop()
            cleanup.remove(servers.stop)
    finally:
        for step in reversed(cleanup):
            step()
        here.send("stop")
        fake_proc.join(10)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
