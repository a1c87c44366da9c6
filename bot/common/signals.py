"""The one handler of SIGINT and SIGTERM, for every command: the first sets a stop event (cancel the
run, drain the workers); with `force_after_first`, a second one raises KeyboardInterrupt (the CLI
stops waiting for the cancelled run)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupts:
    """While entered (or after `install()`), the stop signals set `event`; `count` says how many came.
    Signal handlers exist only in the main thread: elsewhere this installs nothing."""

    def __init__(
        self,
        event: threading.Event | None = None,
        *,
        on_first: Callable[[], None] | None = None,
        force_after_first: bool = False,
    ):
        self.event = event or threading.Event()
        self.on_first, self.force = on_first, force_after_first
        self.count = 0
        self._previous: dict[int, object] = {}

    def install(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def __enter__(self) -> Interrupts:
        return self.install()

    def __exit__(self, *exc) -> None:
        self.restore()

    def _handle(self, signum, frame) -> None:
        self.count += 1
        self.event.set()
        if self.count == 1:
            if self.on_first is not None:
                self.on_first()
        elif self.force:
            raise KeyboardInterrupt


def stop_event() -> threading.Event:
    """An event the stop signals set, for the rest of the process (a worker's drain)."""
    return Interrupts().install().event
