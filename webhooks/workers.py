"""The App's worker pool, wherever it runs: inside `rlm serve` (`--workers N`) or in `rlm worker`."""

from __future__ import annotations

from collections.abc import Callable

from bot.github.auth import AppAuth
from bot.jobs import JobHandler, JobObserver, JobStore, WorkerPool

from .handler import AppJobHandler
from .settings import ServerConfig

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
        max_attempts=config.max_attempts,
        on_done=on_done,
    )
    holder.append(pool)
    return pool.start()
