"""A bounded pool of daemon threads for blocking calls (model calls) that a waiter may abandon.

The waiter polls, so a deadline or a cancellation ends the wait at once; an abandoned call
finishes in the background and its result is dropped. The threads are daemons, so an abandoned
call never holds up the process's exit; at most `size` run at once, and later calls queue.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

T = TypeVar("T")


class CallPool:
    def __init__(self, size: int, name: str = "rlm-call"):
        self.size, self.name = max(1, size), name
        self._queue: queue.SimpleQueue[tuple[Future, Callable[[], object]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._closed = False

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the call pool is closed")
            self._queue.put((future, fn))
            if self._threads < self.size:
                self._threads += 1
                threading.Thread(target=self._work, daemon=True, name=f"{self.name}-{self._threads}").start()
        return future

    def wait(self, fn: Callable[[], T], alive: Callable[[], None], poll: float) -> T:
        """`fn()` on a pool thread; `alive()` is called every `poll` seconds while waiting and
        may raise to abandon the call."""
        future = self.submit(fn)
        while True:
            try:
                return future.result(timeout=poll)
            except FutureTimeout:
                alive()

    def close(self) -> None:
        """No new calls; idle threads exit (a call still running finishes, then its thread exits)."""
        with self._lock:
            self._closed = True
            for _ in range(self._threads):
                self._queue.put(None)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as e:  # handed to the waiting thread
                future.set_exception(e)
