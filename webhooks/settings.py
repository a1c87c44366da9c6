"""The App's settings, read from the environment in one place (`ServerConfig.from_env`): the GitHub
App's (GITHUB_*), the workers' (RLM_*), the HTTP server's limits (RLM_HTTP_*), where jobs and
traces live. Everything else in webhooks/ gets them handed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from bot.github.auth import AppSettings, AppSettingsError
from bot.github.repo_config import DEFAULT_COST_CAP_USD, CostCap, RepoSetup, repo_setup_policy
from bot.jobs import DEFAULT_LEASE, is_postgres_url
from bot.rlm import Config

MAX_BODY = 25 * 1024 * 1024  # GitHub caps webhook payloads at 25 MB
NOT_SECONDS = "{name} must be a positive number of seconds, not {value!r}"
NOT_DOLLARS = "{name} must be a positive number of US dollars, such as 5, not {value!r}"
COST_CAP_BELOW_DEFAULT = (
    "RLM_COST_CAP_MAX_USD (${maximum:.2f}) is below the default cap RLM_COST_CAP_USD (${default:.2f}); "
    "raise it or lower the default."
)


ENV_PREFIX = "RLM_HTTP_"
BAD_SETTING = "{name} must be a positive number, not {value!r}"


@dataclass(frozen=True)
class HttpSettings:
    """Limits of the webhook server; each can be set as RLM_HTTP_<NAME> in the environment."""

    threads: int = 8  # requests handled at once (a delivery takes milliseconds)
    connection_limit: int = 1000  # open connections before waitress stops accepting
    channel_timeout: int = 30  # seconds an idle (keep-alive) connection stays open
    request_timeout: float = 15.0  # seconds a client may take to send one whole request
    max_request_header_size: int = 64 * 1024
    max_request_body_size: int = MAX_BODY
    backlog: int = 1024  # connections the kernel queues before waitress accepts them

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> HttpSettings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            kind = float if f.type == "float" else int
            try:
                value = kind(raw)
            except ValueError:
                value = 0
            if value <= 0:
                raise ValueError(BAD_SETTING.format(name=ENV_PREFIX + f.name.upper(), value=raw))
            values[f.name] = value
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass
class WorkerSettings:
    """How the App's workers run jobs (the same for every job)."""

    results_dir: Path = Path("results")
    prefix: str = "/rlm"
    public_url: str | None = None  # where /runs/<token> is reachable; None = trace stays on the server
    draft: bool = False
    can_push_workflows: bool = False
    status_interval: float = 15.0
    allowed_models: set[str] = field(default_factory=set)
    repo_setup: RepoSetup = RepoSetup.ALLOW  # what a repository's `setup:` may do (RLM_REPO_SETUP)
    cost_cap: CostCap = field(default_factory=CostCap)  # RLM_COST_CAP_USD, RLM_COST_CAP_MAX_USD
    api_key: str | None = None  # LLM_API_KEY
    daytona_api_key: str | None = None  # DAYTONA_API_KEY
    api_options: dict = field(default_factory=dict)  # e.g. {"sleep": ..., "max_tries": ...} for tests


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
    http: HttpSettings = field(default_factory=HttpSettings)

    @property
    def prefix(self) -> str:
        return self.worker.prefix

    @classmethod
    def from_env(cls, engine: Config, environ: dict[str, str] | None = None, **overrides) -> ServerConfig:
        """GITHUB_* for the App; RLM_DB, RLM_LEASE_SECONDS, RLM_PUBLIC_URL, RLM_COMMAND_PREFIX, RLM_DRAFT_PRS,
        RLM_PUSH_WORKFLOWS, RLM_ALLOWED_MODELS, RLM_REPO_SETUP, RLM_STATUS_INTERVAL, RLM_COST_CAP_USD,
        RLM_COST_CAP_MAX_USD for the server, LLM_API_KEY and DAYTONA_API_KEY for the runs (the
        readiness check too), RLM_HTTP_* for the HTTP server."""
        env = os.environ if environ is None else environ
        try:
            http = HttpSettings.from_env(env)  # a bad value is a one-line error before anything starts
        except ValueError as e:
            raise AppSettingsError(str(e)) from None
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
            cost_cap=cost_cap(engine, env),
            api_key=env.get("LLM_API_KEY", "").strip() or None,
            daytona_api_key=env.get("DAYTONA_API_KEY", "").strip() or None,
        )
        config = cls(
            webhook_secret=app.webhook_secret,
            engine=engine,
            app=app,
            db_path=db_target(env.get("RLM_DB") or "rlm-jobs.sqlite3"),
            worker=worker,
            lease_seconds=_seconds(env, "RLM_LEASE_SECONDS", DEFAULT_LEASE),
            http=http,
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


def _dollars(env: Mapping[str, str], name: str) -> float | None:
    raw = (env.get(name) or "").strip().lstrip("$")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise AppSettingsError(NOT_DOLLARS.format(name=name, value=env.get(name)))
    return value


def cost_cap(engine: Config, env: Mapping[str, str]) -> CostCap:
    """A run's cost cap: RLM_COST_CAP_USD (else the engine's rlm.max_cost_usd, else $5) when the
    repository sets none; a repository's `rlm.max_cost_usd` may ask up to RLM_COST_CAP_MAX_USD
    (default: the default cap)."""
    default = _dollars(env, "RLM_COST_CAP_USD") or engine.rlm.max_cost_usd or DEFAULT_COST_CAP_USD
    maximum = _dollars(env, "RLM_COST_CAP_MAX_USD") or default
    if maximum < default:
        raise AppSettingsError(COST_CAP_BELOW_DEFAULT.format(maximum=maximum, default=default))
    return CostCap(default, maximum)


def db_target(value: str | Path) -> str | Path:
    """A postgresql:// URL stays a string (a Path would fold its `//` and make it a file name)."""
    return str(value) if is_postgres_url(value) else Path(value)


def _repo_setup(value: str | None) -> RepoSetup:
    try:
        return repo_setup_policy(value)
    except ValueError as e:
        raise AppSettingsError(str(e)) from None
