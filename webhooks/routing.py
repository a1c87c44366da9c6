"""Every behaviour's router, combined; the entry dispatches each verified event here."""

from __future__ import annotations

from gidgethub import routing

from .issue_comment import router as issue_comment_router
from .review_comment import router as review_comment_router
from .triggers import router as triggers_router

router = routing.Router(issue_comment_router, review_comment_router, triggers_router)

# Events the app is subscribed to (or gets anyway, like installation changes). Anything else is 400.
KNOWN_EVENTS = {
    "ping",
    "issue_comment",
    "pull_request_review_comment",
    "issues",  # labelled or assigned: .github/rlm.yml `triggers:`
    "pull_request",
    "installation",
    "installation_repositories",
}
