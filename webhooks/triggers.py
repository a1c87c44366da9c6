"""`issues` and `pull_request` labelled or assigned: maybe a run (`.github/rlm.yml` `triggers:`).

Whether the label or the assignee starts a run is in the repository's rlm.yml, which only a worker
reads (a handler never touches GitHub): the delivery becomes a `trigger` job that the worker turns
into a run, or ends quietly. An assignment to anyone but a bot is not recorded at all.
"""

from __future__ import annotations

from gidgethub import routing, sansio

from bot.github.triggers import TriggerKind, trigger_task
from bot.jobs import NewJob
from bot.pipeline import RunRequest

from .context import Delivery
from .kinds import JobKind
from .payload import typed

router = routing.Router()

IGNORED_BOT_SENDER = "the label or assignment was made by a bot"
IGNORED_NOT_A_BOT = "the issue was assigned to a person, not to the app"
IGNORED_CLOSED = "the issue or pull request is closed"


@router.register("issues", action="labeled")
@router.register("issues", action="assigned")
@router.register("pull_request", action="labeled")
@router.register("pull_request", action="assigned")
async def labelled_or_assigned(event: sansio.Event, delivery: Delivery) -> None:
    data = event.data
    is_pull = event.event == "pull_request"
    item = data["pull_request"] if is_pull else data["issue"]
    sender = data.get("sender") or {}
    if sender.get("type") == "Bot":
        return delivery.ignore(IGNORED_BOT_SENDER)
    if item.get("state") == "closed":
        return delivery.ignore(IGNORED_CLOSED)
    if data["action"] == "labeled":
        kind, value = TriggerKind.LABEL, typed((data.get("label") or {}).get("name"), str, "label.name")
    else:
        assignee = data.get("assignee") or {}
        if assignee.get("type") != "Bot":
            return delivery.ignore(IGNORED_NOT_A_BOT)
        kind, value = TriggerKind.ASSIGN, typed(assignee.get("login"), str, "assignee.login")
    repo = data["repository"]
    full_name = typed(repo["full_name"], str, "repository.full_name")
    number = typed(item["number"], int, "issue or pull request number")
    request = RunRequest(
        repo=full_name,
        number=number,
        requester=typed(sender.get("login"), str, "sender.login"),
        requester_id=typed(sender.get("id"), int, "sender.id", optional=True),
        task=trigger_task(
            typed(item.get("title"), str, "title", optional=True),
            typed(item.get("body"), str, "body", optional=True),
        ),
        clone_url=typed(repo.get("clone_url"), str, "repository.clone_url", optional=True),
        is_pull=is_pull or "pull_request" in item,
        html_url=typed(item.get("html_url"), str, "html_url", optional=True),
        extra={"trigger": kind.value, "trigger_value": value},  # read by the worker's trigger check
    )
    delivery.enqueue(
        NewJob(
            kind=JobKind.TRIGGER,
            repo=full_name,
            number=number,
            request=request.to_payload(),
            installation_id=delivery.installation_id,
        )
    )
