"""`rlm serve`: the webhook app behind waitress (a production WSGI server) plus its worker pool.

On start: sandboxes a killed server left behind are reaped, jobs it left in flight are resumed or
reported (see bot/jobs.py), then deliveries are accepted. Every log line is redacted.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bot.github.auth import AppSettingsError
from bot.rlm.config import Config, load_config
from bot.rlm.secrets import REDACTOR

from .app import create_app
from .config import ServerConfig
from .http_server import HttpSettings, create_http_server

log = logging.getLogger("webhooks")


class RedactingFilter(logging.Filter):
    """Masks every known secret in a log record's final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = REDACTOR.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def install_log_redaction(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)  # `rlm` itself configured WARNING before this command ran
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


UNISOLATED = (
    "bubblewrap cannot create namespaces here, so model-written code would run unisolated next to "
    "the app's private key and tokens. Allow user namespaces (in Docker: --security-opt "
    "seccomp=unconfined), or use sandbox.backend: daytona, or set sandbox.isolation: none to accept "
    "that risk."
)


def check_isolation(engine: Config) -> None:
    """A server holds other people's secrets: with the local backend it will not fall back to
    unisolated sandboxes unless the operator says so (sandbox.isolation: none)."""
    from bot.rlm.sandbox.local import bwrap_works

    if engine.sandbox.backend == "local" and engine.sandbox.isolation == "auto" and not bwrap_works():
        raise AppSettingsError(UNISOLATED)


def build_config(engine: Config, *, workers: int | None = None, db: Path | None = None) -> ServerConfig:
    check_isolation(engine)
    try:
        HttpSettings.from_env()  # a bad RLM_HTTP_* value is a one-line error before anything starts
    except ValueError as e:
        raise AppSettingsError(str(e)) from None
    return ServerConfig.from_env(engine, workers=workers, db_path=db)


def serve(config: ServerConfig, host: str = "127.0.0.1", port: int = 8080, threads: int = 8) -> None:
    """Run until interrupted. Blocks. HTTP limits come from RLM_HTTP_* (see http_server.py)."""
    from bot.rlm.sandbox.daytona import reap_all

    install_log_redaction()
    try:
        reaped = reap_all(config.engine)
        if reaped["local"] or reaped["daytona"]:
            log.warning("reaped sandboxes left by a previous server: %s", reaped)
    except Exception as e:  # reaping is housekeeping; the server starts regardless
        log.warning("could not reap old sandboxes: %s", e)
    http = HttpSettings.from_env(threads=threads)
    config.max_body = http.max_request_body_size  # one body limit, in waitress and in the app
    app = create_app(config)
    log.info("rlm-bot listening on http://%s:%s/webhook with %s run workers", host, port, config.workers)
    create_http_server(app, host, port, http).run()


__all__ = ["AppSettingsError", "build_config", "install_log_redaction", "main", "serve"]


def main(argv: list[str] | None = None) -> None:
    """`python -m webhooks` (the same as `rlm serve`)."""
    parser = argparse.ArgumentParser(prog="python -m webhooks", description="Serve the rlm-bot GitHub App.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=2, help="runs at once")
    parser.add_argument("--threads", type=int, default=8, help="HTTP threads")
    parser.add_argument("--config", type=Path, default=None, help="engine config.yaml")
    parser.add_argument(
        "--db", type=Path, default=None, help="job database (default RLM_DB or rlm-jobs.sqlite3)"
    )
    args = parser.parse_args(argv)
    config = build_config(load_config(args.config), workers=args.workers, db=args.db)
    serve(config, args.host, args.port, args.threads)
