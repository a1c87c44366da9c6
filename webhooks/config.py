"""The webhook server's settings: the App's environment plus where jobs and traces live."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bot.github.app_worker import WorkerSettings
from bot.github.auth import AppSettings, AppSettingsError
from bot.github.repo_config import RepoSetup, repo_setup_policy
from bot.jobs import DEFAULT_LEASE, is_postgres_url
from bot.rlm import Config

MAX_BODY = 25 * 1024 * 1024  # GitHub caps webhook payloads at 25 MB
NOT_SECONDS = "{name} must be a positive number of seconds, not {value!r}"


@dataclass
class ServerConfig:
    webhook_secret: str | None  # None: every delivery is refused
    engine: Config = field(default_factory=Config)
    app: AppSettings | None = None  # None: deliveries are recorded but no worker runs them
    db_path: str | Path = Path("rlm-jobs.sqlite3")  # a SQLite path or a postgresql:// URL
    workers: int = 2  # run workers in the serving process; 0 = intake only (`rlm worker` runs jobs)
    lease_seconds: float = DEFAULT_LEASE  # a job whose worker stops heartbeating this long is taken over
    max_body: int = MAX_BODY
    max_attempts: int = 2  # a run interrupted by a restart is started again while attempts remain
    worker: WorkerSettings = field(default_factory=WorkerSettings)

    @property
    def prefix(self) -> str:
        return self.worker.prefix

    @classmethod
    def from_env(cls, engine: Config, environ: dict[str, str] | None = None, **overrides) -> ServerConfig:
        """GITHUB_* for the App; RLM_DB, RLM_LEASE_SECONDS, RLM_PUBLIC_URL, RLM_COMMAND_PREFIX, RLM_DRAFT_PRS,
        RLM_PUSH_WORKFLOWS, RLM_ALLOWED_MODELS, RLM_REPO_SETUP, RLM_STATUS_INTERVAL for the server."""
        env = os.environ if environ is None else environ
        app = AppSettings.from_env(env)
        truthy = ("1", "true", "yes", "on")
        worker = WorkerSettings(
            results_dir=Path(engine.results_dir),
            prefix=env.get("RLM_COMMAND_PREFIX") or "/rlm",
            public_url=env.get("RLM_PUBLIC_URL") or None,
            draft=env.get("RLM_DRAFT_PRS", "").lower() in truthy,
            can_push_workflows=env.get("RLM_PUSH_WORKFLOWS", "").lower() in truthy,
            status_interval=_seconds(env, "RLM_STATUS_INTERVAL", 15.0),
            allowed_models={m.strip() for m in (env.get("RLM_ALLOWED_MODELS") or "").split(",") if m.strip()},
            repo_setup=_repo_setup(env.get("RLM_REPO_SETUP")),
        )
        config = cls(
            webhook_secret=app.webhook_secret,
            engine=engine,
            app=app,
            db_path=db_target(env.get("RLM_DB") or "rlm-jobs.sqlite3"),
            worker=worker,
            lease_seconds=_seconds(env, "RLM_LEASE_SECONDS", DEFAULT_LEASE),
        )
        for key, value in overrides.items():
            if value is not None:
                setattr(config, key, db_target(value) if key == "db_path" else value)
        return config


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name) or ""
    if not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise AppSettingsError(NOT_SECONDS.format(name=name, value=raw))
    return value


def db_target(value: str | Path) -> str | Path:
    """A postgresql:// URL stays a string (a Path would fold its `//` and make it a file name)."""
    return str(value) if is_postgres_url(value) else Path(value)


def _repo_setup(value: str | None) -> RepoSetup:
    try:
        return repo_setup_policy(value)
    except ValueError as e:
        raise AppSettingsError(str(e)) from None
