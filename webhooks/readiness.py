"""Honest readiness: `/readyz` answers 200 only when every check this process needs passes, and
otherwise 503 with one reason per failing check, each naming what to fix (a URL, a variable).

- sandbox: one real sandbox launched at start (processes that run jobs only);
- database: the job store answers (asked on every probe);
- github: the App's credentials work: `GET /app` with the App's JWT, retried in the background
  until it does (processes that run jobs only); the App's slug is logged once it answers;
- webhook_secret: set (processes that take deliveries only);
- model_key: the configured model has its key (processes that run jobs only).

A check that starts failing is logged once, as one line with its reason.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from bot.github.api import GitHubAPI, GitHubError
from bot.github.auth import AppAuth, AppSettings, AppSettingsError
from bot.jobs import JobStore
from bot.pipeline import MissingKey, missing_keys

from .settings import ServerConfig

log = logging.getLogger("webhooks.readiness")

DB_UNREACHABLE = "the job database is not answering; check RLM_DB and that the database is up."

NO_APP = (
    "the App's settings are missing; set GITHUB_APP_ID and GITHUB_PRIVATE_KEY (or GITHUB_PRIVATE_KEY_PATH)."
)
GITHUB_PENDING = "the App's credentials have not been checked against GitHub yet."
GITHUB_REFUSED = (
    "GitHub at {url} refused the App's credentials ({status}); check GITHUB_APP_ID and GITHUB_PRIVATE_KEY."
)
GITHUB_NOT_FOUND = (
    "{url} answered 404, so it is not GitHub's API; check GITHUB_API_URL "
    "(https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server)."
)
GITHUB_UNREACHABLE = "cannot reach GitHub at {url} ({error}); check GITHUB_API_URL and the network."
GITHUB_ANSWERED = "GitHub at {url} answered {status}; check GITHUB_API_URL."
NO_WEBHOOK_SECRET = (
    "GITHUB_WEBHOOK_SECRET is not set, so every delivery is refused; set it to the App's webhook secret."
)
NO_MODEL_KEY = "the model {model} needs a key; set LLM_API_KEY."
NO_DAYTONA_KEY = "sandbox.backend is daytona but DAYTONA_API_KEY is not set; set it."
APP_CONFIRMED = "GitHub App %r (id %s) confirmed at %s"
CHECK_FAILING = "not ready: %s: %s"
CHECK_PASSING = "ready again: %s"
RECHECK_SECONDS = 30.0


def check_app(
    settings: AppSettings, api_factory: Callable[..., GitHubAPI] = GitHubAPI
) -> tuple[dict | None, str | None]:
    """GET /app with the App's JWT: (the App, None) when the credentials work, else (None, reason)."""
    url = f"{settings.api_url.rstrip('/')}/app"
    try:
        api = api_factory(AppAuth(settings).jwt(), settings.api_url, bearer=True, max_tries=1, timeout=10)
        app = api.request("GET", "/app")
    except AppSettingsError as e:
        return None, str(e)
    except GitHubError as e:
        if e.status in (401, 403):
            return None, GITHUB_REFUSED.format(url=url, status=e.status)
        if e.status == 404:
            return None, GITHUB_NOT_FOUND.format(url=url)
        if e.status is None:
            cause = str(e).split("(", 1)[-1].split(")", 1)[0] if "(" in str(e) else str(e)
            return None, GITHUB_UNREACHABLE.format(url=url, error=cause)
        return None, GITHUB_ANSWERED.format(url=url, status=e.status)
    if not isinstance(app, dict) or not app.get("slug"):
        return None, GITHUB_ANSWERED.format(url=url, status="without an App")
    return app, None


class Readiness:
    """What `/readyz` reports for this process: `runs_jobs` (a worker pool here) and `takes_deliveries`
    (the webhook endpoint here) choose the checks."""

    def __init__(
        self,
        config: ServerConfig,
        store: JobStore,
        *,
        runs_jobs: bool,
        takes_deliveries: bool,
        api_factory: Callable[..., GitHubAPI] = GitHubAPI,
        recheck: float = RECHECK_SECONDS,
    ):
        self.config, self.store = config, store
        self.runs_jobs, self.takes_deliveries = runs_jobs, takes_deliveries
        self._api_factory, self._recheck = api_factory, recheck
        self._lock = threading.Lock()
        self._failing: dict[str, str] = {}
        self._github: str | None = GITHUB_PENDING if runs_jobs else None
        self._stop = threading.Event()
        self._fixed = self._static_reasons()

    def _static_reasons(self) -> dict[str, str]:
        reasons = {}
        if self.takes_deliveries and not self.config.webhook_secret:
            reasons["webhook_secret"] = NO_WEBHOOK_SECRET
        if self.runs_jobs:
            from bot.rlm.sandbox import probe_sandbox

            engine = self.config.engine
            if engine.sandbox.backend == "local" and engine.sandbox.isolation != "none":
                refused = probe_sandbox()
                if refused:
                    reasons["sandbox"] = refused
            worker = self.config.worker
            for key in missing_keys(engine, worker.api_key, worker.daytona_api_key):
                if key == MissingKey.LLM:
                    reasons["model_key"] = NO_MODEL_KEY.format(model=engine.model.name)
                else:
                    reasons["daytona_key"] = NO_DAYTONA_KEY
        return reasons

    def start(self) -> Readiness:
        """Check the App's credentials in the background until they work (processes that run jobs)."""
        if self.runs_jobs:
            threading.Thread(target=self._check_github, name="rlm-readiness", daemon=True).start()
        self.reasons()  # log what fails from the start
        return self

    def stop(self) -> None:
        self._stop.set()

    def _check_github(self) -> None:
        while not self._stop.is_set():
            app_settings = self.config.app
            if app_settings is None:
                reason = NO_APP
                found = None
            else:
                found, reason = check_app(app_settings, self._api_factory)
            if found is not None:  # said before the check passes, so whoever sees it ready can read why
                log.info(APP_CONFIRMED, found.get("slug"), found.get("id"), app_settings.api_url)
            with self._lock:
                self._github = reason
            self.reasons()
            if found is not None:
                return
            self._stop.wait(self._recheck)

    def reasons(self) -> dict[str, str]:
        """Every failing check's reason, by check name; empty when ready. A check that starts
        failing is logged once; one that recovers is logged too."""
        reasons = dict(self._fixed)
        try:
            self.store.ping()
        except self.store.errors:
            reasons["database"] = DB_UNREACHABLE
        with self._lock:
            if self._github:
                reasons["github"] = self._github
            before, self._failing = self._failing, dict(reasons)
        for name, reason in reasons.items():
            if before.get(name) != reason and reason != GITHUB_PENDING:
                log.warning(CHECK_FAILING, name, reason)
        for name in before.keys() - reasons.keys():
            log.info(CHECK_PASSING, name)
        return reasons
