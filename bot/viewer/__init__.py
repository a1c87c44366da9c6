"""The trace viewer: a static page, the local server behind `rlm view`, and a Flask blueprint
that serves the same page for one run per unguessable link (`viewer_blueprint`)."""

from __future__ import annotations

from typing import Any

from .server import make_server, new_token, run_view

__all__ = ["make_server", "new_token", "run_view", "viewer_blueprint"]


def __getattr__(name: str) -> Any:
    if name == "viewer_blueprint":  # imports Flask only when the web app asks for it
        from .blueprint import viewer_blueprint

        return viewer_blueprint
    raise AttributeError(name)
