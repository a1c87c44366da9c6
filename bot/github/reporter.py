"""The pipeline's Reporter on GitHub: 👀 on the command, the live status comment, 🚀 or 😕 at the end.

Acknowledging never ends a run: a reaction GitHub keeps refusing (after the client's retries) is
said in the status comment; a status comment that cannot be posted is posted again at the next
step and at the end. Every failure is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bot.common.secrets import REDACTOR
from bot.pipeline import NullReporter, OutcomeKind, Phase, RunOutcome, RunRequest

from . import messages
from .api import GitHubAPI, GitHubError
from .status import LiveStatus, StatusComment

log = logging.getLogger(__name__)

# Phase.RUNNING has no line of its own: the live status says "Setting up the environment…" or
# "Starting the agents…" from the rollout's first events (so never "Starting" before setup).
_PHASE_LINES = {
    Phase.DELIVERING: messages.STATUS_OPENING_PR,
}


class StatusReporter(NullReporter):
    """Talks on the request's issue or pull request. `on_change` is told when it sets the
    request's reaction or status comment id (the App stores them). With `live` False there is no
    comment until the end: one reply saying how the run ended (the Action without `create-pr`)."""

    def __init__(
        self,
        api: GitHubAPI,
        request: RunRequest,
        *,
        prefix: str = "/rlm",
        trace_url: str | None = None,
        interval: float = 15.0,
        on_change: Callable[[RunRequest], None] | None = None,
        live: bool = True,
    ):
        self.api, self.request, self.interval, self.live_status = api, request, interval, live
        self.on_change = on_change or (lambda _request: None)
        self.status = StatusComment(
            api,
            request.repo,
            request.number,
            request.run_id or "",
            request.task,
            prefix=prefix,
            trace_url=trace_url,
            comment_id=request.status_comment_id,
            on_created=self._created,
        )
        self.live: LiveStatus | None = None
        self.status.notes.extend(request.ack_notes)  # said at acceptance, kept until the end
        if request.restarted:
            self.status.notes.append(messages.STATUS_RESTARTED)

    def _created(self, comment_id: int) -> None:
        self.request.status_comment_id = comment_id
        self.on_change(self.request)

    def _show(self, *lines: str, final: bool = False) -> bool:
        try:
            self.status.show(*lines, final=final)
            return True
        except GitHubError as e:
            log.error(
                "run %s: could not write the status comment: %s", self.status.run_id, REDACTOR.redact(str(e))
            )
            return False

    # ------------------------------------------------------------------ Reporter

    def acknowledge(self, request: RunRequest) -> None:
        self.status.run_id = request.run_id or self.status.run_id
        if request.comment_id and request.reaction_id is None:
            try:
                request.reaction_id = self.api.add_reaction(
                    request.repo, request.comment_id, messages.REACTION_SEEN, review=request.review_comment
                )
                self.on_change(request)
            except GitHubError as e:
                log.error("run %s: could not add the 👀 reaction: %s", request.run_id, e)
                note = messages.ACK_REACTION_FAILED.format(error=e)
                self.note(note)
                if note not in request.ack_notes:  # the run worker's status comment says it too
                    request.ack_notes.append(note)
                    self.on_change(request)
        if self.live_status and (self.status.comment_id is None or request.restarted):
            self._show(messages.STATUS_QUEUED)

    def phase(self, phase: Phase, detail: str = "") -> None:
        if not self.live_status:
            return
        if phase is Phase.PREPARING:
            self._show(messages.STATUS_PREPARING.format(commit=detail))
            return
        if phase is not Phase.RUNNING:
            self._stop_live()
        line = _PHASE_LINES.get(phase)
        if line:
            self._show(line)
        if phase is Phase.RUNNING and self.live is None:
            self.live = LiveStatus(self.status, self.interval).start()

    def note(self, text: str) -> None:
        if text not in self.status.notes:
            self.status.notes.append(text)

    def event(self, event: dict[str, Any]) -> None:
        if self.live is not None:
            self.live.on_event(event)

    def finished(self, outcome: RunOutcome) -> None:
        self._stop_live()
        self.status.run_id = outcome.run_id
        lines = [outcome.message]
        if outcome.kind is OutcomeKind.ANSWER and outcome.result is not None:
            lines += messages.answer_lines(outcome.result)
        if outcome.result is not None:
            lines.append(messages.final_totals(outcome.result.results))
        self._show(*lines, final=True)
        self.react(outcome.ok)

    def react(self, ok: bool) -> None:
        """🚀 or 😕 on the command, and the 👀 taken away (each tried on its own)."""
        request = self.request
        if not request.comment_id:
            return
        try:
            self.api.add_reaction(
                request.repo,
                request.comment_id,
                messages.REACTION_DONE if ok else messages.REACTION_FAILED,
                review=request.review_comment,
            )
        except GitHubError as e:
            log.error("run %s: could not set the final reaction: %s", request.run_id, e)
        if request.reaction_id:
            try:
                self.api.delete_reaction(
                    request.repo, request.comment_id, request.reaction_id, review=request.review_comment
                )
            except GitHubError as e:
                log.error("run %s: could not remove the 👀 reaction: %s", request.run_id, e)

    def _stop_live(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
