"""Turn a refused GitHub call into the `permissions:` entry the workflow's token is missing.

The job's GITHUB_TOKEN gets only the scopes the workflow grants; a write outside them fails with
403 "Resource not accessible by integration". The call's method and path tell which scope it was.
"""

from __future__ import annotations

import re

from . import messages as m

_ANSWER = re.compile(
    r"GitHub answered (?P<verb>[A-Z]+) (?P<path>\S+) with (?P<status>\d{3}) (?P<message>[^\n]*?)\.?$", re.M
)

# (verb, path pattern) -> (what the token could not do, the permission to add)
_NEEDS = (
    ("POST", r"/pulls/comments/\d+/reactions$", "react to review comments", "pull-requests: write"),
    ("POST", r"/pulls$", "open pull requests", "pull-requests: write"),
    ("POST", r"/git/(blobs|trees|commits|refs)$", "push the branch with the changes", "contents: write"),
    ("PATCH", r"/git/refs/", "push the branch with the changes", "contents: write"),
    ("POST", r"/issues/comments/\d+/reactions$", "react to comments", "issues: write"),
    (
        "POST",
        r"/issues/\d+/comments$",
        "comment on issues and pull requests",
        "issues: write` and `pull-requests: write",
    ),
    (
        "PATCH",
        r"/issues/comments/\d+$",
        "edit its status comment",
        "issues: write` and `pull-requests: write",
    ),
    ("GET", r"/pulls/\d+$", "read the pull request", "pull-requests: read"),
    ("GET", r"/contents/", "read the repository", "contents: read"),
    ("GET", r"/branches/", "read the repository", "contents: read"),
)


def missing_permission(error_text: str) -> str | None:
    """A sentence naming the missing permission, or None when the error is not a refusal."""
    match = _ANSWER.search(error_text)
    if not match or match["status"] not in ("403", "404"):
        return None
    message = match["message"].strip()
    if "create or approve pull requests" in message:
        return m.ACTIONS_MAY_NOT_CREATE_PRS
    if match["status"] == "404" and match["verb"] == "GET":
        return None  # a read of something that does not exist, not a refusal
    if match["status"] == "403" and "rate limit" in message.lower():
        return None
    for verb, pattern, what, permission in _NEEDS:
        if verb == match["verb"] and re.search(pattern, match["path"]):
            return m.NEEDS_PERMISSION.format(
                what=what, permission=permission, status=match["status"], message=message
            )
    return None
