"""Worker threads that run jobs from a store, in whichever process hosts them (`rlm serve` with
`--workers N`, or `rlm worker`).

Each pool is one lease owner. A heartbeat thread renews the leases of the jobs it runs, so another
process never takes them; learns from the database which of them someone asked to cancel (through
whichever replica received `/rlm cancel`) and sets their cancel events; stops a job whose lease it
lost; and queues again the jobs of workers that died (their leases expired).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable

from bot.common.logcontext import job_context

from .model import CONTROL_LANE, IN_FLIGHT, RUN_LANE, Job, JobLane, JobOutcome, JobState, JobStore, Requeue

log = logging.getLogger(__name__)

JOB_WITHOUT_RESULT = "the job ended without a result"

JobHandler = Callable[[Job, threading.Event], None]
JobObserver = Callable[[Job, float], None]  # (the job as it ended, seconds it took)


def new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class WorkerPool:
    """`workers` threads for run jobs plus `control_workers` for quick replies, in this process."""

    def __init__(
        self,
        store: JobStore,
        handler: JobHandler,
        *,
        workers: int = 2,
        control_workers: int = 1,
        poll: float = 1.0,
        heartbeat: float | None = None,
        requeue: Requeue | None = None,
        on_done: JobObserver | None = None,
    ):
        self.store = store
        self.handler = handler
        self.poll = poll
        self.owner = new_owner()
        self.requeue = requeue  # the App's choice for a dead worker's job (see JobStore.requeue_expired)
        self.heartbeat_every = heartbeat if heartbeat is not None else max(0.1, store.lease_seconds / 6)
        self.on_done = on_done
        self._wake = {RUN_LANE: threading.Condition(), CONTROL_LANE: threading.Condition()}
        self._stopping = threading.Event()
        self._cancels: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._loop, args=(lane,), name=f"rlm-{lane}-{i}", daemon=True)
            for lane, n in ((RUN_LANE, max(0, workers)), (CONTROL_LANE, max(0, control_workers)))
            for i in range(n)
        ]
        self._threads.append(threading.Thread(target=self._heartbeat_loop, name="rlm-heartbeat", daemon=True))

    def start(self) -> WorkerPool:
        self.requeue_expired()
        for t in self._threads:
            t.start()
        return self

    def notify(self, lane: JobLane | None = None) -> None:
        for name, cond in self._wake.items():
            if lane in (None, name):
                with cond:
                    cond.notify()

    def cancel(self, job_id: int) -> bool:
        """Stop a job this process is running; True when it was running here."""
        with self._lock:
            event = self._cancels.get(job_id)
        if event is None:
            return False
        event.set()
        return True

    def running(self) -> list[int]:
        with self._lock:
            return sorted(self._cancels)

    def stop(self, timeout: float = 10.0, cancel_running: bool = False) -> None:
        """Stop taking jobs. Running jobs are left to finish (or, if the process dies, to be taken
        over by another worker once their leases expire) unless `cancel_running`."""
        self._stopping.set()
        if cancel_running:
            with self._lock:
                for event in self._cancels.values():
                    event.set()
        self.notify()
        for t in self._threads:
            t.join(timeout=timeout)

    def stop_taking(self) -> None:
        """Claim no more jobs; the running ones go on."""
        self._stopping.set()
        self.notify()

    def hand_back(self) -> list[int]:
        """Stop taking jobs and give the running ones back: queued again at once for another
        worker (which resumes them), so this process can exit without waiting for them. The job
        threads are left running; the process is expected to exit now (its sandboxes die with it
        and are reaped at the next start)."""
        self._stopping.set()
        self.notify()
        try:
            return [job.id for job in self.store.release(self.owner, self.requeue)]
        except self.store.errors:  # their leases run out instead; another worker resumes them then
            log.exception("could not hand the running jobs back")
            return []

    # Leases --------------------------------------------------------------------------------

    def requeue_expired(self) -> None:
        try:
            for job in self.store.requeue_expired(self.requeue):
                with job_context(job):
                    log.warning(
                        "job %s (%s on %s#%s) lost its worker; queued again as %s in the %s lane",
                        job.id,
                        job.kind,
                        job.repo,
                        job.number,
                        job.kind,
                        job.lane,
                    )
        except self.store.errors:
            log.exception("could not look for jobs of workers that died")

    def beat(self) -> None:
        """One heartbeat: renew, deliver cancellations, stop jobs whose lease was lost."""
        with self._lock:
            mine = dict(self._cancels)
        try:
            beat = self.store.heartbeat(self.owner)
        except self.store.errors:
            log.exception("heartbeat failed; leases will be renewed at the next one")
            return
        for job_id in beat.cancel:
            if job_id in mine and not mine[job_id].is_set():
                log.info("job %s: cancellation requested", job_id)
                mine[job_id].set()
        for job_id, event in mine.items():
            if job_id not in beat.held and not event.is_set():
                job = self.store.get(job_id)
                if job is not None and job.state in IN_FLIGHT and job.lease_owner not in (None, self.owner):
                    log.error("job %s: its lease passed to another worker; stopping it here", job_id)
                    event.set()

    def _heartbeat_loop(self) -> None:
        last_requeue = 0.0
        while not self._stopping.wait(self.heartbeat_every):
            self.beat()
            if time.monotonic() - last_requeue >= self.heartbeat_every * 2:
                last_requeue = time.monotonic()
                self.requeue_expired()

    # Work ----------------------------------------------------------------------------------

    def _settle(self, job_id: int, lane: JobLane) -> Job | None:
        """A handler that returned (or raised) without finishing its job leaves it failed, not stuck."""
        try:
            current = self.store.get(job_id)
            handed_on = current is None or current.lane != lane  # an accepted run went to the run lane
            if not handed_on and current.state in IN_FLIGHT and current.lease_owner == self.owner:
                self.store.finish(job_id, JobState.FAILED, JobOutcome.INTERNAL_ERROR, JOB_WITHOUT_RESULT)
                current = self.store.get(job_id)
            return current
        except self.store.errors:
            log.exception("could not settle job %s", job_id)
            return None

    def _loop(self, lane: JobLane) -> None:
        cond = self._wake[lane]
        while not self._stopping.is_set():
            try:
                job = self.store.claim(lane, self.owner)
            except self.store.errors:
                log.exception("could not claim a job")
                job = None
            if job is None:
                with cond:
                    cond.wait(self.poll)
                continue
            self._run(job, lane)

    def _run(self, job: Job, lane: JobLane) -> None:
        cancel = threading.Event()
        if job.cancel_requested:
            cancel.set()
        with self._lock:
            self._cancels[job.id] = cancel
        started = time.monotonic()
        ended: Job | None = None
        with job_context(job):
            try:
                self.handler(job, cancel)
            except Exception:  # a bug in one job must not kill the worker
                log.exception("job %s (%s) failed unexpectedly", job.id, job.kind)
            finally:
                ended = self._settle(job.id, lane)
                with self._lock:
                    if self._cancels.get(job.id) is cancel:
                        del self._cancels[job.id]
            if self.on_done is not None and ended is not None:
                try:
                    self.on_done(ended, time.monotonic() - started)
                except Exception:  # metrics must never break a worker
                    log.exception("could not record job %s's metrics", job.id)
