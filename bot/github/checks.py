"""A check run `rlm-bot` on the commit a run works on: in progress with the live agent tree, then
completed with a conclusion from the outcome, the tree summary and cost, and a review's findings
as annotations.

A check run is a courtesy, never a reason to fail: without the `checks: write` permission GitHub
answers 403, and from then on this run makes no more check-run calls and says so once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bot.common.secrets import REDACTOR
from bot.pipeline import NullReporter, OutcomeKind, Phase, RunOutcome, RunRequest
from bot.rlm import Finding, summary_markdown

from .api import GitHubAPI, GitHubError
from .review import unique
from .status import LiveStatus

log = logging.getLogger(__name__)

CHECK_NAME = "rlm-bot"
CHECK_TITLE_QUEUED = "Queued"
CHECK_TITLE_PREPARING = "Fetching the repository"
CHECK_TITLE_RUNNING = "The agents are working"
CHECK_SUMMARY_TASK = "**Task:** {task}"
CHECK_OFF = (
    "ℹ️ Check runs are off: the app may not write them (it needs the `checks: write` permission), "
    "so this run shows no check on the commit."
)
ANNOTATION_TITLE = "rlm-bot review"
ANNOTATIONS_PER_REQUEST = 50  # GitHub's limit for one create or update
MAX_ANNOTATIONS = 500
TITLE_LIMIT = 200
OUTPUT_LIMIT = 65535  # characters of a check run's summary or text

CONCLUSIONS = {
    OutcomeKind.PR: "success",
    OutcomeKind.PUSHED: "success",
    OutcomeKind.PATCH_COMMENT: "success",
    OutcomeKind.PATCH: "success",
    OutcomeKind.NO_CHANGES: "neutral",
    OutcomeKind.ANSWER: "neutral",
    OutcomeKind.REVIEW: "neutral",
    OutcomeKind.ONLY_WORKFLOWS: "neutral",
    OutcomeKind.BRANCH: "neutral",
    OutcomeKind.CANCELLED: "cancelled",
    OutcomeKind.TIMEOUT: "timed_out",
}


def conclusion(kind: OutcomeKind) -> str:
    """GitHub's conclusion for an outcome: success, neutral (no change, an answer, a review),
    cancelled, timed_out, else failure."""
    return CONCLUSIONS.get(kind, "failure")


def annotation(finding: Finding) -> dict[str, Any]:
    note: dict[str, Any] = {
        "path": finding.path,
        "start_line": finding.line,
        "end_line": finding.line,
        "annotation_level": "warning",
        "title": ANNOTATION_TITLE,
        "message": finding.body[:OUTPUT_LIMIT],
    }
    if finding.suggestion is not None:
        note["raw_details"] = finding.suggestion[:OUTPUT_LIMIT]
    return note


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class CheckRun:
    """One check run, created on first use. Every call is a no-op once GitHub said 403."""

    def __init__(
        self,
        api: GitHubAPI,
        repo: str,
        head_sha: str,
        *,
        details_url: str | None = None,
        external_id: str | None = None,
        on_off: Callable[[str], None] | None = None,
        check_id: int | None = None,
        on_created: Callable[[int], None] | None = None,
    ):
        self.api, self.repo, self.head_sha = api, repo, head_sha
        self.details_url, self.external_id = details_url, external_id
        self.on_off = on_off or (lambda _text: None)
        self.on_created = on_created or (lambda _id: None)
        self.id: int | None = check_id  # a resumed run's, to carry on with
        self.off = False

    def _call(self, fn: Callable[[], Any]) -> Any:
        if self.off:
            return None
        try:
            return fn()
        except GitHubError as e:
            if e.status == 403:
                self.off = True
                log.info("check runs are off on %s: %s", self.repo, REDACTOR.redact(str(e)))
                self.on_off(CHECK_OFF)
            else:  # the run goes on; a later update tries again
                log.warning("check run on %s: %s", self.repo, REDACTOR.redact(str(e)))
            return None

    def show(self, title: str, summary: str) -> None:
        """In progress, with this title and summary (created the first time)."""
        output = {"title": _cut(title, TITLE_LIMIT), "summary": _cut(summary, OUTPUT_LIMIT)}
        if self.id is None:
            self._create({"status": "in_progress", "output": output})
        else:
            self._call(lambda: self.api.update_check_run(self.repo, self.id, {"output": output}))

    def _create(self, fields: dict[str, Any]) -> None:
        body = {"name": CHECK_NAME, "head_sha": self.head_sha, **fields}
        if self.details_url:
            body["details_url"] = self.details_url
        if self.external_id:
            body["external_id"] = self.external_id
        data = self._call(lambda: self.api.create_check_run(self.repo, body))
        if isinstance(data, dict) and data.get("id") is not None:
            self.id = int(data["id"])
            self.on_created(self.id)

    def complete(
        self, conclusion: str, title: str, summary: str, annotations: list[dict] | None = None
    ) -> None:
        """Completed, with the annotations in batches of 50 (GitHub adds each batch to the run)."""
        notes = list(annotations or [])[:MAX_ANNOTATIONS]
        output = {"title": _cut(title, TITLE_LIMIT), "summary": _cut(summary, OUTPUT_LIMIT)}
        first, rest = notes[:ANNOTATIONS_PER_REQUEST], notes[ANNOTATIONS_PER_REQUEST:]
        fields = {
            "status": "completed",
            "conclusion": conclusion,
            "output": {**output, **({"annotations": first} if first else {})},
        }
        if self.id is None:
            self._create(fields)
        else:
            self._call(lambda: self.api.update_check_run(self.repo, self.id, fields))
        while rest and self.id is not None and not self.off:
            batch, rest = rest[:ANNOTATIONS_PER_REQUEST], rest[ANNOTATIONS_PER_REQUEST:]
            body = {"output": {**output, "annotations": batch}}
            self._call(lambda body=body: self.api.update_check_run(self.repo, self.id, body))


class _TreeSink:
    """What LiveStatus edits: the check run's summary, as the live agent tree."""

    def __init__(self, check: CheckRun, run_id: str, task: str):
        self.check, self.run_id, self.task = check, run_id, task

    def show(self, tree: str) -> None:
        self.check.show(
            CHECK_TITLE_RUNNING, f"{CHECK_SUMMARY_TASK.format(task=_task_line(self.task))}\n\n{tree}"
        )


class _LiveTree(LiveStatus):
    def line(self) -> str | None:
        with self._lock:
            return summary_markdown(self.results) if self.results.get("agents") else None


def _task_line(task: str) -> str:
    return _cut(" ".join(task.split()), 300)


class CheckRunReporter(NullReporter):
    """The pipeline's Reporter for the check run. It starts once the run's commit is known; its
    updates are throttled like the status comment's (`interval` seconds)."""

    def __init__(
        self,
        api: GitHubAPI,
        request: RunRequest,
        *,
        details_url: str | None = None,
        interval: float = 15.0,
        on_off: Callable[[str], None] | None = None,
        on_change: Callable[[RunRequest], None] | None = None,
    ):
        """`on_change` is told when the request's `check_run_id` is set (the App stores it)."""
        self.api, self.request, self.interval = api, request, interval
        self.details_url, self.on_off = details_url, on_off
        self.on_change = on_change or (lambda _request: None)
        self.check: CheckRun | None = None
        self.live: LiveStatus | None = None

    def _ensure(self) -> CheckRun | None:
        known = self.request.commit or self.request.check_run_id  # a check run exists, or can be made
        if self.check is None and known and self.request.repo:
            self.check = CheckRun(
                self.api,
                self.request.repo,
                self.request.commit or "",
                details_url=self.details_url,
                external_id=self.request.run_id,
                on_off=self.on_off,
                check_id=self.request.check_run_id,
                on_created=self._created,
            )
        return self.check

    def _created(self, check_id: int) -> None:
        self.request.check_run_id = check_id
        self.on_change(self.request)

    def phase(self, phase: Phase, detail: str = "") -> None:
        check = self._ensure()
        if check is None or check.off:
            return
        summary = CHECK_SUMMARY_TASK.format(task=_task_line(self.request.task))
        if phase is Phase.PREPARING:
            check.show(CHECK_TITLE_PREPARING, summary)
        elif phase is Phase.RUNNING and self.live is None:
            check.show(CHECK_TITLE_RUNNING, summary)
            sink = _TreeSink(check, self.request.run_id or "", self.request.task)
            self.live = _LiveTree(sink, self.interval).start()  # type: ignore[arg-type]

    def event(self, event: dict[str, Any]) -> None:
        if self.live is not None:
            self.live.on_event(event)

    def finished(self, outcome: RunOutcome) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        check = self._ensure()
        if check is None or check.off:
            return
        result = outcome.result
        parts = [outcome.message, "", CHECK_SUMMARY_TASK.format(task=_task_line(self.request.task))]
        if result is not None:
            parts += ["", summary_markdown(result.results)]
        findings = (
            unique(getattr(result, "findings", None) or []) if outcome.kind is OutcomeKind.REVIEW else []
        )
        check.complete(
            conclusion(outcome.kind),
            outcome.message.splitlines()[0] if outcome.message else outcome.kind.value,
            "\n".join(parts),
            [annotation(f) for f in findings],
        )
