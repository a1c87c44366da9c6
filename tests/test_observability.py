"""The App's production settings and probes in one process: a postgresql:// RLM_DB is a URL (never a
file path, its password never logged), `--workers 0` is intake only, /readyz follows the database,
/metrics moves as deliveries and jobs go, JSON log lines carry the delivery and job."""

from __future__ import annotations

import json
import logging
import os
import re

import psycopg
import pytest
import requests

from bot.common import logcontext
from bot.jobs import StoreUnavailable, open_store, safe_target
from bot.jobs.postgres import PostgresJobStore
from bot.rlm import Config
from tests.fakes.github_app import SECRET, comment_payload, post_event, private_key_pem, serve, wait_for
from webhooks import ServerConfig, create_app
from webhooks.observability import DB_UNREACHABLE
from webhooks.startup import build_config

PG_URL = "postgresql://rlm:s3cret-db-password@127.0.0.1:1/rlm"


def metric(text: str, name: str, **labels: str) -> float:
    wanted = "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else ""
    found = re.search(rf"^{re.escape(name + wanted)} ([0-9.e+-]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_a_postgres_url_is_not_a_sqlite_path_and_its_password_is_never_shown(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    env = {
        "GITHUB_APP_ID": "9",
        "GITHUB_PRIVATE_KEY": private_key_pem(),
        "GITHUB_WEBHOOK_SECRET": SECRET,
        "RLM_DB": PG_URL,
    }
    config = ServerConfig.from_env(Config(), env)
    assert config.db_path == PG_URL  # a string, `//` intact (a Path folded it into a file name before)
    assert ServerConfig.from_env(Config(), env, db_path=PG_URL).db_path == PG_URL
    assert safe_target(PG_URL) == "postgresql://rlm:***@127.0.0.1:1/rlm"
    with caplog.at_level(logging.DEBUG), pytest.raises(StoreUnavailable) as e:
        open_store(PG_URL)  # nothing listens on port 1
    assert list(tmp_path.iterdir()) == []  # no directory named after the URL
    assert "s3cret-db-password" not in str(e.value) and "s3cret-db-password" not in caplog.text


def test_intake_only_runs_no_worker_and_needs_no_sandbox(tmp_path, monkeypatch):
    import bot.rlm.sandbox as sandboxes

    monkeypatch.setattr(sandboxes, "bwrap_works", lambda: False)  # an intake machine without user namespaces
    monkeypatch.setenv("GITHUB_APP_ID", "9")
    monkeypatch.setenv("GITHUB_PRIVATE_KEY", private_key_pem())
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", SECRET)
    config = build_config(Config(), workers=0, db=str(tmp_path / "j.sqlite3"))
    app = create_app(config)
    assert app.extensions["rlm"].pool is None
    with serve(app) as url:
        assert requests.get(f"{url}/healthz", timeout=5).json()["workers"] is False
        resp = post_event(url, "issue_comment", comment_payload("/rlm fix it"))
        assert resp.status_code == 202
    store = app.extensions["rlm"].store
    assert store.get(resp.json()["job"]).state == "queued"  # waits for an `rlm worker`
    store.close()


def test_metrics_move_as_deliveries_and_jobs_go(tmp_path):
    done = []

    def handler(job, cancel):
        store.finish(job.id, "done", job.kind)
        done.append(job.id)

    config = ServerConfig(webhook_secret=SECRET, db_path=tmp_path / "j.sqlite3", workers=1)
    app = create_app(config, handler=handler)
    store = app.extensions["rlm"].store
    try:
        with serve(app) as url:
            before = requests.get(f"{url}/metrics", timeout=5)
            assert before.headers["Content-Type"].startswith("text/plain")
            assert metric(before.text, "rlm_jobs", state="done") == 0
            assert metric(before.text, "rlm_database_up") == 1
            post_event(url, "issue_comment", comment_payload("/rlm help"), delivery="d-1")
            post_event(url, "issue_comment", comment_payload("/rlm help"), delivery="d-1")
            post_event(url, "issue_comment", comment_payload("no command here"))
            post_event(url, "issue_comment", comment_payload("/rlm help"), secret="wrong-secret")
            wait_for(lambda: done, timeout=10)

            def scraped() -> str | None:
                text = requests.get(f"{url}/metrics", timeout=5).text
                return text if metric(text, "rlm_jobs_finished_total", kind="help", state="done") else None

            text = wait_for(scraped, timeout=10)
    finally:
        app.extensions["rlm"].pool.stop()
        store.close()
    assert metric(text, "rlm_deliveries_total", decision="queued") == 1
    assert metric(text, "rlm_deliveries_total", decision="duplicate") == 1
    assert metric(text, "rlm_deliveries_total", decision="ignored") == 1
    assert metric(text, "rlm_deliveries_total", decision="refused") == 1
    assert (
        metric(text, "rlm_jobs", state="done") == 1 and metric(text, "rlm_queue_depth", lane="control") == 0
    )
    assert metric(text, "rlm_deliveries_stored") == 2


def test_readyz_follows_the_database(postgres_url, tmp_path, monkeypatch):
    app = create_app(ServerConfig(webhook_secret=SECRET, db_path=postgres_url), start_workers=False)
    store: PostgresJobStore = app.extensions["rlm"].store
    with serve(app) as url:
        assert requests.get(f"{url}/readyz", timeout=5).json() == {"status": "ready"}

        def unreachable(*args, **kwargs):  # the server went away (the far side of the connection)
            raise psycopg.OperationalError("connection to server at 127.0.0.1 failed: Connection refused")

        monkeypatch.setattr(store, "_rows", unreachable)
        resp = requests.get(f"{url}/readyz", timeout=5)
        assert (resp.status_code, resp.json()) == (503, {"status": "unavailable", "reason": DB_UNREACHABLE})
        health = requests.get(f"{url}/healthz", timeout=5)
        assert health.status_code == 200 and health.json() == {"status": "ok", "workers": False}
        assert metric(requests.get(f"{url}/metrics", timeout=5).text, "rlm_database_up") == 0
    store.close()


def test_json_log_lines_carry_the_delivery_and_job(tmp_path):
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Collect()
    handler.addFilter(logcontext.ContextFilter())
    handler.setFormatter(logcontext.JsonFormatter())
    logger = logging.getLogger("webhooks")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    app = create_app(ServerConfig(webhook_secret=SECRET, db_path=tmp_path / "j.sqlite3"), start_workers=False)
    try:
        with serve(app) as url:
            resp = post_event(
                url, "issue_comment", comment_payload("/rlm fix it", number=12), delivery="dlv-77"
            )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        app.extensions["rlm"].store.close()
    lines = [json.loads(r) for r in records]
    (queued,) = [e for e in lines if e["message"].startswith("queued")]
    assert queued["delivery_id"] == "dlv-77" and queued["job_id"] == resp.json()["job"]
    assert (queued["repo"], queued["issue"], queued["level"]) == ("octo/demo", 12, "info")


def test_json_logs_are_opt_in():
    assert not logcontext.json_wanted(False, {})
    assert logcontext.json_wanted(True, {}) and logcontext.json_wanted(False, {"RLM_LOG_FORMAT": "JSON"})
    assert os.environ.get("RLM_LOG_FORMAT") in (None, "", "text", "json")
