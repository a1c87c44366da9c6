"""What both App processes (`rlm serve`, `rlm worker`) check and do when they start: the settings,
the sandbox isolation a server needs, and the sandboxes a killed process left behind."""

from __future__ import annotations

import logging
from pathlib import Path

from bot.github.auth import AppSettingsError
from bot.rlm import Backend, Config

from .settings import ServerConfig

log = logging.getLogger("webhooks")

CANNOT_LISTEN = "cannot listen on {host}:{port}: {reason}; pick another port or stop what uses this one."


class ServeError(Exception):
    """The server cannot start (database, address); the message says what to change."""


def check_isolation(engine: Config) -> None:
    """A server holds other people's secrets: with the local backend it launches one real sandbox
    at start and refuses to start, naming the container option that is missing, when that fails;
    unisolated sandboxes only when the operator says so (sandbox.isolation: none)."""
    from bot.rlm.sandbox import probe_sandbox

    if engine.sandbox.backend == Backend.LOCAL and engine.sandbox.isolation != "none":
        refused = probe_sandbox()
        if refused:
            raise AppSettingsError(refused)


def build_config(engine: Config, *, workers: int | None = None, db: str | Path | None = None) -> ServerConfig:
    config = ServerConfig.from_env(engine, workers=workers, db_path=db)
    if config.workers > 0:  # an intake-only server runs no sandbox
        check_isolation(engine)
    return config


def reap_at_start(config: ServerConfig) -> None:
    """Remove sandboxes that killed processes left behind (housekeeping: never stops a start)."""
    from bot.rlm.sandbox import reap_all

    try:
        reaped = reap_all(config.engine, daytona_api_key=config.worker.daytona_api_key)
        if reaped[Backend.LOCAL] or reaped[Backend.DAYTONA]:
            log.warning("reaped sandboxes left by a previous server: %s", reaped)
    except Exception as e:  # reaping is housekeeping; the server starts regardless
        log.warning("could not reap old sandboxes: %s", e)
