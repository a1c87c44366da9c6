"""bot.common.retry: the one backoff policy the model client, GitHub and Daytona share."""

from __future__ import annotations

import pytest

from bot.common.retry import backoff, call_with_retries


class Flaky(Exception):
    def __init__(self, after: float | None = None):
        self.after = after


def failing(times: int, error: Exception):
    calls = []

    def fn() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise error
        return "ok"

    return fn, calls


def test_retries_until_success_with_growing_waits():
    fn, calls = failing(3, Flaky())
    sleeps: list[float] = []
    assert (
        call_with_retries(fn, retry_if=lambda e: isinstance(e, Flaky), tries=5, base=1.0, sleep=sleeps.append)
        == "ok"
    )
    assert len(calls) == 4 and len(sleeps) == 3
    assert 1.0 <= sleeps[0] < sleeps[1] < sleeps[2] <= 5.0


def test_gives_up_after_the_tries_and_raises_the_last_error_itself():
    fn, calls = failing(10, Flaky())
    with pytest.raises(Flaky):
        call_with_retries(fn, retry_if=lambda e: True, tries=3, sleep=lambda s: None)
    assert len(calls) == 3


def test_an_error_not_worth_retrying_is_raised_at_once():
    fn, calls = failing(10, ValueError("bad request"))
    with pytest.raises(ValueError):
        call_with_retries(fn, retry_if=lambda e: isinstance(e, Flaky), tries=5, sleep=lambda s: None)
    assert len(calls) == 1


def test_the_servers_wait_wins_within_the_cap_and_a_deadline_stops_early():
    fn, _ = failing(2, Flaky(after=7.0))
    sleeps: list[float] = []
    call_with_retries(
        fn, retry_if=lambda e: True, tries=5, cap=60, wait_hint=lambda e: e.after, sleep=sleeps.append
    )
    assert sleeps == [7.0, 7.0]
    fn, calls = failing(5, Flaky(after=100.0))
    with pytest.raises(Flaky):
        call_with_retries(
            fn,
            retry_if=lambda e: True,
            tries=5,
            cap=30,
            wait_hint=lambda e: e.after,
            sleep=lambda s: None,
            deadline=lambda wait: wait >= 20,
        )
    assert len(calls) == 1  # the capped 30 s wait would pass the deadline: no second try


def test_backoff_is_capped():
    assert backoff(1, 1.0, 60) >= 1.0 and backoff(30, 1.0, 60) == 60
