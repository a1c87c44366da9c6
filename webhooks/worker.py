"""The App's worker pool (`start_pool`: inside `rlm serve --workers N` or here) and `rlm worker`: a
process that runs App jobs from the job database and serves no webhooks.

Any number of workers (and of `rlm serve --workers 0` intake replicas) share one database. Each holds
leases on the jobs it runs and renews them with heartbeats; on SIGTERM or Ctrl-C it stops taking
jobs, lets the running ones finish for up to `drain` seconds, then gives up the leases of the rest so
another worker resumes them at once. `--metrics-port` serves /metrics, /healthz and /readyz.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from bot.common.signals import stop_event
from bot.github.auth import AppAuth
from bot.jobs import JobHandler, JobObserver, JobStore, StoreUnavailable, WorkerPool, open_store, safe_target

from .handler import AppJobHandler
from .kinds import requeue_policy
from .observability import Metrics, probe_app
from .settings import ServerConfig
from .startup import CANNOT_LISTEN, ServeError, reap_at_start

log = logging.getLogger("webhooks.worker")

STARTED = "rlm worker: %s run workers and %s control workers on %s"
DRAINING = "stopping: no new jobs; waiting up to %ss for %s running job(s)"
HANDED_OVER = "handed %s unfinished job(s) over to other workers"
NO_APP = "workers need the App's settings (GITHUB_APP_ID and its private key)"


def app_handler(config: ServerConfig, store: JobStore, pool: Callable[[], WorkerPool | None]) -> JobHandler:
    if config.app is None:
        raise ValueError(NO_APP)
    auth = AppAuth(config.app)
    auth.jwt()  # parse the key now, not while the first deliveries are being answered
    return AppJobHandler(auth, config.engine, store, config.worker, pool=pool)


def start_pool(
    config: ServerConfig,
    store: JobStore,
    *,
    handler: JobHandler | None = None,
    workers: int | None = None,
    control_workers: int = 1,
    poll: float = 0.5,
    on_done: JobObserver | None = None,
) -> WorkerPool:
    """Run jobs from `store` with `handler` (default: the App's) until `stop()`."""
    holder: list[WorkerPool] = []
    if handler is None:
        handler = app_handler(config, store, lambda: holder[0] if holder else None)
    pool = WorkerPool(
        store,
        handler,
        workers=config.workers if workers is None else workers,
        control_workers=control_workers,
        poll=poll,
        requeue=requeue_policy(config.max_attempts),
        on_done=on_done,
    )
    holder.append(pool)
    return pool.start()


def serve_probes(app, host: str, port: int) -> threading.Thread:
    """Serve `app` on host:port from a daemon thread; the port is bound before this returns (OSError)."""
    from waitress.server import create_server

    server = create_server(app, host=host, port=port, threads=2, ident="rlm-worker")
    thread = threading.Thread(target=server.run, name="rlm-probes", daemon=True)
    thread.start()
    return thread


def run_worker(
    config: ServerConfig,
    *,
    control_workers: int = 1,
    drain: float = 30.0,
    metrics_host: str = "127.0.0.1",
    metrics_port: int | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Run jobs until `stop` is set (by default: until SIGTERM or SIGINT). Blocks. Raises ServeError
    when the database cannot be opened or the metrics port cannot be bound."""
    try:
        store = open_store(config.db_path, lease_seconds=config.lease_seconds)
    except StoreUnavailable as e:
        raise ServeError(str(e)) from None
    metrics = Metrics(store, Path(config.worker.results_dir))
    if metrics_port is not None:  # bound before any job is taken, so a busy port costs nothing
        try:
            serve_probes(probe_app(store, metrics), metrics_host, metrics_port)
        except OSError as e:
            store.close()
            raise ServeError(
                CANNOT_LISTEN.format(host=metrics_host, port=metrics_port, reason=e.strerror or e)
            ) from None
        log.info("probes and metrics on http://%s:%s/metrics", metrics_host, metrics_port)
    reap_at_start(config)
    stop = stop or stop_event()
    pool = start_pool(config, store, control_workers=control_workers, on_done=metrics.job_done)
    log.info(STARTED, config.workers, control_workers, safe_target(config.db_path))
    stop.wait()
    log.info(DRAINING, drain, len(pool.running()))
    pool.stop(timeout=drain)
    left = pool.running()
    if left:
        store.heartbeat(pool.owner, lease=-1)  # an expired lease: the next worker's heartbeat resumes them
        log.warning(HANDED_OVER, len(left))
    store.close()
