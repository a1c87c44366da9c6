"""Who hears how a run goes: the `Reporter` seam, the phases it hears, and two helpers
(`NullReporter` to subclass, `Reporters` to fan out). Each front end implements one and words what
it shows for itself; the pipeline knows nothing else of them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from bot.common.enums import StrEnum

if TYPE_CHECKING:
    from .outcome import RunOutcome
    from .request import RunRequest


class Phase(StrEnum):
    """Where a run is. Additive: new phases may appear; reporters ignore the ones they do not know."""

    PREPARING = "preparing"  # fetching the repository at the commit
    RUNNING = "running"
    DELIVERING = "delivering"


class Reporter(Protocol):
    """Hears a run: the App's status comment and job store, the Action's log and summary, the
    CLI's progress. Methods are called from the run's thread except `event` (rollout threads)."""

    def acknowledge(self, request: RunRequest) -> None:
        """Tell the requester the run is accepted (👀, a queued status). Must be idempotent: the
        request's ids say what was already posted. Failures are the reporter's to retry and report."""

    def request_changed(self, request: RunRequest) -> None:
        """The request's progress fields changed (run id, commit, comment ids, pushed branch)."""

    def phase(self, phase: Phase, detail: str = "") -> None:
        """The run entered `phase` (detail: e.g. the commit being fetched)."""

    def note(self, text: str) -> None:
        """A sentence for the requester that stays until the end (a warning, a skipped file)."""

    def event(self, event: dict[str, Any]) -> None:
        """One engine trace event (agent started, LLM call, ...), as written to the events file.
        Interpret it through the one fold (`bot.rlm.fold`, `EventKind`), never by its raw name."""

    def finished(self, outcome: RunOutcome) -> None:
        """The run's final word. Called exactly once, whatever happened."""


class NullReporter:
    """A Reporter that ignores everything; subclass it and override what you need."""

    def acknowledge(self, request: RunRequest) -> None:
        pass

    def request_changed(self, request: RunRequest) -> None:
        pass

    def phase(self, phase: Phase, detail: str = "") -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def event(self, event: dict[str, Any]) -> None:
        pass

    def finished(self, outcome: RunOutcome) -> None:
        pass


class Reporters(NullReporter):
    """Several reporters heard as one, in order (e.g. the status comment and the job store)."""

    def __init__(self, *reporters: Reporter):
        self.reporters = reporters

    def acknowledge(self, request: RunRequest) -> None:
        for r in self.reporters:
            r.acknowledge(request)

    def request_changed(self, request: RunRequest) -> None:
        for r in self.reporters:
            r.request_changed(request)

    def phase(self, phase: Phase, detail: str = "") -> None:
        for r in self.reporters:
            r.phase(phase, detail)

    def note(self, text: str) -> None:
        for r in self.reporters:
            r.note(text)

    def event(self, event: dict[str, Any]) -> None:
        for r in self.reporters:
            r.event(event)

    def finished(self, outcome: RunOutcome) -> None:
        for r in self.reporters:
            r.finished(outcome)
