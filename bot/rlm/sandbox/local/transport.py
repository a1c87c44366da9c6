"""The REPL protocol between the host and a local sandbox's driver: two OS pipes.

The driver gets one pipe's read end and the other's write end as the two descriptors of the
protocol (see repl/driver.py); nothing else in the sandbox inherits them.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable

from ...errors import SandboxError
from ...repl.session import MAX_MESSAGE_BYTES, LineReader


class PipeTransport:
    """Transport over two OS pipes to a local child process."""

    def __init__(
        self,
        proc,
        to_driver: int,
        from_driver: int,
        on_kill: Callable[[], None],
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        explain: Callable[[], str | None] | None = None,
    ):
        self.proc = proc
        self._w = os.fdopen(to_driver, "wb", buffering=0)
        self._r = os.fdopen(from_driver, "rb")
        self._reader = LineReader(self._r.readline, max_message_bytes)
        self._on_kill = on_kill
        self._explain = explain  # e.g. which resource cap the sandbox hit
        self._lock = threading.Lock()

    def send(self, msg: dict) -> None:
        data = (json.dumps(msg) + "\n").encode()
        try:
            with self._lock:
                self._w.write(data)
        except (BrokenPipeError, ValueError, OSError):
            raise SandboxError("the sandbox's REPL process exited") from None

    def recv(self, timeout: float) -> dict | None:
        return self._reader.get(timeout)

    def kill(self) -> None:
        self._reader.close()
        self._on_kill()
        for f in (self._w, self._r):
            try:
                f.close()
            except OSError:
                pass

    def describe_exit(self) -> str:
        code = self.proc.poll()
        if code is None:
            return "still running"
        how = f"exit status {code}" if code >= 0 else f"killed by signal {-code}"
        note = self._explain() if self._explain else None
        return f"{how}: {note}" if note else how
