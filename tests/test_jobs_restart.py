"""A server killed mid-run loses no job: `rlm serve`'s process is SIGKILLed while a run is going,
a new one on the same database resumes it once the dead one's lease expires (same status comment,
one PR); a run that cannot be resumed any more is reported on its issue."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from bot.github import messages
from bot.jobs import CONTROL_LANE, RUN_LANE, NewJob, open_store
from tests.conftest import leftovers, py
from tests.fakes.app_env import REPO, finished
from tests.fakes.github_app import SECRET, comment_payload, post_event, private_key_pem, wait_for
from webhooks import create_app
from webhooks.kinds import requeue_policy

SLOW = [
    {
        "task": "^fix",
        "latency": 0.4,
        "responses": [
            py("print('looking')"),
            py("print('still looking')"),
            py("print('almost')"),
            py("""
            print(edit_file("calc.py", "    # TODO: implement\\n    return 0\\n", "    return a + b\\n"))
            FINAL("fixed after a restart")
            """),
        ],
    }
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env, tmp_path: Path, port: int, log_name: str) -> subprocess.Popen:
    engine = env.server.engine
    config_file = tmp_path / "engine.yaml"
    config_file.write_text(yaml.safe_dump(engine.model_dump(mode="json", exclude_none=True)))
    environ = {
        **os.environ,
        "GITHUB_APP_ID": "1",
        "GITHUB_PRIVATE_KEY": private_key_pem(),
        "GITHUB_WEBHOOK_SECRET": SECRET,
        "GITHUB_API_URL": env.fake.url,
        "RLM_STATUS_INTERVAL": "0.05",
        "RLM_PUBLIC_URL": "http://bot.example",
        "RLM_LEASE_SECONDS": "2",
    }
    log = open(tmp_path / log_name, "w")
    cmd = [
        sys.executable,
        "-m",
        "bot",
        "serve",
        "--port",
        str(port),
        "--workers",
        "1",
        "--config",
        str(config_file),
        "--db",
        str(env.server.db_path),
    ]
    proc = subprocess.Popen(cmd, env=environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def up():
        try:
            return requests.get(f"{url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return proc.poll() is not None and pytest.fail((tmp_path / log_name).read_text())

    wait_for(up, timeout=60, what="the server to start")
    return proc


def test_killed_server_resumes_the_run(world, tmp_path):
    env = world(SLOW, engine={"rlm.global_timeout": 60})
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    first = start_server(env, tmp_path, port, "first.log")
    try:
        resp = post_event(url, "issue_comment", comment_payload("/rlm fix the TODO", clone_url=str(env.bare)))
        assert resp.status_code == 202
        wait_for(
            lambda: any("1 iteration " in b for c in env.fake.comments.values() for b in c["history"]),
            timeout=60,
            what="the run to be under way",
        )
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
    store = open_store(env.server.db_path)
    job_id = resp.json()["job"]
    assert store.get(job_id).state == "running"  # what a killed server leaves behind

    second = start_server(env, tmp_path, port, "second.log")
    try:
        job = wait_for(lambda: finished(store, job_id), timeout=60, what="the resumed run to finish")
        health = requests.get(f"{url}/healthz", timeout=5).json()
        counts = store.counts()
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(10)
    assert job.state == "done" and job.outcome == "pr" and job.attempts == 2, job.message
    assert health["status"] == "ok" and counts == {"done": 1}
    (status,) = env.fake.issue_comments(REPO, 7)  # the same status comment, edited by both servers
    assert messages.STATUS_RESTARTED in status["body"]
    assert messages.OUTCOME_PR.format(url=env.fake.created_pulls[0]["html_url"]) in status["body"]
    assert len(env.fake.created_pulls) == 1
    eyes = [
        c
        for c in env.fake.calls
        if c.method == "POST" and c.path.endswith("/reactions") and c.body["content"] == "eyes"
    ]
    assert len(eyes) == 1
    branch = env.fake.created_pulls[0]["head"]
    assert "return a + b" in env.git("show", f"{branch}:calc.py")
    assert leftovers(env.server.engine.cache_root()) == []


def test_run_that_cannot_resume_is_reported(world, tmp_path):
    env = world([{"task": ".", "responses": [py('FINAL("x")')]}])
    env.server.lease_seconds = 0.3
    store = open_store(env.server.db_path, lease_seconds=0.3)
    request = {
        **comment_payload("/rlm fix it")["comment"],
        "repo": REPO,
        "number": 7,
        "requester": "octocat",
        "task": "fix it",
        "clone_url": str(env.bare),
        "comment_id": 555,
        "run_id": "run-xyz",
    }
    status_id = 4242
    env.fake.comments[status_id] = {"repo": REPO, "issue": 7, "body": "running", "history": ["running"]}
    request["status_comment_id"] = status_id
    # The check run its first worker created ends with the run, not left in progress.
    check_id = 5151
    env.fake.check_runs[check_id] = {
        "id": check_id,
        "repo": REPO,
        "status": "in_progress",
        "annotations": [],
        "history": [{}],
    }
    request["check_run_id"] = check_id
    job = store.record_delivery("d1", "issue_comment", NewJob("run", REPO, 7, request, installation_id=42))
    store.claim(CONTROL_LANE, "first")  # accepted, then the first worker started the run and died,
    store.promote(job.id)
    store.claim(RUN_LANE, "first")
    store.activate(job.id)
    time.sleep(0.4)  # its lease expires
    assert (
        store.recover(requeue_policy(max_attempts=2))[0].kind == "run"
    )  # the second resumed it and died too:
    store.claim(RUN_LANE, "second")
    store.activate(job.id)
    time.sleep(0.4)
    app = create_app(env.server)  # the third (max_attempts=2) reports it instead
    try:
        done = wait_for(lambda: finished(store, job.id), timeout=30)
    finally:
        app.extensions["rlm"].pool.stop()
    assert (done.state, done.outcome) == ("failed", "interrupted")
    body = env.fake.comments[status_id]["body"]
    assert messages.OUTCOME_INTERRUPTED.format(prefix="/rlm") in body and "run-xyz" in body
    assert [r["content"] for r in env.fake.reactions.values()] == [messages.REACTION_FAILED]
    assert env.fake.created_pulls == []
    check = env.fake.check_runs[check_id]
    assert (check["status"], check["conclusion"]) == ("completed", "failure")
    assert check["output"]["title"] == messages.OUTCOME_INTERRUPTED.format(prefix="/rlm").splitlines()[0]
