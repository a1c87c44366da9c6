"""The viewer's HTTP surface, independent of the server that carries it.

Both the local server (`rlm view`, stdlib) and the GitHub App's Flask blueprint answer a request
by calling `dispatch(store, path, query)` with the path relative to the viewer's base URL:

    ""  or "index.html"             the page
    "viewer.js" "viewer.css"        its assets (a fixed list; nothing else under static/)
    "api/runs"                      [summary, ...] newest first
    "api/runs/<id>"                 the results JSON, or the fold of the events so far (+ "_seq")
    "api/runs/<id>/changes?after=N" {"run": fields, "agents": [touched since event N], "more", "live", "now"}
    "api/runs/<id>/patch"           the run's patch (`<run_id>.patch` beside its results), as text
    "patch"                         the same, when the store holds one run (the App's trace link)

Anything else is 404. A run id is looked up in the store's listing, never joined onto a path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from .runs import NotARun, RunFiles, RunStore, changes_json, json_bytes, run_json

STATIC = {
    "index.html": "text/html; charset=utf-8",
    "viewer.js": "text/javascript; charset=utf-8",
    "viewer.css": "text/css; charset=utf-8",
}
JSON_TYPE = "application/json; charset=utf-8"

# Sent with every answer. The page needs nothing from anywhere else, so the policy allows only
# its own origin; the referrer is never sent, so a secret link cannot leak through one.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "X-Robots-Tag": "noindex, nofollow",
    "Cache-Control": "no-store",
    "Cross-Origin-Resource-Policy": "same-origin",
}


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


NOT_FOUND = Reply(404, b"not found\n")


def static_bytes(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


def _json(data: Any) -> Reply:
    return Reply(200, json_bytes(data), JSON_TYPE)


def _patch(run: RunFiles) -> Reply:
    """`<run_id>.patch` beside the run's files; a symlink out of the directory is not followed."""
    path = run.results.with_name(f"{run.run_id}.patch")
    if path.is_symlink() or not path.is_file():
        return NOT_FOUND
    name = f"{run.run_id}.patch"
    return Reply(
        200,
        path.read_bytes(),
        "text/x-diff; charset=utf-8",
        {"Content-Disposition": f'inline; filename="{name}"'},
    )


def dispatch(store: RunStore, path: str, query: dict[str, str]) -> Reply:
    """Answer one GET for the viewer; `path` is relative to the viewer's base URL."""
    if path in ("", "index.html"):
        path = "index.html"
    if path in STATIC:
        return Reply(200, static_bytes(path), STATIC[path])
    if path == "patch":
        runs = store.runs()
        return _patch(runs[0]) if store.single is not None and len(runs) == 1 else NOT_FOUND
    parts = path.split("/")
    if parts[:2] != ["api", "runs"]:
        return NOT_FOUND
    if len(parts) == 4 and parts[3] == "patch":
        run = store.get(parts[2])
        return _patch(run) if run is not None else NOT_FOUND
    if len(parts) == 2:
        return _json(store.list())
    run = store.get(parts[2])
    if run is None or len(parts) > 4 or (len(parts) == 4 and parts[3] != "changes"):
        return NOT_FOUND
    try:
        if len(parts) == 3:
            return Reply(200, run_json(run), JSON_TYPE)
        try:
            after = int(query.get("after", "0"))
        except ValueError:
            return Reply(400, b"after must be an integer sequence number\n")
        return Reply(200, changes_json(run, after), JSON_TYPE)
    except (FileNotFoundError, NotARun, ValueError):
        return NOT_FOUND
