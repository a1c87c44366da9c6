"""The App's job handler: what a worker does with one job. Authenticate as the installation, check
who asked, then reply (help, status, cancel, not allowed, busy), accept a run (👀, the status comment,
the commit: once), or run an accepted request through the pipeline with the status comment and the
job store as its reporters and a pull request as its delivery. Dispatch is on `JobKind`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from bot import pipeline
from bot.github import messages
from bot.github.api import GitHubAPI, GitHubError
from bot.github.auth import AppAuth, basic_auth_header
from bot.github.checks import CheckRunReporter
from bot.github.commands import help_text
from bot.github.deliver import DeliveryOptions, GitHubDeliverer
from bot.github.permissions import may_run, not_allowed
from bot.github.repo_config import REPO_CONFIG_PATH, RepoConfigStage, RepoPolicy
from bot.github.reporter import StatusReporter
from bot.github.request_context import RequestContextStage
from bot.github.triggers import STARTED_BY_ASSIGN, STARTED_BY_LABEL, TriggerKind, bot_login, parse_triggers
from bot.jobs import CONTROL_LANE, RUN_LANE, DuplicateDelivery, Job, JobState, JobStore, NewJob, WorkerPool
from bot.pipeline import NullReporter, OutcomeKind, Reporters, RunOutcome, RunRequest, RunSettings
from bot.rlm import Config

from .kinds import JobKind, busy_instead, request_of
from .settings import WorkerSettings

log = logging.getLogger(__name__)


def job_state(kind: OutcomeKind) -> JobState:
    """The job's final state for a run's outcome."""
    if kind is OutcomeKind.CANCELLED:
        return JobState.CANCELLED
    return JobState.DONE if kind.ok else JobState.FAILED


class StoreReporter(NullReporter):
    """Keeps the job's payload (the request, verbatim) in step with the run."""

    def __init__(self, store: JobStore, job_id: int):
        self.store, self.job_id = store, job_id

    def request_changed(self, request: RunRequest) -> None:
        self.store.update_request(self.job_id, **request.to_payload())


class AppJobHandler:
    """The WorkerPool's handler for App jobs."""

    def __init__(
        self,
        auth: AppAuth,
        config: Config,
        store: JobStore,
        settings: WorkerSettings,
        pool: Callable[[], WorkerPool | None] = lambda: None,
    ):
        self.auth = auth
        self.config = config
        self.store = store
        self.settings = settings
        self.pool = pool
        self._local = threading.local()
        self._slug: str | None = None

    def __call__(self, job: Job, cancel: threading.Event) -> None:
        try:
            self._handle(self._api(job.installation_id), job, cancel)
        except GitHubError as e:
            log.warning("job %s (%s) on %s#%s: %s", job.id, job.kind, job.repo, job.number, e)
            self._finish(job, JobState.FAILED, OutcomeKind.DELIVERY_ERROR.value, str(e))

    def _api(self, installation_id: int) -> GitHubAPI:
        """One client per worker thread and installation, so its HTTP connection is reused (its
        token renews itself)."""
        apis = self._local.__dict__.setdefault("apis", {})
        if installation_id not in apis:
            apis[installation_id] = self.auth.installation_api(installation_id, **self.settings.api_options)
        return apis[installation_id]

    def _finish(self, job: Job, state: JobState, outcome: str, message: str) -> None:
        """End the job, unless its lease passed to another worker while this one ran it."""
        if not self.store.finish(job.id, state, outcome, message, owner=job.lease_owner):
            log.warning("job %s: not ended as %s here; another worker holds it now", job.id, outcome)

    def _reply(self, api: GitHubAPI, job: Job, body: str, outcome: str) -> None:
        api.create_comment(job.repo, job.number, body)
        self._finish(job, JobState.DONE, outcome, body)

    def _handle(self, api: GitHubAPI, job: Job, cancel: threading.Event) -> None:
        prefix, kind = self.settings.prefix, JobKind(job.kind)
        if kind is JobKind.INTERRUPTED:
            return self._report_interrupted(api, job)
        if kind is JobKind.RUN and job.lane is RUN_LANE:
            return self._run(api, job, cancel)  # accepted earlier in the control lane
        if kind is JobKind.TRIGGER:
            return self._trigger(api, job)
        requester = request_of(job).requester
        if not may_run(api, job.repo, requester):
            return self._reply(api, job, not_allowed(requester, prefix), "not_allowed")
        if kind in (JobKind.HELP, JobKind.INVALID):
            lead = f"{messages.INVALID_COMMAND}\n\n" if kind is JobKind.INVALID else ""
            return self._reply(api, job, lead + help_text(prefix), kind.value)
        replies = {
            JobKind.STATUS: self._status,
            JobKind.CANCEL: self._cancel,
            JobKind.BUSY: self._busy,
            JobKind.RUN: self._accept,
        }
        return replies[kind](api, job)

    def _bot_login(self) -> str:
        """The App's bot user (what an issue is assigned to), asked of GitHub once."""
        if self._slug is None:
            self._slug = str(self.auth.app_api().request("GET", "/app")["slug"])
        return bot_login(self._slug)

    def _trigger(self, api: GitHubAPI, job: Job) -> None:
        """A label or an assignment: a run when `.github/rlm.yml` `triggers:` says so and the
        sender has write access; else nothing (a person without access is told)."""
        request = request_of(job)
        trigger = dict(request.extra)
        kind, value = TriggerKind(trigger.pop("trigger")), str(trigger.pop("trigger_value"))
        default_branch = api.get_repo(job.repo).get("default_branch") or "main"
        triggers, _ = parse_triggers(api.get_file(job.repo, REPO_CONFIG_PATH, default_branch))
        bot = self._bot_login() if kind is TriggerKind.ASSIGN and triggers.assign else None
        if not triggers.starts(kind, value, bot):
            return self._finish(job, JobState.DONE, "ignored", messages.TRIGGER_NOT_CONFIGURED)
        if not may_run(api, job.repo, request.requester):
            return self._reply(api, job, not_allowed(request.requester, self.settings.prefix), "not_allowed")
        how = STARTED_BY_LABEL if kind is TriggerKind.LABEL else STARTED_BY_ASSIGN
        started_by = how.format(sender=request.requester, label=value, bot=value)
        run_request = dataclasses.replace(
            request, extra=trigger, default_branch=default_branch, started_by=started_by
        )
        run = NewJob(
            kind=JobKind.RUN,
            repo=job.repo,
            number=job.number,
            request=run_request.to_payload(),
            installation_id=job.installation_id,
        )
        try:  # keyed by the trigger's delivery: a trigger job done twice starts one run
            self.store.record_delivery(
                f"{job.delivery_id}/run", "trigger", run, decision="queued", if_run_active=busy_instead
            )
        except DuplicateDelivery:
            pass
        pool = self.pool()
        if pool is not None:
            pool.notify(CONTROL_LANE)
        self._finish(job, JobState.DONE, "triggered", started_by)

    def _status(self, api: GitHubAPI, job: Job) -> None:
        active = self.store.active_run(job.repo, job.number)
        if active is None:
            return self._reply(
                api, job, messages.NOTHING_RUNNING.format(prefix=self.settings.prefix), "status"
            )
        progress, running = "", request_of(active)
        if running.status_comment_id and running.html_url:
            progress = f"Live progress: {running.html_url}#issuecomment-{running.status_comment_id}"
        body = messages.STATUS_REPLY.format(
            run_id=running.run_id or f"job {active.id}", state=active.state, progress=progress
        ).strip()
        self._reply(api, job, body, "status")

    def _cancel(self, api: GitHubAPI, job: Job) -> None:
        active = self.store.active_run(job.repo, job.number)
        if active is None:
            return self._reply(api, job, messages.NOTHING_TO_CANCEL, "cancel")
        request = request_of(active)
        label = request.run_id or f"job {active.id}"
        body = messages.CANCEL_REQUESTED.format(run_id=label)
        message = messages.OUTCOME_CANCELLED.format(prefix=self.settings.prefix)
        if self.store.cancel_queued(active.id, message):  # no worker will end its status comment: do it here
            status, _ = self._reporter(api, active, request)
            status.finished(RunOutcome(label, OutcomeKind.CANCELLED, message))
        else:
            self.store.request_cancel(active.id)
            pool = self.pool()
            if pool is not None:
                pool.cancel(active.id)
        self._reply(api, job, body, "cancel")

    def _busy(self, api: GitHubAPI, job: Job) -> None:
        active = self.store.active_run(job.repo, job.number)
        label = (request_of(active).run_id if active else None) or "another run"
        self._reply(api, job, messages.BUSY.format(run_id=label, prefix=self.settings.prefix), "busy")

    def _trace_url(self, job: Job) -> str | None:
        if self.settings.public_url and job.trace_token:
            return f"{self.settings.public_url.rstrip('/')}/runs/{job.trace_token}/"
        return None

    def _reporter(self, api: GitHubAPI, job: Job, request: RunRequest) -> tuple[StatusReporter, Reporters]:
        store = StoreReporter(self.store, job.id)
        status = StatusReporter(
            api,
            request,
            prefix=self.settings.prefix,
            trace_url=self._trace_url(job),
            interval=self.settings.status_interval,
            on_change=store.request_changed,
        )
        return status, Reporters(store, status)

    def _check(
        self, api: GitHubAPI, job: Job, request: RunRequest, status: StatusReporter
    ) -> CheckRunReporter:
        """The run's check run. It goes before the status comment among the reporters: a 403 it
        meets is a note the status comment then shows."""
        return CheckRunReporter(
            api,
            request,
            details_url=self._trace_url(job),
            interval=self.settings.status_interval,
            on_off=status.note,
            on_change=StoreReporter(self.store, job.id).request_changed,
        )

    def _deliverer(self, api: GitHubAPI, job: Job) -> GitHubDeliverer:
        s, trace_url = self.settings, self._trace_url(job)
        options = DeliveryOptions(
            draft=s.draft,
            can_push_workflows=s.can_push_workflows,
            trace_url=trace_url,
            patch_url=f"{trace_url}patch" if trace_url else None,
        )
        return GitHubDeliverer(api, options, on_pushed=StoreReporter(self.store, job.id).request_changed)

    def _accept(self, api: GitHubAPI, job: Job) -> None:
        """👀, the status comment and the commit (the default branch's head at command time, or
        the PR's head) now, once; the run itself waits for a free run worker."""
        request = request_of(job)
        _, reporter = self._reporter(api, job, request)
        pipeline.accept(request, reporter)
        try:
            pipeline.resolve(request, reporter, self._deliverer(api, job))
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
        s = self.settings
        request = request_of(job)
        status, reporter = self._reporter(api, job, request)
        reporter = Reporters(
            reporter.reporters[0], self._check(api, job, request, status), *reporter.reporters[1:]
        )
        try:
            token = api.auth_token()  # renewed here if the run waited long in the queue
        except GitHubError as e:  # the status comment says so; it must not stay at "queued"
            message = messages.OUTCOME_GITHUB_ERROR.format(error=e)
            status.finished(
                RunOutcome(request.run_id or f"job {job.id}", OutcomeKind.DELIVERY_ERROR, message)
            )
            return self._finish(job, JobState.FAILED, OutcomeKind.DELIVERY_ERROR.value, message)
        trace_url = self._trace_url(job)
        deliverer = self._deliverer(api, job)
        stages = [
            RepoConfigStage(api, self.repo_policy(), on_prefs=deliverer.use_prefs),
            RequestContextStage(api),
        ]
        settings = RunSettings(
            config=self.config,
            words=messages.GITHUB_WORDS.with_prefix(s.prefix),
            results_dir=s.results_dir,
            auth_header=basic_auth_header(token),
            api_key=s.api_key,
            daytona_api_key=s.daytona_api_key,
            before_fetch=stages,
            patch_link=lambda path: _patch_link(path, trace_url),
        )
        outcome = pipeline.run(request, reporter, deliverer, cancel, settings=settings)
        self._finish(job, job_state(outcome.kind), outcome.kind.value, outcome.message)

    def repo_policy(self) -> RepoPolicy:
        s = self.settings
        return RepoPolicy(frozenset(s.allowed_models), s.repo_setup, s.cost_cap)

    def _report_interrupted(self, api: GitHubAPI, job: Job) -> None:
        """A run that could not be resumed: its status ends with the reason, 😕 replaces 👀, and a
        patch it had saved is named."""
        request = request_of(job)
        status, _ = self._reporter(api, job, request)
        status.status.run_id = request.run_id or f"job {job.id}"
        status.status.notes.clear()
        message = messages.OUTCOME_INTERRUPTED.format(prefix=self.settings.prefix)
        saved = pipeline.patch_path(self.settings.results_dir, request.run_id) if request.run_id else None
        if saved is not None and saved.is_file():
            message += " " + messages.PATCH_SAVED.format(where=_patch_link(saved, self._trace_url(job)))
        outcome = RunOutcome(status.status.run_id, OutcomeKind.ERROR, message)
        if request.check_run_id is not None:  # its check run ends too, not left in progress
            self._check(api, job, request, status).finished(outcome)
        status.finished(outcome)
        self._finish(job, JobState.FAILED, JobKind.INTERRUPTED.value, message)


def _patch_link(path: Path, trace_url: str | None) -> str:
    """Where people can get a saved patch: the trace page's link, or its name on the server."""
    if trace_url:
        return messages.PATCH_LINK.format(name=path.name, url=f"{trace_url}patch")
    return messages.PATCH_ON_SERVER.format(name=path.name)
