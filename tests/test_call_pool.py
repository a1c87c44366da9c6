"""The bounded pool model calls run on: at most `size` at once, abandoned calls never block."""

from __future__ import annotations

import threading
import time

import pytest

from bot.rlm.call_pool import CallPool


def test_at_most_size_calls_run_at_once_and_each_gets_its_own_result():
    pool = CallPool(3)
    running, peak, lock = 0, 0, threading.Lock()

    def call(i: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return i * i

    futures = [pool.submit(lambda i=i: call(i)) for i in range(12)]
    assert [f.result(timeout=10) for f in futures] == [i * i for i in range(12)]
    assert peak == 3 and pool._threads == 3
    pool.close()


class Stop(Exception):
    pass


def test_a_waiter_abandons_a_call_at_once_and_errors_reach_the_waiter():
    pool = CallPool(2)
    release = threading.Event()
    deadline = time.monotonic() + 0.2

    def alive() -> None:
        if time.monotonic() > deadline:
            raise Stop

    started = time.monotonic()
    with pytest.raises(Stop):
        pool.wait(release.wait, alive, poll=0.02)  # blocks until released: abandoned instead
    assert time.monotonic() - started < 1.0
    with pytest.raises(ZeroDivisionError):
        pool.wait(lambda: 1 / 0, lambda: None, poll=0.02)
    release.set()
    pool.close()
    with pytest.raises(RuntimeError):
        pool.submit(lambda: None)
    assert all(t.daemon for t in threading.enumerate() if t.name.startswith("rlm-call"))
