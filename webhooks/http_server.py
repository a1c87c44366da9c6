"""The HTTP server in front of the webhook app: waitress with explicit limits.

Waitress reads requests on one asynchronous loop and hands only complete requests to its worker
threads, so a slow client costs a socket, not a thread. What it does not bound by itself is how
long a client may take to send one request: a client that sends its headers a byte at a time
stays "active" forever and, with waitress' default of 100 connections, a few hundred of them
stop every delivery. Here every connection has `request_timeout` seconds to send a whole request
(GitHub gives up on a delivery after 10), idle connections close after `channel_timeout`, and
the connection limit is high enough that slow clients closing on that schedule cannot fill it.
Behind a reverse proxy (see docs/github-app.md) the proxy absorbs slow clients first.
"""

from __future__ import annotations

import logging
import resource
import time
from typing import Any

from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, MultiSocketServer, create_server

from .settings import HttpSettings

log = logging.getLogger(__name__)


class DeadlineChannel(HTTPChannel):
    """A connection that is closed when one request takes longer than the server's
    `request_timeout` to arrive (waitress calls `readable` on every turn of its loop)."""

    request_began: float = 0.0

    def received(self, data: bytes) -> bool:
        if self.request is None and data:
            self.request_began = time.monotonic()
        return super().received(data)

    def readable(self) -> bool:
        limit = getattr(self.server, "request_timeout", None)
        if (
            limit is not None
            and self.request is not None
            and not self.will_close
            and time.monotonic() - self.request_began > limit
        ):
            self.will_close = True  # waitress closes it on this turn of the loop
            return False
        return super().readable()


def _raise_open_files_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        log.warning("the open-files limit (%s) is below connection_limit; raise `ulimit -n`", hard)


def create_http_server(
    app: Any, host: str, port: int, settings: HttpSettings
) -> BaseWSGIServer | MultiSocketServer:
    """A waitress server for `app` on host:port with `settings` (call `.run()` to serve)."""
    _raise_open_files_limit(settings.connection_limit + 256)
    server = create_server(
        app,
        host=host,
        port=port,
        ident="rlm-bot",
        threads=settings.threads,
        connection_limit=settings.connection_limit,
        channel_timeout=settings.channel_timeout,
        cleanup_interval=min(settings.channel_timeout, 10),
        max_request_header_size=settings.max_request_header_size,
        max_request_body_size=settings.max_request_body_size,
        backlog=settings.backlog,
        asyncore_use_poll=True,  # select() fails outright once any socket's fd number passes 1023
    )
    listeners = server.map.values() if isinstance(server, MultiSocketServer) else [server]
    for listener in listeners:
        if isinstance(listener, BaseWSGIServer):
            listener.channel_class = DeadlineChannel
            listener.request_timeout = settings.request_timeout
    return server
