"""The step's outputs (pr-url, patch-file, results-file, agents, cost, conclusion) and the patch file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from . import messages as m
from .token_permissions import missing_permission

if TYPE_CHECKING:
    from bot.github.run import RunOutcome

OUTPUT_NAMES = ("pr-url", "patch-file", "results-file", "agents", "cost", "conclusion")

_BY_KIND = {
    "pr": m.PR_CREATED,
    "patch_comment": m.PATCH_IN_COMMENT,
    "no_changes": m.NO_CHANGES,
    "only_workflows": m.NO_CHANGES,
    "timeout": m.TIMEOUT,
    "budget": m.BUDGET,
    "cancelled": m.CANCELLED,
    "error": m.FAILED,
}


def conclusion_for(outcome: RunOutcome, create_pr: bool) -> tuple[str, str]:
    """(conclusion, message) for a run that started."""
    if outcome.kind == "github_error":
        refused = missing_permission(outcome.message)
        return (m.MISSING_PERMISSIONS, refused) if refused else (m.FAILED, outcome.message)
    conclusion = _BY_KIND.get(outcome.kind, m.FAILED)
    if (
        conclusion == m.NO_CHANGES
        and not create_pr
        and outcome.result is not None
        and outcome.result.has_changes
    ):
        conclusion = m.CHANGES
    return conclusion, outcome.message


def write_patch(outcome: RunOutcome, directory: Path) -> Path | None:
    result = outcome.result
    if result is None or not result.has_changes:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{result.run_id}.patch"
    path.write_text(result.patch, encoding="utf-8", errors="surrogateescape")
    return path


def outputs(
    conclusion: str, outcome: RunOutcome | None = None, patch_file: Path | None = None
) -> dict[str, str]:
    result = outcome.result if outcome is not None else None
    totals = result.results.get("totals", {}) if result is not None else {}
    results_file = result.results_path if result is not None and result.results_path else None
    return {
        "pr-url": (outcome.pr_url if outcome is not None else None) or "",
        "patch-file": str(patch_file) if patch_file else "",
        "results-file": str(results_file) if results_file else "",
        "agents": str(totals.get("agents", 0)),
        "cost": f"{float(totals.get('cost_usd', 0.0)):.6f}",
        "conclusion": conclusion,
    }
