"""`pull_request_review_comment.created`: a command in a comment on a pull request's diff."""

from __future__ import annotations

from gidgethub import routing, sansio

from .comment_command import enqueue_command
from .context import Delivery

router = routing.Router()


@router.register("pull_request_review_comment", action="created")
async def command_in_review_comment(event: sansio.Event, delivery: Delivery) -> None:
    pull = event.data["pull_request"]
    enqueue_command(
        event.data, delivery, number=pull["number"], is_pull=True, review=True, html_url=pull.get("html_url")
    )
