"""Talking to Daytona: the client from rlm-bot's own settings, retries, labels, and reaping.

The client is built from an explicit `DaytonaConfig` (key from DAYTONA_API_KEY in the process
environment, API URL and target from `sandbox.daytona`), so the SDK never falls back to a `.env`
in the working directory, which may be the target repository (the GitHub Action runs there).

Every sandbox carries labels: the app, the rollout id, the agent id, the owning process
(host:pid:start) and an expiry time. `reap_orphans` deletes sandboxes whose owner process is gone
(same host) or whose expiry has passed (any host); a live rollout of this process is never touched.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from daytona import DaytonaConfig, DaytonaError, DaytonaNotFoundError

from bot.common.retry import call_with_retries
from bot.common.secrets import REDACTOR

from ...config import Config, DaytonaSettings
from ...errors import SandboxError
from ...owned import process_start
from . import MISSING_KEY

log = logging.getLogger(__name__)

API_URL = "https://app.daytona.io/api"
DEFAULT_TARGET = "us"
LABEL_APP = "rlm-bot"
LABEL_ROLLOUT = "rlm-bot.rollout"
LABEL_AGENT = "rlm-bot.agent"
LABEL_OWNER = "rlm-bot.owner"
LABEL_EXPIRES = "rlm-bot.expires"
LABEL_ATTEMPT = "rlm-bot.attempt"
APP_VALUE = "sandbox"
MAX_DELAY = 30.0  # seconds: the longest wait between two creation attempts
T = TypeVar("T")


_live_lock = threading.Lock()
_live_rollouts: set[str] = set()
_clients_lock = threading.Lock()
_clients: dict[tuple, Any] = {}


def client_config(settings: DaytonaSettings, api_key: str | None) -> DaytonaConfig:
    """A complete DaytonaConfig: with key, URL and target all given, the SDK reads no .env. The key
    is the caller's (each front end reads DAYTONA_API_KEY once); the engine reads no environment."""
    key = (api_key or "").strip()
    if not key:
        raise SandboxError(MISSING_KEY)
    REDACTOR.add(key)
    return DaytonaConfig(
        api_key=key, api_url=settings.api_url or API_URL, target=settings.target or DEFAULT_TARGET
    )


def make_client(settings: DaytonaSettings, api_key: str | None) -> Any:
    """The real SDK client, one per (key, URL, target) in this process: the server runs many
    rollouts, and each client holds a connection pool and an event stream. Tests pass a fake
    through the provider's `client` parameter instead."""
    config = client_config(settings, api_key)
    ident = (config.api_key, config.api_url, config.target)
    with _clients_lock:
        if ident not in _clients:
            from daytona import Daytona

            try:
                _clients[ident] = Daytona(config)
            except DaytonaError as e:
                raise SandboxError(f"could not connect to Daytona at {config.api_url}: {e}") from None
        return _clients[ident]


# ---------------------------------------------------------------------- retries


def retryable(e: DaytonaError) -> bool:
    """Rate limits, quotas (other sandboxes of the tree are deleted soon), 5xx, timeouts, drops."""
    status = getattr(e, "status_code", None)
    if status in (408, 429, 500, 502, 503, 504):
        return True
    text = str(e).lower()
    if any(word in text for word in ("quota", "limit exceeded", "rate limit", "capacity", "try again")):
        return True
    if status is not None:
        return False
    transient = ("DaytonaConnectionError", "DaytonaTimeoutError")  # client-side, no HTTP status
    return any(cls.__name__ in transient for cls in type(e).__mro__)


def retry_after(e: BaseException) -> float | None:
    """The platform's Retry-After, in seconds, when it sent one."""
    headers = {k.lower(): v for k, v in (getattr(e, "headers", None) or {}).items()}
    try:
        return float(headers.get("retry-after", ""))
    except ValueError:
        return None


def with_retries(fn: Callable[[], T], *, tries: int, base: float, describe: str, **kwargs: Any) -> T:
    """`fn()` retried (bot.common.retry) on what `retryable` accepts; the last DaytonaError is raised."""
    return call_with_retries(
        fn,
        retry_if=lambda e: isinstance(e, DaytonaError) and retryable(e),
        tries=tries,
        base=base,
        cap=MAX_DELAY,
        wait_hint=retry_after,
        describe=describe,
        **kwargs,
    )


# ---------------------------------------------------------------------- labels and ownership


def owner_label() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{process_start(os.getpid()) or ''}"


def owner_alive(owner: str | None) -> bool:
    """False only when the owner ran on this host and its process is gone."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname():
        return True  # another machine's rollout: only its expiry label can tell
    try:
        return process_start(int(pid)) == (start or None)
    except ValueError:
        return False


def mark_live(rollout_id: str, live: bool) -> None:
    with _live_lock:
        (_live_rollouts.add if live else _live_rollouts.discard)(rollout_id)


def list_labelled(client: Any, labels: dict[str, str]) -> Iterable[Any]:
    """Sandboxes carrying all `labels` (the paginated `list(query)` of SDK >= 0.160, or the
    older `list(labels=...)`)."""
    try:
        from daytona import ListSandboxesQuery
    except ImportError:  # older SDK in the pinned range
        result = client.list(labels=labels)
        return getattr(result, "items", result)
    return client.list(ListSandboxesQuery(labels=labels))


def delete_quietly(remote: Any, attempts: int = 3) -> bool:
    """Delete one sandbox; True when it is gone. Rate limits are retried briefly."""
    try:
        with_retries(
            remote.delete,
            tries=attempts,
            base=0.5,
            describe=f"deleting Daytona sandbox {getattr(remote, 'id', '?')}",
        )
        return True
    except DaytonaNotFoundError:
        return True
    except DaytonaError as e:
        log.warning(
            "Daytona sandbox %s could not be deleted (%s); `rlm sandboxes reap` removes it later",
            getattr(remote, "id", "?"),
            e,
        )
        return False


def reap_orphans(
    config: Config, api_key: str | None = None, client: Any = None, now: float | None = None
) -> int:
    """Delete Daytona sandboxes of rollouts that are no longer running. Returns how many."""
    client = client if client is not None else make_client(config.sandbox.daytona, api_key)
    now = time.time() if now is None else now
    with _live_lock:
        live = set(_live_rollouts)
    reaped = 0
    try:
        remotes = list(list_labelled(client, {LABEL_APP: APP_VALUE}))
    except DaytonaError as e:
        raise SandboxError(f"could not list Daytona sandboxes: {e}") from None
    for remote in remotes:
        labels = getattr(remote, "labels", None) or {}
        if labels.get(LABEL_ROLLOUT) in live:
            continue
        try:
            expired = float(labels.get(LABEL_EXPIRES, "0")) < now
        except ValueError:
            expired = True
        if not expired and owner_alive(labels.get(LABEL_OWNER)):
            continue
        if delete_quietly(remote):
            reaped += 1
            log.info("reaped Daytona sandbox %s of rollout %s", remote.id, labels.get(LABEL_ROLLOUT))
    return reaped
