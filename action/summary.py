"""The step summary: what was asked, how it ended, and the agent tree (bot.rlm.trace's summary)."""

from __future__ import annotations

from bot.rlm import summary_markdown

from . import messages as m


def _quote(task: str) -> str:
    lines = task.strip().splitlines() or [""]
    return "\n".join("> " + line for line in lines[:20])


def run_summary(task: str, run_id: str, message: str, results: dict) -> str:
    parts = [m.SUMMARY_HEADER, "", _quote(task), "", m.SUMMARY_OUTCOME.format(outcome=message), ""]
    if results.get("report"):
        parts += [m.SUMMARY_REPORT, "", results["report"].strip(), ""]
    if results.get("agents"):
        parts += [summary_markdown(results), ""]
    parts.append(m.SUMMARY_ARTIFACT.format(run_id=run_id))
    return "\n".join(parts)


def stopped_summary(reason: str) -> str:
    return "\n".join([m.SUMMARY_HEADER, "", m.SUMMARY_NOTHING_RAN.format(reason=reason)])
