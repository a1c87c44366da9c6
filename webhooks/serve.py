"""`rlm serve`: the webhook app behind waitress (a production WSGI server), with a worker pool in
the same process unless `--workers 0` (intake only; `rlm worker` processes run the jobs).

On start: sandboxes a killed process left behind are reaped; jobs whose worker died are resumed or
reported once their leases expire (see bot/jobs/). Every log line is redacted; `--log-json` or
RLM_LOG_FORMAT=json writes one JSON object per line with the delivery, job, run, repo and issue.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bot.common.secrets import REDACTOR
from bot.github.auth import AppSettingsError
from bot.rlm import Config, load_config

from .app import create_app
from .config import ServerConfig
from .http_server import HttpSettings, create_http_server

log = logging.getLogger("webhooks")

CANNOT_LISTEN = "cannot listen on {host}:{port}: {reason}; pick another port or stop what uses this one."


class ServeError(Exception):
    """The server cannot start (database, address); the message says what to change."""


class RedactingFilter(logging.Filter):
    """Masks every known secret in a log record's final message and in its traceback (an
    exception's text, e.g. a response body, is as likely to hold one as the message)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = REDACTOR.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        if record.exc_info:  # formatters use this text as it is (another handler may have made it)
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_text = REDACTOR.redact(text)
        return True


def install_log_redaction(level: int = logging.INFO, json_lines: bool = False) -> None:
    from bot import logcontext

    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)  # `rlm` itself configured WARNING before this command ran
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    logcontext.install(logcontext.json_wanted(json_lines))


UNISOLATED = (
    "bubblewrap cannot create namespaces here, so model-written code would run unisolated next to "
    "the app's private key and tokens. Allow user namespaces (in Docker: --security-opt "
    "seccomp=unconfined), or use sandbox.backend: daytona, or set sandbox.isolation: none to accept "
    "that risk."
)


def check_isolation(engine: Config) -> None:
    """A server holds other people's secrets: with the local backend it will not fall back to
    unisolated sandboxes unless the operator says so (sandbox.isolation: none)."""
    from bot.rlm.sandbox import bwrap_works

    if engine.sandbox.backend == "local" and engine.sandbox.isolation == "auto" and not bwrap_works():
        raise AppSettingsError(UNISOLATED)


def build_config(engine: Config, *, workers: int | None = None, db: str | Path | None = None) -> ServerConfig:
    try:
        HttpSettings.from_env()  # a bad RLM_HTTP_* value is a one-line error before anything starts
    except ValueError as e:
        raise AppSettingsError(str(e)) from None
    config = ServerConfig.from_env(engine, workers=workers, db_path=db)
    if config.workers > 0:  # an intake-only server runs no sandbox
        check_isolation(engine)
    return config


def reap_at_start(config: ServerConfig) -> None:
    """Remove sandboxes that killed processes left behind (housekeeping: never stops a start)."""
    from bot.rlm.sandbox import reap_all

    try:
        reaped = reap_all(config.engine)
        if reaped["local"] or reaped["daytona"]:
            log.warning("reaped sandboxes left by a previous server: %s", reaped)
    except Exception as e:  # reaping is housekeeping; the server starts regardless
        log.warning("could not reap old sandboxes: %s", e)


def serve(
    config: ServerConfig, host: str = "127.0.0.1", port: int = 8080, threads: int = 8, json_logs: bool = False
) -> None:
    """Run until interrupted. Blocks. HTTP limits come from RLM_HTTP_* (see http_server.py)."""
    from bot.jobs import StoreUnavailable, safe_target

    install_log_redaction(json_lines=json_logs)
    if config.workers > 0:
        reap_at_start(config)
    http = HttpSettings.from_env(threads=threads)
    config.max_body = http.max_request_body_size  # one body limit, in waitress and in the app
    try:
        app = create_app(config)
    except StoreUnavailable as e:
        raise ServeError(str(e)) from None
    try:
        server = create_http_server(app, host, port, http)
    except OSError as e:
        pool = app.extensions["rlm"].pool
        if pool is not None:  # a job it took in the meantime is resumed by the next worker
            pool.stop(timeout=1.0)
        raise ServeError(CANNOT_LISTEN.format(host=host, port=port, reason=e.strerror or e)) from None
    log.info(
        "rlm-bot listening on http://%s:%s/webhook with %s run workers on %s",
        host,
        port,
        config.workers,
        safe_target(config.db_path),
    )
    server.run()


__all__ = ["AppSettingsError", "ServeError", "build_config", "install_log_redaction", "main", "serve"]


def main(argv: list[str] | None = None) -> None:
    """`python -m webhooks` (the same as `rlm serve`)."""
    parser = argparse.ArgumentParser(prog="python -m webhooks", description="Serve the rlm-bot GitHub App.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=2, help="runs at once (0: intake only)")
    parser.add_argument("--threads", type=int, default=8, help="HTTP threads")
    parser.add_argument("--config", type=Path, default=None, help="engine config.yaml")
    parser.add_argument(
        "--db",
        default=None,
        help="job database: a SQLite path or a postgresql:// URL (default RLM_DB or rlm-jobs.sqlite3)",
    )
    parser.add_argument("--log-json", action="store_true", help="JSON log lines (or RLM_LOG_FORMAT=json)")
    args = parser.parse_args(argv)
    config = build_config(load_config(args.config), workers=args.workers, db=args.db)
    serve(config, args.host, args.port, args.threads, json_logs=args.log_json)
