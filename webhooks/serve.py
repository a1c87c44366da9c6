"""`rlm serve`: the webhook app behind waitress (a production WSGI server), with a worker pool in
the same process unless `--workers 0` (intake only; `rlm worker` processes run the jobs).

On start: sandboxes a killed process left behind are reaped; jobs whose worker died are resumed or
reported once their leases expire (see bot/jobs/). Logging is set up by the `rlm` command
(bot/common/logging.py: every line redacted; JSON lines with `--log-json` or RLM_LOG_FORMAT=json).
"""

from __future__ import annotations

import dataclasses
import logging

from bot.jobs import StoreUnavailable, safe_target

from .http_server import create_http_server
from .intake import create_app
from .settings import ServerConfig
from .startup import CANNOT_LISTEN, ServeError, reap_at_start

log = logging.getLogger("webhooks")


def serve(config: ServerConfig, host: str = "127.0.0.1", port: int = 8080, threads: int = 8) -> None:
    """Run until interrupted. Blocks. HTTP limits come from the settings (RLM_HTTP_*)."""
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
    server.run()
