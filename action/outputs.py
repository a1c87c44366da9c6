"""The step's outputs (pr-url, patch-file, results-file, agents, cost, conclusion) and the patch file.

The results JSON is read from the run's directory, where the engine wrote it; the patch is
written there next to it, so the artifact holds both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import messages as m
from .token_permissions import missing_permission

if TYPE_CHECKING:
    from bot.pipeline import RunOutcome

OUTPUT_NAMES = ("pr-url", "patch-file", "results-file", "agents", "cost", "conclusion")

_BY_KIND = {
    "pr": m.PR_CREATED,
    "patch_comment": m.PATCH_IN_COMMENT,
    "patch": m.CHANGES,
    "no_changes": m.NO_CHANGES,
    "answer": m.ANSWERED,
    "review": m.REVIEWED,
    "only_workflows": m.NO_CHANGES,
    "timeout": m.TIMEOUT,
    "budget": m.BUDGET,
    "cancelled": m.CANCELLED,
    "error": m.FAILED,
}


@dataclass
class RunFiles:
    """What a run left in its directory: the results JSON (parsed) and the patch file."""

    results_file: Path | None = None
    results: dict = field(default_factory=dict)
    patch_file: Path | None = None

    @classmethod
    def collect(cls, directory: Path, outcome: RunOutcome) -> RunFiles:
        """The results JSON is read from disk, so it is found even when the outcome lost the
        result (a GitHub error after the rollout)."""
        files = cls()
        path = directory / f"{outcome.run_id}.json"
        try:
            files.results = json.loads(path.read_text(encoding="utf-8"))
            files.results_file = path
        except (OSError, ValueError):
            pass
        if outcome.patch_path is not None and outcome.patch_path.is_file():  # written by the pipeline
            files.patch_file = outcome.patch_path
        return files


def conclusion_for(outcome: RunOutcome, create_pr: bool, files: RunFiles) -> tuple[str, str]:
    """(conclusion, message) for a run that started."""
    if outcome.kind == "github_error":  # OutcomeKind.DELIVERY_ERROR (a StrEnum, like _BY_KIND's keys)
        refused = missing_permission(outcome.message)
        return (m.MISSING_PERMISSIONS, refused) if refused else (m.FAILED, outcome.message)
    conclusion = _BY_KIND.get(outcome.kind, m.FAILED)
    if conclusion == m.NO_CHANGES and not create_pr and files.patch_file is not None:
        conclusion = m.CHANGES
    if conclusion == m.CANCELLED:  # in a workflow, cancelling is the Actions UI, not a comment
        return conclusion, m.OUTCOME_RUN_CANCELLED
    return conclusion, outcome.message


def outputs(conclusion: str, pr_url: str | None = None, files: RunFiles | None = None) -> dict[str, str]:
    files = files or RunFiles()
    totals = files.results.get("totals") or {}
    return {
        "pr-url": pr_url or "",
        "patch-file": str(files.patch_file or ""),
        "results-file": str(files.results_file or ""),
        "agents": str(totals.get("agents", 0)),
        "cost": f"{float(totals.get('cost_usd', 0.0)):.6f}",
        "conclusion": conclusion,
    }
