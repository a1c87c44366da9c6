"""Every behaviour's router, combined; the entry dispatches each verified event here."""

from __future__ import annotations

from gidgethub import routing

from . import issue_comment, review_comment, triggers

router = routing.Router(issue_comment.router, review_comment.router, triggers.router)

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
