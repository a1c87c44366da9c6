"""The live status comment: created once, edited as the run goes, at a rate GitHub tolerates.

Engine events arrive on the rollout's threads; they only update an in-memory summary. One
background thread edits the comment at most once per `interval` seconds, and only when the text
changed, so a busy tree never turns into a burst of API writes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from bot.rlm import fold, new_results

from . import messages
from .api import GitHubAPI, GitHubError

log = logging.getLogger(__name__)


class StatusComment:
    """One status comment on an issue or PR; `show` creates it the first time, then edits it."""

    def __init__(
        self,
        api: GitHubAPI,
        repo: str,
        number: int,
        run_id: str,
        task: str,
        *,
        prefix: str = "/rlm",
        trace_url: str | None = None,
        comment_id: int | None = None,
        on_created: Callable[[int], None] | None = None,
    ):
        self.api, self.repo, self.number = api, repo, number
        self.run_id, self.task, self.prefix, self.trace_url = run_id, task, prefix, trace_url
        self.comment_id = comment_id
        self.on_created = on_created
        self.notes: list[str] = []
        self._last: str | None = None
        self._lock = threading.Lock()

    def render(self, lines: list[str], final: bool = False) -> str:
        body = messages.status_body(
            self.run_id,
            self.task,
            [*self.notes, *lines],
            prefix=self.prefix,
            trace_url=self.trace_url,
            final=final,
        )
        return messages.cut(body, self.trace_url)

    def show(self, *lines: str, final: bool = False) -> None:
        body = self.render(list(lines), final=final)
        with self._lock:
            if body == self._last:
                return
            if self.comment_id is None:
                self.comment_id = self.api.create_comment(self.repo, self.number, body)
                if self.on_created:
                    self.on_created(self.comment_id)
            else:
                self.api.edit_comment(self.repo, self.comment_id, body)
            self._last = body


class LiveStatus:
    """Folds engine events into a summary and edits the status comment every `interval` seconds."""

    def __init__(self, status: StatusComment, interval: float, *, clock: Callable[[], float] = time.time):
        self.status = status
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self.results = new_results(status.run_id)
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"status-{status.run_id}", daemon=True)

    def on_event(self, event: dict) -> None:
        with self._lock:
            fold(self.results, event)
        self._changed.set()

    def line(self) -> str | None:
        """The progress lines (messages.progress_line); None while nothing is worth an edit."""
        with self._lock:
            return messages.progress_line(self.results, self.started, self.clock())

    def start(self) -> LiveStatus:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._changed.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._changed.wait()
            if self._stop.is_set():
                return
            self._changed.clear()
            line = self.line()
            if line is None:
                continue
            try:
                self.status.show(line)
            except GitHubError as e:  # the run goes on; the final edit will try again
                log.warning("could not update the status comment: %s", e)
            self._stop.wait(self.interval)
