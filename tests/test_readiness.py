"""Honest readiness: /readyz is 503 with a reason per failing check (the sandbox, the job store,
the App's credentials against GitHub, the webhook secret, the model's key), each naming what to
fix and logged once as one line; a wrong GITHUB_API_URL names the URL."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import requests

from bot.github.auth import AppSettings
from bot.jobs import open_store
from bot.rlm import Config
from tests.fakes.github_app import SECRET, private_key_pem, serve, wait_for
from tests.fakes.github_fake import FakeGitHub
from webhooks.intake import create_app
from webhooks.readiness import (
    APP_CONFIRMED,
    GITHUB_NOT_FOUND,
    GITHUB_REFUSED,
    GITHUB_UNREACHABLE,
    NO_APP,
    NO_MODEL_KEY,
    NO_WEBHOOK_SECRET,
    Readiness,
)
from webhooks.settings import ServerConfig, WorkerSettings

SCRIPTED = Config.model_validate({"model": {"name": "scripted/x.yaml"}, "sandbox": {"isolation": "none"}})


def config_for(tmp_path: Path, api_url: str | None, **kw) -> ServerConfig:
    app = (
        AppSettings(app_id="1", private_key=private_key_pem(), webhook_secret=SECRET, api_url=api_url)
        if api_url
        else None
    )
    return ServerConfig(
        webhook_secret=kw.pop("webhook_secret", SECRET),
        engine=kw.pop("engine", SCRIPTED),
        app=app,
        db_path=tmp_path / "jobs.sqlite3",
        worker=WorkerSettings(**kw),
    )


def settle(readiness: Readiness) -> dict[str, str]:
    """The reasons once the background check of the App's credentials has answered."""
    wait_for(lambda: "not been checked" not in str(readiness.reasons()), timeout=30, what="the GitHub check")
    return readiness.reasons()


def test_a_worker_is_ready_once_github_confirms_the_app(tmp_path, caplog):
    fake = FakeGitHub().start()
    store = open_store(tmp_path / "jobs.sqlite3")
    try:
        with caplog.at_level(logging.INFO, logger="webhooks.readiness"):
            readiness = Readiness(
                config_for(tmp_path, fake.url), store, runs_jobs=True, takes_deliveries=False
            )
            assert "github" in readiness.reasons()  # not ready before GitHub answered
            assert settle(readiness.start()) == {}
        assert APP_CONFIRMED % ("rlm-bot", 1, fake.url) in caplog.text
        (call,) = [c for c in fake.calls if c.path == "/app"]
        assert call.auth.startswith("Bearer ") and call.method == "GET"  # the App's JWT
    finally:
        store.close()
        fake.stop()


def test_each_failing_check_names_what_to_fix_once_in_the_log(tmp_path, caplog):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # nothing listens: connections are refused
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/api/v3"
    engine = Config.model_validate(
        {"model": {"name": "openrouter/some/model"}, "sandbox": {"isolation": "none"}}
    )
    store = open_store(tmp_path / "jobs.sqlite3")
    try:
        with caplog.at_level(logging.INFO, logger="webhooks.readiness"):
            readiness = Readiness(
                config_for(tmp_path, url, engine=engine, webhook_secret=None, api_key=None),
                store,
                runs_jobs=True,
                takes_deliveries=True,
            ).start()
            reasons = settle(readiness)
            readiness.reasons()  # asked again: logged once
        assert reasons["webhook_secret"] == NO_WEBHOOK_SECRET
        assert reasons["model_key"] == NO_MODEL_KEY.format(model="openrouter/some/model")
        assert reasons["github"].startswith(GITHUB_UNREACHABLE.split("(")[0].format(url=f"{url}/app"))
        assert f"{url}/app" in reasons["github"] and "GITHUB_API_URL" in reasons["github"]
        lines = [r.getMessage() for r in caplog.records if r.name == "webhooks.readiness"]
        for name, reason in reasons.items():
            assert lines.count(f"not ready: {name}: {reason}") == 1, lines
    finally:
        store.close()


def test_github_refusing_the_credentials_or_a_url_that_is_not_github(tmp_path):
    fake = FakeGitHub().start()
    store = open_store(tmp_path / "jobs.sqlite3")
    try:
        fake.fail("GET", "/app", 401, times=100)
        refused = settle(
            Readiness(config_for(tmp_path, fake.url), store, runs_jobs=True, takes_deliveries=False).start()
        )
        assert refused == {"github": GITHUB_REFUSED.format(url=f"{fake.url}/app", status=401)}
        wrong = f"{fake.url}/not-the-api"
        not_github = settle(
            Readiness(config_for(tmp_path, wrong), store, runs_jobs=True, takes_deliveries=False).start()
        )
        assert not_github == {"github": GITHUB_NOT_FOUND.format(url=f"{wrong}/app")}
        no_app = settle(
            Readiness(config_for(tmp_path, None), store, runs_jobs=True, takes_deliveries=False).start()
        )
        assert no_app == {"github": NO_APP}
    finally:
        store.close()
        fake.stop()


def test_intake_readyz_over_http(tmp_path):
    """An intake replica (no workers) needs the database and the webhook secret, not GitHub."""
    for secret, expected in ((SECRET, (200, None)), (None, (503, NO_WEBHOOK_SECRET))):
        app = create_app(config_for(tmp_path, None, webhook_secret=secret), start_workers=False)
        with serve(app) as url:
            resp = requests.get(f"{url}/readyz", timeout=5)
            assert (resp.status_code, resp.json().get("reason")) == expected, resp.json()
        app.extensions["rlm"].store.close()
