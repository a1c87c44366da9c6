"""`rlm serve`: the webhook app behind waitress (a production WSGI server), with a worker pool in
the same process unless `--workers 0` (intake only; `rlm worker` processes run the jobs).

On start: sandboxes a killed process left behind are reaped; jobs whose worker died are resumed or
reported once their leases expire (see bot/jobs/). On SIGTERM (or Ctrl-C) it stops gracefully:
no new jobs, the running ones get up to `drain` seconds (default 5) to finish, the rest are handed
back to the other workers at once, and the process exits; a second signal skips the wait. Logging is set up by the `rlm` command
(bot/common/logging.py: every line redacted; JSON lines with `--log-json` or RLM_LOG_FORMAT=json).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading

from bot.common.signals import Interrupts
from bot.jobs import StoreUnavailable, safe_target

from .http_server import create_http_server
from .intake import create_app
from .settings import ServerConfig
from .startup import CANNOT_LISTEN, ServeError, reap_at_start
from .worker import DEFAULT_DRAIN, stop_gracefully

log = logging.getLogger("webhooks")


STOPPED = "rlm-bot stopped"


def serve(
    config: ServerConfig,
    host: str = "127.0.0.1",
    port: int = 8080,
    threads: int = 8,
    drain: float = DEFAULT_DRAIN,
) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully and end the process. Blocks. HTTP limits
    come from the settings (RLM_HTTP_*)."""
    if config.workers > 0:
        reap_at_start(config)
    http = dataclasses.replace(config.http, threads=threads)
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
    pool = app.extensions["rlm"].pool
    store = app.extensions["rlm"].store
    interrupts = Interrupts()

    def stop() -> None:
        if pool is not None:
            stop_gracefully(pool, drain, forced=lambda: interrupts.count > 1)
        try:
            store.close()
        except Exception:  # exiting anyway
            pass
        log.info(STOPPED)
        logging.shutdown()
        os._exit(0)  # waitress has no clean stop from another thread; the jobs were handed back

    interrupts.on_first = lambda: threading.Thread(target=stop, name="rlm-stop", daemon=True).start()
    interrupts.install()
    server.run()
