"""The one retry/backoff policy of rlm-bot (tenacity), for the model client, GitHub and Daytona.

A caller says which failures are worth another try and, optionally, how long the far side asked
it to wait (`Retry-After`); everything else is the same everywhere: exponential backoff with
jitter, capped per wait, a bounded number of tries, a log line before each wait, and the last
error re-raised as is when the tries run out.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

import tenacity

T = TypeVar("T")
log = logging.getLogger(__name__)


def backoff(attempt: int, base: float, cap: float) -> float:
    """`base * 2**(attempt-1)`, plus up to 25 % jitter, capped at `cap` (attempt counts from 1)."""
    return min(cap, base * 2 ** (attempt - 1) * (1 + random.random() / 4))


def call_with_retries(
    fn: Callable[[], T],
    *,
    retry_if: Callable[[BaseException], bool],
    tries: int,
    base: float = 1.0,
    cap: float = 60.0,
    wait_hint: Callable[[BaseException], float | None] = lambda _e: None,
    sleep: Callable[[float], None] = time.sleep,
    describe: str = "call",
    deadline: Callable[[float], bool] | None = None,
) -> T:
    """`fn()` until it returns, an error that `retry_if` refuses, or `tries` calls. A server's
    `wait_hint` (seconds) wins over the backoff, within `cap`. `deadline(wait)` returning True
    stops retrying (the last error is raised) when waiting that long would overrun a time limit."""

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hint = wait_hint(exc) if exc is not None else None
        return min(cap, max(0.0, hint)) if hint is not None else backoff(state.attempt_number, base, cap)

    def stop(state: tenacity.RetryCallState) -> bool:
        if state.attempt_number >= max(1, tries):
            return True
        return deadline is not None and deadline(wait(state))

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("%s failed (%s); retrying in %.1fs", describe, _short(exc), state.next_action.sleep)

    retrying = tenacity.Retrying(
        stop=stop,
        wait=wait,
        sleep=sleep,
        reraise=True,
        retry=tenacity.retry_if_exception(retry_if),
        before_sleep=before_sleep,
    )
    return retrying(fn)


def _short(exc: BaseException | None) -> str:
    text = f"{type(exc).__name__}: {exc}" if exc is not None else "no error"
    return text if len(text) <= 200 else text[:197] + "…"
