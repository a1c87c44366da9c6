"""`rlm worker`: a process that runs App jobs from the job database and serves no webhooks.

Any number of workers (and of `rlm serve --workers 0` intake replicas) share one database. Each holds
leases on the jobs it runs and renews them with heartbeats; on SIGTERM or Ctrl-C it stops taking
jobs, lets the running ones finish for up to `drain` seconds, then gives up the leases of the rest so
another worker resumes them at once. `--metrics-port` serves /metrics, /healthz and /readyz.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from bot.jobs import StoreUnavailable, open_store, safe_target

from .observability import Metrics, probe_app
from .settings import ServerConfig
from .workers import start_pool

log = logging.getLogger("webhooks.worker")

STARTED = "rlm worker: %s run workers and %s control workers on %s"
DRAINING = "stopping: no new jobs; waiting up to %ss for %s running job(s)"
HANDED_OVER = "handed %s unfinished job(s) over to other workers"


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
    from .serve import CANNOT_LISTEN, ServeError, reap_at_start

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
    stop = stop or _signal_event()
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


def _signal_event() -> threading.Event:
    event = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: event.set())
    return event
