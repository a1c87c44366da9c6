"""Production shape on a real PostgreSQL: intake replicas (`rlm serve --workers 0`) and workers
(`rlm worker`) as separate processes on one database, against the fake GitHub.

- a worker SIGKILLed mid-run: another worker takes the job over once the lease expires → one PR;
- a worker SIGTERMed mid-run hands the job back and exits within its drain; another worker resumes
  it at once (long before the lease would expire) → one PR;
- two intake replicas receiving the same deliveries and redeliveries → one job per delivery;
- `/rlm cancel` through one replica stops the run another process holds;
- /metrics values move as jobs run."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
import uuid

import pytest
import requests

from bot.github import messages
from bot.jobs import open_store
from bot.rlm.sandbox import reap_all
from tests.conftest import py
from tests.fakes.app_env import REPO, finished
from tests.fakes.github_app import comment_payload, examples, post_event, wait_for
from tests.fakes.processes import Processes

SLOW_FIX = [
    {
        "task": "^fix",
        "latency": 0.5,
        "responses": [
            *[py(f"print('looking {i}')") for i in range(6)],
            py("""
    print(edit_file("calc.py", "    # TODO: implement\\n    return 0\\n", "    return a + b\\n"))
    FINAL("fixed")
    """),
        ],
    }
]
ENDLESS = [{"task": "^think", "latency": 0.3, "responses": [py("import time; time.sleep(0.2)")] * 200}]


@pytest.fixture
def procs_for(tmp_path, postgres_url):
    made: list[Processes] = []

    def make(env) -> Processes:
        p = Processes(env, postgres_url, tmp_path)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()
        reap_all(p.env.server.engine)  # sandboxes a killed worker left behind


def metric(url: str, name: str, **labels: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=5).text
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{re.escape(name)}{re.escape('{' + wanted + '}') if labels else ''} ([0-9.e+-]+)$"
    found = re.search(pattern, text, re.M)
    return float(found.group(1)) if found else 0.0


def test_killed_worker_is_taken_over_after_its_lease_and_one_pr_results(world, procs_for, postgres_url):
    env = world(SLOW_FIX, engine={"rlm.global_timeout": 60})
    procs = procs_for(env)
    intake = procs.intake("intake")
    workers = {name: procs.worker(name) for name in ("w1", "w2")}
    procs.ready()
    store = open_store(postgres_url)
    try:
        resp = post_event(
            intake, "issue_comment", comment_payload("/rlm fix the TODO", clone_url=str(env.bare))
        )
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["job"]
        wait_for(
            lambda: any("1 iteration " in b for c in env.fake.comments.values() for b in c["history"]),
            timeout=60,
            what="the run to be under way",
        )
        held = store.get(job_id)
        assert held.state == "running"
        (holder,) = [name for name, (p, _) in workers.items() if f":{p.pid}:" in held.lease_owner]
        first = workers.pop(holder)[0]
        ((survivor, (second, second_probes)),) = workers.items()
        assert store.get(job_id).lease_owner == held.lease_owner  # the other, alive, never took it
        procs.kill(first)
        assert store.get(job_id).state == "running"
        job = wait_for(
            lambda: finished(store, job_id), timeout=90, what="the second worker to finish the run"
        )
        assert job.state == "done" and job.outcome == "pr" and job.attempts == 2, job.message
        assert len(env.fake.created_pulls) == 1
        (status,) = env.fake.issue_comments(REPO, 7)
        assert messages.STATUS_RESTARTED in status["body"]
        assert "return a + b" in env.git("show", f"{env.fake.created_pulls[0]['head']}:calc.py")
        # The survivor's metrics count the run; the database-wide gauges agree on every process.
        assert metric(second_probes, "rlm_jobs_finished_total", kind="run", state="done") == 1
        assert metric(second_probes, "rlm_run_duration_seconds_count", outcome="pr") == 1
        assert metric(second_probes, "rlm_agents_total") >= 1
        assert (
            metric(intake, "rlm_jobs", state="done") == 1 == metric(second_probes, "rlm_jobs", state="done")
        )
        assert metric(intake, "rlm_deliveries_total", decision="queued") == 1
        lines = [json.loads(line) for line in procs.log(survivor).splitlines() if line.startswith("{")]
        taken = [e for e in lines if "lost its worker" in e["message"]]
        assert taken and taken[0]["job_id"] == job_id and taken[0]["repo"] == REPO and taken[0]["issue"] == 7
    finally:
        store.close()


def test_sigterm_hands_a_running_job_back_and_another_worker_resumes_it_at_once(
    world, tmp_path, postgres_url
):
    env = world(SLOW_FIX, engine={"rlm.global_timeout": 60})
    procs = Processes(env, postgres_url, tmp_path, lease=120.0)  # a lease that would never run out here
    store = open_store(postgres_url)
    try:
        intake = procs.intake("intake")
        workers = {name: procs.worker(name) for name in ("w1", "w2")}
        procs.ready()
        resp = post_event(
            intake, "issue_comment", comment_payload("/rlm fix the TODO", clone_url=str(env.bare))
        )
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["job"]
        wait_for(
            lambda: any("1 iteration" in b for c in env.fake.comments.values() for b in c["history"]),
            timeout=60,
            what="the run to be under way",
        )
        held = store.get(job_id)
        (holder,) = [name for name, (p, _) in workers.items() if f":{p.pid}:" in held.lease_owner]
        first = workers.pop(holder)[0]
        sent = time.monotonic()
        first.send_signal(signal.SIGTERM)  # what `docker stop` / Kubernetes sends, through tini
        assert first.wait(timeout=15) == 0
        stopped = time.monotonic() - sent
        assert stopped < 1 + 5, f"took {stopped:.1f}s to stop (drain 1 s)"
        log = procs.log(holder)
        assert "handed 1 unfinished job(s) back" in log and "Traceback" not in log
        # Taken at once by the other worker: its poll, not the 120 s lease.
        wait_for(lambda: store.get(job_id).attempts == 2, timeout=10, what="another worker to take the job")
        job = wait_for(lambda: finished(store, job_id), timeout=90, what="the other worker to finish the run")
        assert job.state == "done" and job.outcome == "pr" and job.attempts == 2, job.message
        assert len(env.fake.created_pulls) == 1
        (status,) = env.fake.issue_comments(REPO, 7)
        assert messages.STATUS_RESTARTED in status["body"]
    finally:
        store.close()
        procs.close()
        reap_all(env.server.engine)


def test_two_intake_replicas_make_one_job_per_delivery(world, procs_for, postgres_url):
    env = world([{"task": ".", "responses": [py('FINAL("x")')]}])
    procs = procs_for(env)
    a, b = procs.intake("a"), procs.intake("b")
    procs.ready()
    payloads = []
    for i, (_, example) in enumerate(examples("issue_comment")[:4]):
        example["action"], example["comment"]["body"] = "created", "/rlm help"
        example["issue"]["number"], example["installation"] = 100 + i, {"id": 42}
        payloads.append(example)
    payloads += [
        comment_payload(body, number=200 + i) for i, body in enumerate(["/rlm status", "just words"] * 8)
    ]
    deliveries = [(str(uuid.uuid4()), p) for p in payloads]
    statuses: dict[str, list[int]] = {d: [] for d, _ in deliveries}
    lock = threading.Lock()

    def send(url: str, rounds: int) -> None:
        session = requests.Session()
        for _ in range(rounds):  # every delivery to both replicas at once, then redelivered
            for delivery, payload in deliveries:
                status = post_event(
                    url, "issue_comment", payload, delivery=delivery, session=session
                ).status_code
                with lock:
                    statuses[delivery].append(status)

    threads = [threading.Thread(target=send, args=(url, 2)) for url in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    store = open_store(postgres_url)
    try:
        jobs = store.jobs()
        assert store.delivery_count() == len(deliveries)
    finally:
        store.close()
    for delivery, payload in deliveries:
        codes = sorted(statuses[delivery])
        first = 200 if payload["comment"]["body"] == "just words" else 202
        assert codes == [first] + [409] * 7, (delivery, codes)
    assert sorted(j.delivery_id for j in jobs) == sorted(
        d for d, p in deliveries if p["comment"]["body"] != "just words"
    )
    queued = metric(a, "rlm_deliveries_total", decision="queued") + metric(
        b, "rlm_deliveries_total", decision="queued"
    )
    dupes = metric(a, "rlm_deliveries_total", decision="duplicate") + metric(
        b, "rlm_deliveries_total", decision="duplicate"
    )
    assert (queued, dupes) == (len(jobs), 7 * len(deliveries))
    assert (
        metric(a, "rlm_queue_depth", lane="control")
        == len(jobs)
        == metric(b, "rlm_queue_depth", lane="control")
    )


def test_cancel_through_one_replica_stops_the_run_another_process_holds(world, procs_for, postgres_url):
    env = world(ENDLESS, engine={"rlm.global_timeout": 120, "rlm.max_iterations": 200})
    procs = procs_for(env)
    a, b = procs.intake("a"), procs.intake("b")
    runner, runner_probes = procs.worker("runner", workers=1, control_workers=0)  # holds runs only
    procs.worker("replier", workers=0, control_workers=1)  # accepts and answers only
    procs.ready()
    store = open_store(postgres_url)
    try:
        resp = post_event(a, "issue_comment", comment_payload("/rlm think forever", clone_url=str(env.bare)))
        job_id = resp.json()["job"]
        wait_for(lambda: store.get(job_id).state == "running", timeout=60, what="the run to start")
        assert f":{runner.pid}:" in store.get(job_id).lease_owner
        assert metric(b, "rlm_jobs", state="running") == 1
        cancel = post_event(b, "issue_comment", comment_payload("/rlm cancel", comment_id=556))
        assert cancel.status_code == 202
        job = wait_for(lambda: finished(store, job_id), timeout=60, what="the run to stop")
        assert (job.state, job.outcome) == ("cancelled", "cancelled")
        assert store.get(cancel.json()["job"]).outcome == "cancel"
        assert metric(runner_probes, "rlm_jobs_finished_total", kind="run", state="cancelled") == 1
        assert metric(a, "rlm_jobs", state="running") == 0
        replies = [c["body"] for c in env.fake.issue_comments(REPO, 7)]
        assert any(messages.CANCEL_REQUESTED.format(run_id=job.request["run_id"]) in r for r in replies)
        assert env.fake.created_pulls == []
    finally:
        store.close()
