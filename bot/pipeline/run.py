"""`run`: one request from acknowledgement to delivered change, for every front end.

    accept (run id, acknowledge once) → resolve the target once (commit, base) → before_fetch stages
    → fetch → rollout (events to the reporter) → `<run_id>.patch` beside the results → deliver
    → finished

Every exit path ends in exactly one `reporter.finished(outcome)`; a bug is logged with its
traceback and still reported.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import bot.rlm as engine
from bot.common.secrets import REDACTOR
from bot.rlm import ConfigError, PatchError, RLMError, RunMode, Status, new_run_id

from .deliverer import Deliverer
from .errors import DeliveryError
from .outcome import OutcomeKind, RunOutcome, Target
from .reporter import NullReporter, Phase, Reporter
from .request import RunRequest
from .state import RunSettings, RunState

if TYPE_CHECKING:
    from bot.rlm import RolloutResult

log = logging.getLogger(__name__)


class _Cancelled(Exception):
    """Cancelled before the rollout started."""


class _NoteKeeper(NullReporter):
    """Forwards to the adapter's reporter and keeps the notes for the delivery (PR body)."""

    def __init__(self, inner: Reporter, state: RunState):
        self.inner, self.state = inner, state
        self.acknowledge, self.request_changed = inner.acknowledge, inner.request_changed
        self.phase, self.event, self.finished = inner.phase, inner.event, inner.finished

    def note(self, text: str) -> None:
        self.state.notes.append(text)
        self.inner.note(text)


def patch_path(results_dir: Path, run_id: str) -> Path:
    return results_dir / f"{run_id}.patch"


def write_patch(results_dir: Path, run_id: str, patch: str) -> Path | None:
    """`<run_id>.patch` beside the results, so a change is never only in memory. Like everything in
    the results directory it holds no secret (a secret the model wrote into a file is redacted)."""
    if not patch.strip():
        return None
    results_dir.mkdir(parents=True, exist_ok=True)
    path = patch_path(results_dir, run_id)
    tmp = path.with_suffix(".patch.tmp")
    tmp.write_text(REDACTOR.redact(patch), encoding="utf-8", errors="surrogateescape")
    tmp.replace(path)
    return path


def rollout_outcome(state: RunState) -> RunOutcome:
    """How the rollout ended, before any change is delivered (NO_CHANGES when it completed)."""
    result, settings = state.result, state.settings
    words = settings.words
    assert result is not None
    kinds = {
        Status.TIMEOUT: (OutcomeKind.TIMEOUT, words.timeout),
        Status.BUDGET: (OutcomeKind.BUDGET, words.budget),
        Status.CANCELLED: (OutcomeKind.CANCELLED, words.cancelled.format(prefix=words.prefix)),
        Status.COMPLETED: (OutcomeKind.NO_CHANGES, words.no_changes),
    }
    kind, message = kinds.get(
        result.status, (OutcomeKind.ERROR, words.error.format(error=result.error or "unknown error"))
    )
    if kind is OutcomeKind.NO_CHANGES and answered(result):
        kind, message = OutcomeKind.ANSWER, words.answered
    if state.partial:
        message = words.cost_cap.format(cap=state.config.rlm.max_cost_usd or 0.0)
    return RunOutcome(state.run_id, kind, message, result=result)


def answered(result: RolloutResult) -> bool:
    """A change run that ended with an answer and no change: the answer is the result."""
    return result.mode is RunMode.CHANGE and not result.has_changes and bool((result.answer or "").strip())


def to_deliver(result: RolloutResult, partial: bool = False) -> bool:
    """What the Deliverer is asked for: a completed change run's patch (or, when the cost cap
    stopped the tree, its changes so far), or a review's findings (those of a review stopped
    early too: they are worth posting)."""
    if result.mode is RunMode.REVIEW:
        return result.status == "completed" or bool(result.findings)
    return (result.status == "completed" or partial) and result.has_changes


def accept(request: RunRequest, reporter: Reporter) -> None:
    """Give the request its run id and acknowledge it, once (again only after a restart). The App
    calls it before a run worker is free; `run` calls it for a request not accepted yet."""
    if request.run_id is None:
        request.run_id = new_run_id()
        reporter.request_changed(request)
    if not request.acknowledged or request.restarted:
        reporter.acknowledge(request)
        if not request.acknowledged:
            request.acknowledged = True
            reporter.request_changed(request)


def resolve(request: RunRequest, reporter: Reporter, deliverer: Deliverer) -> Target:
    """The commit to run on and where the change goes, decided once: a request that already knows
    its commit and base (resolved at acceptance, or given) is not asked about again. With
    `record_fetched`, the only place the request's target fields are set."""
    if request.commit and request.base_branch and (not request.fork or request.trusted_commit):
        return Target(
            request.commit,
            request.base_branch,
            request.fork,
            request.default_branch,
            request.follow_up,
            request.trusted_commit,
        )
    target = deliverer.target(request)
    if target.commit:
        request.commit, request.base_branch, request.fork = target.commit, target.base_branch, target.fork
        request.default_branch = target.default_branch or request.default_branch
        request.follow_up = target.follow_up
        request.trusted_commit = target.trusted_commit
        reporter.request_changed(request)
    return target


def record_fetched(request: RunRequest, reporter: Reporter, commit: str) -> None:
    """The commit the fetch found (a branch's head when no commit was resolved) becomes the request's."""
    if request.commit != commit:
        request.commit = commit
        reporter.request_changed(request)


def _check(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise _Cancelled


def _execute(
    state: RunState, reporter: Reporter, deliverer: Deliverer, cancel: threading.Event
) -> RunOutcome:
    request, settings = state.request, state.settings
    accept(request, reporter)
    _check(cancel)
    state.target = target = resolve(request, reporter, deliverer)
    for stage in settings.before_fetch:
        stage(state, reporter)
    reporter.phase(Phase.PREPARING, (target.commit or "")[:12] or request.branch or "")
    state.prepared = engine.prepare(
        state.config,
        request.clone_url,
        branch=None if target.commit else request.branch,
        commit=target.commit,
        auth_header=settings.auth_header,
        scope=f"github:{request.repo_id}" if request.repo_id else None,
        trusted=not request.fork,
        trusted_commit=request.trusted_commit if request.fork else None,
    )
    record_fetched(request, reporter, state.prepared.commit)
    _check(cancel)
    reporter.phase(Phase.RUNNING)
    state.result = engine.run(
        state.config,
        state.prepared,
        request.task,
        run_id=state.run_id,
        results_dir=settings.results_dir,
        cancel=cancel,
        on_event=reporter.event,
        model=settings.model,
        api_key=settings.api_key,
        daytona_api_key=settings.daytona_api_key,
        context=request.context,
        mode=request.mode,
    )
    state.patch_path = write_patch(settings.results_dir, state.run_id, state.result.patch)
    outcome = rollout_outcome(state)
    partial = state.partial  # the cost cap stopped the tree: its changes so far are still delivered
    if to_deliver(state.result, partial):
        reporter.phase(Phase.DELIVERING)
        outcome = deliverer.deliver(state)  # it words a partial change for its front end
        outcome.partial = partial
        for note in outcome.notes:
            reporter.note(note)
    return outcome


def run(
    request: RunRequest,
    reporter: Reporter,
    deliverer: Deliverer,
    cancel: threading.Event | None = None,
    *,
    settings: RunSettings,
) -> RunOutcome:
    """Run one request to its end and return how it ended (never raises for a run's failure)."""
    cancel = cancel or threading.Event()
    state = RunState(request, settings, settings.config)
    reporter = _NoteKeeper(reporter, state)
    if request.run_id is None:
        request.run_id = new_run_id()
        reporter.request_changed(request)
    run_id, words = request.run_id, settings.words
    try:
        outcome = _execute(state, reporter, deliverer, cancel)
    except _Cancelled:
        outcome = RunOutcome(run_id, OutcomeKind.CANCELLED, words.cancelled.format(prefix=words.prefix))
    except DeliveryError as e:
        log.warning("run %s: %s", run_id, REDACTOR.redact(str(e)))
        message = words.delivery_error.format(error=e)
        outcome = RunOutcome(run_id, OutcomeKind.DELIVERY_ERROR, message, error=str(e))
    except (RLMError, ConfigError, PatchError) as e:
        outcome = RunOutcome(run_id, OutcomeKind.ERROR, words.error.format(error=e), error=str(e))
    except Exception:  # a bug: logged with its traceback, and the requester is still told
        log.exception("run %s failed unexpectedly", run_id)
        outcome = RunOutcome(run_id, OutcomeKind.ERROR, words.error.format(error=words.internal_error))
    outcome.result = outcome.result or state.result
    outcome.patch_path = outcome.patch_path or state.patch_path
    outcome.notes = [*state.notes, *(n for n in outcome.notes if n not in state.notes)]
    if outcome.patch_path is not None and outcome.kind not in _DELIVERED:
        where = words.patch_saved.format(where=settings.patch_location(outcome.patch_path))
        if where not in outcome.message:
            outcome.message = f"{outcome.message} {where}"
    reporter.finished(outcome)
    return outcome


# Outcomes whose message already says where the change is.
_DELIVERED = {
    OutcomeKind.PR,
    OutcomeKind.PUSHED,
    OutcomeKind.BRANCH,
    OutcomeKind.PATCH_COMMENT,
    OutcomeKind.PATCH,
    OutcomeKind.ONLY_WORKFLOWS,
}
