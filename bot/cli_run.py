"""`rlm run` and `rlm demo` as an adapter of the pipeline: progress on stderr, the patch to a file
or stdout. Exit codes are documented in bot/cli.py."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

from rich.console import Console

from .pipeline import (
    NullReporter,
    OutcomeKind,
    OutcomeWords,
    Phase,
    RunOutcome,
    RunRequest,
    RunSettings,
    RunState,
    Target,
)
from .progress import Progress
from .rlm import Config, Status

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130  # documented in bot/cli.py

# How the CLI (and `rlm eval`) words the outcomes the pipeline decides itself: plain terminal text.
CLI_WORDS = OutcomeWords()  # the neutral defaults are the CLI's
PATCH_WRITTEN = "patch: {files} file(s), +{additions} -{deletions} → {where}"
PATCH_NONE = "patch: no changes"
REPORT_WRITTEN = "report: {path}"
REPORT_NONE = "report: the root agent wrote no report ({path} is empty)"
CONTEXT_FILE_LIMIT = 2_000_000  # characters
CONTEXT_FILE_UNREADABLE = "cannot read the context file {path}: {reason}."
CONTEXT_FILE_TOO_LARGE = (
    "the context file {path} has {size:,} characters, more than the {limit:,} allowed; pass a shorter one."
)
PATCH_NOT_WRITTEN = "patch: could not be written to {path} ({reason}); choose a writable file with -o."
# A change the cost cap cut short (the CLI's words; the other outcomes are the pipeline's OutcomeWords).
PARTIAL = (
    "partial: the cost cap of ${cap:.2f} stopped the run (${spent:.4f} spent); the patch holds the "
    "changes made until then."
)
JSON_STATUS = {2: "usage_error", 130: "interrupted"}


class CliReporter(NullReporter):
    """Fetching line, the commit line, then the live agent tree (unless quiet)."""

    def __init__(self, console: Console, title: str, config_line: str, quiet: bool = False):
        self.console, self.config_line, self.quiet = console, config_line, quiet
        self.progress = Progress(console, title)
        self.last_phase: Phase | None = None
        self._commit = ""
        self._live = False

    def phase(self, phase: Phase, detail: str = "") -> None:
        self.last_phase = phase
        if phase is Phase.RUNNING:
            self.console.print(self.config_line.format(commit=self._commit), markup=False)
            self.progress.__enter__()
            self._live = True
        elif self._live:
            self.close()

    def request_changed(self, request: RunRequest) -> None:
        self._commit = (request.commit or "")[:12]

    def event(self, event: dict[str, Any]) -> None:
        if not self.quiet:
            self.progress.on_event(event)

    def finished(self, outcome: RunOutcome) -> None:
        self.close()

    def close(self) -> None:
        if self._live:
            self._live = False
            self.progress.__exit__(None, None, None)


class PatchOutput:
    """The CLI's delivery: the patch to `-o FILE`, else to stdout (unless stdout carries the JSON
    summary: then the patch stays in `<run_id>.patch` beside the results)."""

    def __init__(self, output: Path | None, to_stdout: bool = True):
        self.output, self.to_stdout = output, to_stdout

    def target(self, request: RunRequest) -> Target:
        return Target(request.commit, request.branch)  # resolved by the fetch

    def deliver(self, state: RunState) -> RunOutcome:
        assert state.result is not None
        patch = state.result.patch
        where = str(self.output) if self.output else "stdout"
        if self.output is not None:
            try:
                self.output.write_text(patch, encoding="utf-8", errors="surrogateescape")
            except OSError as e:  # the pipeline adds where the saved copy is
                reason = e.strerror or type(e).__name__
                message = PATCH_NOT_WRITTEN.format(path=self.output, reason=reason)
                return RunOutcome(state.run_id, OutcomeKind.ERROR, message, error=message)
        elif self.to_stdout:
            sys.stdout.write(patch)
            sys.stdout.flush()
        else:
            where = str(state.patch_path)
        stats = state.result.results.get("patch") or {}
        message = PATCH_WRITTEN.format(
            files=stats.get("files", "?"),
            additions=stats.get("additions", 0),
            deletions=stats.get("deletions", 0),
            where=where,
        )
        return RunOutcome(state.run_id, OutcomeKind.PATCH, message)


def run_cli(
    settings: RunSettings,
    request: RunRequest,
    reporter: CliReporter,
    output: Path | None,
    cancel: threading.Event,
    patch_to_stdout: bool = True,
) -> RunOutcome:
    from . import pipeline

    try:
        return pipeline.run(
            request, reporter, PatchOutput(output, patch_to_stdout), cancel, settings=settings
        )
    finally:
        reporter.close()


def read_context_file(path: Path) -> str:
    """The `--context-file`'s text (markdown, any size up to CONTEXT_FILE_LIMIT); raises ValueError
    with a sentence for the user."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise ValueError(CONTEXT_FILE_UNREADABLE.format(path=path, reason=e.strerror or e)) from None
    if len(text) > CONTEXT_FILE_LIMIT:
        raise ValueError(CONTEXT_FILE_TOO_LARGE.format(path=path, size=len(text), limit=CONTEXT_FILE_LIMIT))
    return text


def write_report(path: Path, report: str | None) -> str:
    """`--report FILE`: the root's REPORT (an empty file when it made none); returns the line for stderr."""
    path.write_text((report or "").rstrip("\n") + ("\n" if report else ""), encoding="utf-8")
    return REPORT_WRITTEN.format(path=path) if report else REPORT_NONE.format(path=path)


def outcome_lines(outcome: RunOutcome, config: Config) -> list[str]:
    """How the run ended and where the change is, in the CLI's words (stderr; joined, `message` in
    JSON): a partial change says so first."""
    lines = []
    if outcome.partial:
        spent = ((outcome.result.results if outcome.result else {}).get("totals") or {}).get("cost_usd", 0.0)
        lines.append(PARTIAL.format(cap=config.rlm.max_cost_usd or 0.0, spent=spent))
    lines.append(outcome.message)
    return lines


def json_failure(code: int, error: str | None) -> dict[str, Any]:
    """`--json` for a command that ended before (or without) a run's outcome: a usage error, an
    interruption, a failed fetch. Same keys as `json_summary`."""
    status = JSON_STATUS.get(code, "failed")
    message = error or (OutcomeWords().cancelled if code == EXIT_INTERRUPTED else None)
    return {
        "run_id": None,
        "status": status,
        "exit_code": code,
        "outcome": None,
        "message": message,
        "error": error,
        "answer": None,
        "report": None,
        "partial": False,
        "patch": {"files": 0, "additions": 0, "deletions": 0, "paths": [], "file": None},
        "results": None,
    }


def json_summary(outcome: RunOutcome, code: int, patch_file: Path | None, message: str) -> dict[str, Any]:
    """`--json`: what a script needs from the run, on stdout."""
    result = outcome.result
    stats = (result.results.get("patch") if result else None) or {}
    return {
        "run_id": outcome.run_id,
        "status": result.status if result else str(outcome.kind),
        "exit_code": code,
        "outcome": str(outcome.kind),
        "message": message,
        "error": (result.error if result else None) or outcome.error,
        "answer": result.answer if result else None,
        "report": result.report if result else None,
        "partial": outcome.partial,
        "patch": {
            "files": stats.get("files", 0),
            "additions": stats.get("additions", 0),
            "deletions": stats.get("deletions", 0),
            "paths": stats.get("paths", []),
            "file": str(patch_file) if patch_file and result and result.has_changes else None,
        },
        "results": str(result.results_path) if result and result.results_path else None,
    }


def exit_code(outcome: RunOutcome, interrupted: bool) -> int:
    if interrupted:
        return EXIT_INTERRUPTED
    result = outcome.result
    completed = (
        result is not None and result.status == Status.COMPLETED and outcome.kind is not OutcomeKind.ERROR
    )
    return EXIT_OK if completed else EXIT_FAILED
