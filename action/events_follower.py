"""Follow a rollout's events file while it grows, so the job log shows every agent as it works.

The engine appends one JSON line per event to `<run_id>.events.jsonl` (DESIGN: "a viewer can follow
live"); the viewer's reader (`bot.viewer.runs.read_events_after`) hands back the complete new ones.
Reading the file keeps the log independent of who runs the rollout (bot.github.run or us).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from bot.viewer.runs import read_events_after

POLL = 0.2


class EventsFollower:
    """A thread that hands each new event of `path` to `listener`, in file order."""

    def __init__(self, path: Path, listener: Callable[[dict], None], poll: float = POLL):
        self.path = path
        self.listener = listener
        self.poll = poll
        self._seq = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rlm-events", daemon=True)

    def __enter__(self) -> EventsFollower:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._read()  # whatever was written after the last poll

    def _loop(self) -> None:
        while not self._stop.wait(self.poll):
            self._read()

    def _read(self) -> None:
        more = True
        while more:
            events, more = read_events_after(self.path, self._seq)
            for event in events:
                self._seq = event["seq"]
                self.listener(event)
