"""Waiting for a descriptor to become readable, whatever its number: `select.select` refuses a
descriptor above 1023 (FD_SETSIZE), which a long-lived server or a test process holding many
sockets reaches; `poll` has no such limit."""

from __future__ import annotations

import select
from typing import IO


def readable(stream: int | IO, timeout: float) -> bool:
    """True when `stream` (a descriptor or a file object) has data or EOF within `timeout` seconds."""
    fd = stream if isinstance(stream, int) else stream.fileno()
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(max(0.0, timeout) * 1000))
