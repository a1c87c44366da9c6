"""`issue_comment.created`: a command on an issue or a pull request's conversation."""

from __future__ import annotations

from gidgethub import routing, sansio

from .comment_command import enqueue_command
from .context import Delivery

router = routing.Router()


@router.register("issue_comment", action="created")
async def command_in_issue_comment(event: sansio.Event, delivery: Delivery) -> None:
    issue = event.data["issue"]
    enqueue_command(
        event.data,
        delivery,
        number=issue["number"],
        is_pull="pull_request" in issue,
        review=False,
        html_url=issue.get("html_url"),
    )
