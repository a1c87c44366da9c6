"""The step summary: what was asked, how it ended, and the agent tree (bot.rlm.trace's summary)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.rlm.trace import summary_markdown

from . import messages as m

if TYPE_CHECKING:
    from bot.github.run import RunOutcome


def _quote(task: str) -> str:
    lines = task.strip().splitlines() or [""]
    return "\n".join("> " + line for line in lines[:20])


def run_summary(task: str, outcome: RunOutcome, message: str) -> str:
    parts = [m.SUMMARY_HEADER, "", _quote(task), "", m.SUMMARY_OUTCOME.format(outcome=message), ""]
    if outcome.result is not None:
        parts += [summary_markdown(outcome.result.results), ""]
        parts.append(m.SUMMARY_ARTIFACT.format(run_id=outcome.run_id))
    return "\n".join(parts)


def stopped_summary(reason: str) -> str:
    return "\n".join([m.SUMMARY_HEADER, "", m.SUMMARY_NOTHING_RAN.format(reason=reason)])
