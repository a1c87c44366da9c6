"""Follow a rollout's events file while it grows, so the job log shows every agent as it works.

The engine appends one JSON line per event to `<run_id>.events.jsonl` (DESIGN: "a viewer can follow
live"). Reading the file keeps the log independent of who runs the rollout (bot.github.run or us).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

POLL = 0.2


class EventsFollower:
    """A thread that hands each complete new line of `path` to `listener` (in file order)."""

    def __init__(self, path: Path, listener: Callable[[dict], None], poll: float = POLL):
        self.path = path
        self.listener = listener
        self.poll = poll
        self._offset = 0
        self._partial = b""
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
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()  # an unfinished last line waits for the next read
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            self.listener(event)
