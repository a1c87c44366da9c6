"""What a worker does with one App job: authenticate as the installation, check who asked, then
reply (help, status, cancel, not allowed, busy) or run the whole flow in `run.py`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bot.jobs import RUN_LANE, Job, JobStore, WorkerPool
from bot.rlm.config import Config

from . import report
from .api import GitHubAPI, GitHubError
from .auth import AppAuth, basic_auth_header
from .commands import help_text
from .permissions import may_run, not_allowed
from .run import RunOptions, RunRequest, acknowledge, execute_run, resolve_base

log = logging.getLogger(__name__)


@dataclass
class WorkerSettings:
    results_dir: Path = Path("results")
    prefix: str = "/rlm"
    public_url: str | None = None  # where /runs/<token> is reachable; None = trace stays on the server
    draft: bool = False
    can_push_workflows: bool = False
    status_interval: float = 15.0
    allowed_models: set[str] = field(default_factory=set)
    api_key: str | None = None
    api_options: dict = field(default_factory=dict)  # e.g. {"sleep": ..., "max_tries": ...} for tests


def run_request(data: dict) -> RunRequest:
    known = RunRequest.__dataclass_fields__
    return RunRequest(**{k: v for k, v in data.items() if k in known})


class AppJobHandler:
    """The WorkerPool's handler for App jobs."""

    def __init__(self, auth: AppAuth, config: Config, store: JobStore, settings: WorkerSettings,
                 pool: Callable[[], WorkerPool | None] = lambda: None):  # fmt: skip
        self.auth = auth
        self.config = config
        self.store = store
        self.settings = settings
        self.pool = pool
        self._local = threading.local()

    def __call__(self, job: Job, cancel: threading.Event) -> None:
        try:
            self._handle(self._api(job.installation_id), job, cancel)
        except GitHubError as e:
            log.warning("job %s (%s) on %s#%s: %s", job.id, job.kind, job.repo, job.number, e)
            self.store.finish(job.id, "failed", "github_error", str(e))

    def _api(self, installation_id: int) -> GitHubAPI:
        """One client per worker thread and installation, so its HTTP connection is reused (its
        token renews itself)."""
        apis = self._local.__dict__.setdefault("apis", {})
        if installation_id not in apis:
            apis[installation_id] = self.auth.installation_api(installation_id, **self.settings.api_options)
        return apis[installation_id]

    def _reply(self, api: GitHubAPI, job: Job, body: str, outcome: str) -> None:
        api.create_comment(job.repo, job.number, body)
        self.store.finish(job.id, "done", outcome, body)

    def _handle(self, api: GitHubAPI, job: Job, cancel: threading.Event) -> None:
        req, prefix = job.request, self.settings.prefix
        if job.kind == "interrupted":
            return self._report_interrupted(api, job)
        if job.kind == "run" and job.lane == RUN_LANE:
            return self._run(api, job, cancel)  # accepted earlier in the control lane
        if not may_run(api, job.repo, req["requester"]):
            return self._reply(api, job, not_allowed(req["requester"], prefix), "not_allowed")
        if job.kind in ("help", "invalid"):
            lead = f"{report.INVALID_COMMAND}\n\n" if job.kind == "invalid" else ""
            return self._reply(api, job, lead + help_text(prefix), job.kind)
        if job.kind == "status":
            return self._status(api, job)
        if job.kind == "cancel":
            return self._cancel(api, job)
        if job.kind == "busy":
            return self._busy(api, job)
        if job.kind == "run":
            return self._accept(api, job)
        raise ValueError(f"unknown job kind {job.kind!r}")

    def _status(self, api: GitHubAPI, job: Job) -> None:
        active = self.store.active_run(job.repo, job.number)
        if active is None:
            return self._reply(api, job, report.NOTHING_RUNNING.format(prefix=self.settings.prefix), "status")
        progress = ""
        comment = active.request.get("status_comment_id")
        if comment and active.request.get("html_url"):
            progress = f"Live progress: {active.request['html_url']}#issuecomment-{comment}"
        body = report.STATUS_REPLY.format(run_id=active.request.get("run_id") or f"job {active.id}",
                                          state=active.state, progress=progress).strip()  # fmt: skip
        self._reply(api, job, body, "status")

    def _cancel(self, api: GitHubAPI, job: Job) -> None:
        active = self.store.active_run(job.repo, job.number)
        if active is None:
            return self._reply(api, job, report.NOTHING_TO_CANCEL, "cancel")
        label = active.request.get("run_id") or f"job {active.id}"
        body = report.CANCEL_REQUESTED.format(run_id=label)
        if not self.store.cancel_queued(
            active.id, report.OUTCOME_CANCELLED.format(prefix=self.settings.prefix)
        ):
            self.store.request_cancel(active.id)
            pool = self.pool()
            if pool is not None:
                pool.cancel(active.id)
        self._reply(api, job, body, "cancel")

    def _busy(self, api: GitHubAPI, job: Job) -> None:
        active = self.store.active_run(job.repo, job.number)
        label = (active.request.get("run_id") if active else None) or "another run"
        self._reply(api, job, report.BUSY.format(run_id=label, prefix=self.settings.prefix), "busy")

    def _options(self, job: Job, auth_header: str | None = None) -> RunOptions:
        s = self.settings
        trace_url = None
        if s.public_url and job.trace_token:
            trace_url = f"{s.public_url.rstrip('/')}/runs/{job.trace_token}/"
        return RunOptions(results_dir=s.results_dir, prefix=s.prefix, auth_header=auth_header, api_key=s.api_key,
                          draft=s.draft, can_push_workflows=s.can_push_workflows, status_interval=s.status_interval,
                          allowed_models=s.allowed_models, trace_url=lambda _run_id: trace_url)  # fmt: skip

    def _accept(self, api: GitHubAPI, job: Job) -> None:
        """👀, the status comment and the commit (the default branch's head at command time, or
        the PR's head) now; the run itself waits for a free run worker."""
        request = run_request(job.request)
        record = lambda **fields: self.store.update_request(job.id, **fields)  # noqa: E731
        acknowledge(request, api, self._options(job), record=record)
        try:
            commit, base_branch, fork, _ = resolve_base(api, request)
            record(commit=commit, base_branch=base_branch, fork=fork)
        except GitHubError as e:  # the run worker resolves it (and reports a failure) instead
            log.warning("job %s: could not resolve the commit yet: %s", job.id, e)
        if self.store.promote(job.id):
            pool = self.pool()
            if pool is not None:
                pool.notify(RUN_LANE)

    def _run(self, api: GitHubAPI, job: Job, cancel: threading.Event) -> None:
        if not self.store.activate(job.id):  # two commands raced past the check at intake
            return self._busy(api, job)
        if self.store.get(job.id).cancel_requested:
            cancel.set()
        token = self.auth.installation_token(job.installation_id)
        options = self._options(job, auth_header=basic_auth_header(token))
        outcome = execute_run(run_request(job.request), api, self.config, options, cancel=cancel,
                              record=lambda **fields: self.store.update_request(job.id, **fields))  # fmt: skip
        state = {"cancelled": "cancelled"}.get(outcome.kind, "done" if outcome.ok else "failed")
        self.store.finish(job.id, state, outcome.kind, outcome.message)

    def _report_interrupted(self, api: GitHubAPI, job: Job) -> None:
        request = run_request(job.request)
        body = report.status_body(request.run_id or f"job {job.id}", request.task,
                                  [report.OUTCOME_INTERRUPTED.format(prefix=self.settings.prefix)],
                                  final=True)  # fmt: skip
        if request.status_comment_id:
            api.edit_comment(job.repo, request.status_comment_id, body)
        else:
            api.create_comment(job.repo, job.number, body)
        if request.comment_id:
            api.add_reaction(
                job.repo, request.comment_id, report.REACTION_FAILED, review=request.review_comment
            )
        self.store.finish(job.id, "failed", "interrupted", report.OUTCOME_INTERRUPTED)
