"""`rlm view`: serve the viewer and the runs of one results directory (or one run) on loopback.

Security model (docs/viewer.md): the server binds 127.0.0.1 only, and everything lives under a
random path prefix printed with the URL (`http://127.0.0.1:PORT/<token>/`), so another local user
or a web page in the browser cannot read traces by guessing the port. Requests whose Host header is
not 127.0.0.1/localhost are refused (DNS rebinding). Only the page's fixed assets and the run files
of the given directory are served; anything else is 404.
"""

from __future__ import annotations

import os
import secrets
import socketserver
import sys
import threading
import webbrowser
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qsl, urlsplit

from .routes import NOT_FOUND, SECURITY_HEADERS, Reply, dispatch
from .runs import NotARun, RunStore

LOOPBACK = "127.0.0.1"
DEFAULT_RESULTS = Path("results")
NOT_A_RUN_HINT = (
    "Give a results directory or one run's file, e.g. `rlm view ~/.cache/rlm-bot/results` "
    "(`rlm run` writes <run_id>.json and <run_id>.events.jsonl there, or into its --results-dir)."
)
NO_RESULTS = "No results at {path}. " + NOT_A_RUN_HINT


class ViewError(Exception):
    """`rlm view` cannot start; the message says what to do."""


def new_token() -> str:
    """An unguessable URL segment (128 bits) for a viewer link."""
    return secrets.token_urlsafe(16)


class ViewerServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, store: RunStore, port: int = 0, token: str | None = None):
        self.store = store
        self.token = token or new_token()
        super().__init__((LOOPBACK, port), _Handler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/{self.token}/"

    def allowed_hosts(self) -> set[str]:
        return {f"{LOOPBACK}:{self.port}", f"localhost:{self.port}"}


class _Handler(BaseHTTPRequestHandler):
    server: ViewerServer
    server_version = "rlm-view"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._send(self._answer(), head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._send(self._answer(), head=True)

    def _refuse_method(self) -> None:
        self._send(Reply(405, b"only GET\n", headers={"Allow": "GET, HEAD"}), head=False)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method  # noqa: N815

    def _answer(self) -> Reply:
        if self.headers.get("Host", "") not in self.server.allowed_hosts():
            return Reply(403, b"this viewer answers only to 127.0.0.1 and localhost\n")
        url = urlsplit(self.path)
        prefix = f"/{self.server.token}"
        if url.path == prefix:
            return Reply(302, b"", headers={"Location": prefix + "/"})
        if not url.path.startswith(prefix + "/"):
            return NOT_FOUND
        try:
            return dispatch(self.server.store, url.path[len(prefix) + 1 :], dict(parse_qsl(url.query)))
        except (OSError, NotARun, ValueError):
            return NOT_FOUND

    def _send(self, reply: Reply, head: bool) -> None:
        self.send_response(reply.status)
        for name, value in {**SECURITY_HEADERS, **reply.headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if not head:
            try:
                self.wfile.write(reply.body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        if os.environ.get("RLM_VIEW_LOG"):
            super().log_message(format, *args)


def make_server(target: Path | None = None, port: int = 0, token: str | None = None) -> ViewerServer:
    """A viewer server for a results directory or one results/events file, bound to 127.0.0.1."""
    path = Path(target) if target is not None else DEFAULT_RESULTS
    try:
        store = RunStore(path)
    except FileNotFoundError:
        raise ViewError(NO_RESULTS.format(path=path.resolve())) from None
    except NotARun as e:
        raise ViewError(f"{e}. {NOT_A_RUN_HINT}") from None
    return ViewerServer(store, port, token)


S = TypeVar("S", bound=socketserver.BaseServer)


@contextmanager
def in_background(server: S, poll_interval: float = 0.05) -> Iterator[S]:
    """Serve on a daemon thread for the duration of the block (tests, benchmarks), then close."""
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": poll_interval}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def has_browser() -> bool:
    """A graphical browser can be opened here (not on a headless box, not a terminal browser)."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return False
    try:
        webbrowser.get()
    except webbrowser.Error:
        return False
    return True


def run_view(target: Path | None = None, port: int = 0, open_browser: bool = True) -> None:
    """The `rlm view` command: serve until Ctrl-C, print the URL, open a browser where there is one."""
    try:
        server = make_server(target, port)
    except OSError as e:
        raise ViewError(f"Cannot listen on {LOOPBACK}:{port} ({e.strerror}); try another --port.") from None
    store = server.store
    what = f"run {store.single.run_id}" if store.single else f"{len(store.runs())} run(s) in {store.root}"
    print(f"rlm view: {what}\n  {server.url}\n(Ctrl-C to stop)", flush=True)
    if open_browser and has_browser():
        threading.Thread(target=webbrowser.open, args=(server.url,), daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
