"""The evaluation's report: a table for the terminal, `report.json` and `report.md`."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from .runner import TaskOutcome, TaskResult

COLUMNS = ("task", "variant", "resolved", "agents", "iterations", "wall time", "tokens", "cost")
RESOLVED_MARK = {
    TaskOutcome.RESOLVED: "yes",
    TaskOutcome.UNRESOLVED: "no",
    TaskOutcome.INVALID: "INVALID TASK",
    TaskOutcome.JUDGE_ERROR: "JUDGE ERROR",
    TaskOutcome.RUN_ERROR: "RUN ERROR",
    TaskOutcome.CANCELLED: "cancelled",
}


def _row(r: TaskResult) -> tuple[str, ...]:
    return (
        r.task,
        r.variant,
        RESOLVED_MARK[r.status],
        str(r.agents),
        str(r.iterations),
        f"{r.seconds:.1f}s",
        f"{r.tokens:,}",
        f"${r.cost_usd:.4f}",
    )


def summary_rows(results: list[TaskResult]) -> list[tuple[str, ...]]:
    """One line per variant: resolved / judged, and the sums."""
    rows = []
    for variant in dict.fromkeys(r.variant for r in results):
        mine = [r for r in results if r.variant == variant]
        judged = [r for r in mine if r.status in (TaskOutcome.RESOLVED, TaskOutcome.UNRESOLVED)]
        rows.append(
            (
                "TOTAL",
                variant,
                f"{sum(r.resolved for r in mine)}/{len(judged)}",
                str(sum(r.agents for r in mine)),
                str(sum(r.iterations for r in mine)),
                f"{sum(r.seconds for r in mine):.1f}s",
                f"{sum(r.tokens for r in mine):,}",
                f"${sum(r.cost_usd for r in mine):.4f}",
            )
        )
    return rows


def text_table(results: list[TaskResult]) -> str:
    rows = [COLUMNS, *(_row(r) for r in results), *summary_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(len(results) + 2, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def notes(results: list[TaskResult]) -> list[str]:
    """One sentence per result that is not a plain verdict (invalid task, errors)."""
    out = []
    for r in results:
        if r.status in (
            TaskOutcome.INVALID,
            TaskOutcome.JUDGE_ERROR,
            TaskOutcome.RUN_ERROR,
            TaskOutcome.CANCELLED,
        ):
            out.append(f"{r.task} [{r.variant}]: {RESOLVED_MARK[r.status].lower()}: {r.message}")
        elif r.status is TaskOutcome.UNRESOLVED and r.message:
            out.append(f"{r.task} [{r.variant}]: not resolved: {r.message}")
    return out


def markdown(results: list[TaskResult], tasks_file: Path) -> str:
    head = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS)
    body = "\n".join("| " + " | ".join(_row(r)) + " |" for r in results)
    totals = "\n".join("| " + " | ".join(f"**{c}**" for c in row) + " |" for row in summary_rows(results))
    lines = [f"# rlm eval — {tasks_file.name}", "", head, body, totals, ""]
    extra = notes(results)
    if extra:
        lines += ["## Notes", "", *(f"- {n}" for n in extra), ""]
    lines += ["## Runs", ""]
    for r in results:
        lines.append(
            f"- **{r.task} [{r.variant}]**: {r.status} — run `{r.run_id}`"
            + (f", results `{r.results_path}`" if r.results_path else "")
            + (f", patch `{r.patch_path}`" if r.patch_path else "")
        )
    return "\n".join(lines) + "\n"


def write_reports(
    results: list[TaskResult], out_dir: Path, tasks_file: Path, meta: dict
) -> tuple[Path, Path]:
    """`report.json` (everything, per task) and `report.md` (the table and notes) in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = {
        "tasks_file": str(tasks_file),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **meta,
        "results": [r.as_dict() for r in results],
    }
    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    json_path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    md_path.write_text(markdown(results, tasks_file), encoding="utf-8")
    return json_path, md_path
