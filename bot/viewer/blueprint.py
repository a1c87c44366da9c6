"""The viewer inside the GitHub App's Flask server: one run per unguessable link.

    from bot.viewer import new_token, viewer_blueprint

    app.register_blueprint(viewer_blueprint(lookup))   # routes under /runs/<token>/

`lookup(token) -> Path | None` maps a link's token to the run it shows: the path of the run's
results file `<results_dir>/<run_id>.json` (it need not exist yet: while the run is going the
viewer folds `<run_id>.events.jsonl` next to it and follows it live; before the run starts the
page says it is waiting and opens the run as soon as its first event is written) or of its
events file. Return None for an unknown token. Tokens are 16 to 128 URL-safe characters with at
least 128 random bits (`new_token()`, or `secrets.token_urlsafe(16)` and up); store token -> run
when the run is queued, and put `<base>/runs/<token>` in the PR body and status comment. Compare
tokens as whole keys (a dict or a unique DB column), never by prefix.

Routes (GET only), relative to `url_prefix` (default "/runs"):

    /<token>                          302 to /<token>/
    /<token>/                         the page (index.html); /<token>/viewer.js, viewer.css
    /<token>/api/runs                 [summary of the run]
    /<token>/api/runs/<run_id>        results JSON, or the fold of the events so far
    /<token>/api/runs/<run_id>/events?after=SEQ   events after SEQ, for live follow

An unknown token, a malformed one, or any other path is 404 with the same body, so a link cannot
be probed. Every answer carries `SECURITY_HEADERS` (no referrer, no caching, no framing, a CSP
allowing only the page's own origin); JSON is gzipped for clients that accept it.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable
from pathlib import Path

from flask import Blueprint, Response, redirect, request

from .routes import NOT_FOUND, SECURITY_HEADERS, Reply, dispatch
from .runs import NotARun, RunStore

TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
GZIP_MIN_BYTES = 2048


def _response(reply: Reply) -> Response:
    body = reply.body
    headers = {**SECURITY_HEADERS, **reply.headers, "Vary": "Accept-Encoding"}
    if len(body) >= GZIP_MIN_BYTES and "gzip" in request.headers.get("Accept-Encoding", ""):
        body = gzip.compress(body, compresslevel=5)
        headers["Content-Encoding"] = "gzip"
    return Response(body, status=reply.status, content_type=reply.content_type, headers=headers)


def viewer_blueprint(
    lookup: Callable[[str], Path | None], url_prefix: str = "/runs", name: str = "rlm_viewer"
) -> Blueprint:
    """A Flask blueprint serving the trace viewer for the run each token names (see module doc)."""
    bp = Blueprint(name, __name__, url_prefix=url_prefix)

    def store_for(token: str) -> RunStore | None:
        if not TOKEN.match(token):
            return None
        path = lookup(token)
        if path is None:
            return None
        try:
            return RunStore(Path(path), pending_ok=True)
        except (FileNotFoundError, NotARun):
            return None

    @bp.get("/<token>")
    def page_redirect(token: str) -> Response:
        if store_for(token) is None:
            return _response(NOT_FOUND)
        response = redirect(f"{request.script_root}{request.path}/", code=302)
        response.headers.update(SECURITY_HEADERS)
        return response

    @bp.get("/<token>/", defaults={"path": ""})
    @bp.get("/<token>/<path:path>")
    def viewer(token: str, path: str) -> Response:
        store = store_for(token)
        if store is None:
            return _response(NOT_FOUND)
        try:
            return _response(dispatch(store, path, request.args.to_dict()))
        except (OSError, NotARun, ValueError):
            return _response(NOT_FOUND)

    return bp
