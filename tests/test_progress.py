"""Live progress: plain lines in a log, a tree-ordered table on a terminal."""

from __future__ import annotations

import io

from rich.console import Console

from bot.progress import Progress

EVENTS = [
    {"type": "agent_started", "agent": "root", "depth": 0, "task": "Fix it"},
    {"type": "agent_started", "agent": "root.1", "depth": 1, "task": "Look at a"},
    {"type": "agent_started", "agent": "root.2", "depth": 1, "task": "Look at b"},
    {"type": "agent_started", "agent": "root.1.1", "depth": 2, "task": "Deeper"},
    {"type": "llm_call", "agent": "root.1.1", "iteration": 3, "usage": {"cost_usd": 0.25}},
    {"type": "agent_finished", "agent": "root.1.1", "status": "completed", "error": None},
    {
        "type": "agent_finished",
        "agent": "root.2",
        "status": "timeout",
        "error": "the global timeout was reached",
    },
]


def test_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    progress = Progress(Console(file=out, force_terminal=False, width=200), "t")
    with progress:
        for event in EVENTS:
            progress.on_event(event)
    lines = out.getvalue().splitlines()
    assert lines[0] == "▶ root started: Fix it"
    assert "    ▶ root.1.1 started: Deeper" in lines
    assert "    ✅ root.1.1 completed after 3 iterations" in lines
    assert "  ⏱️ root.2 timeout after 0 iterations — the global timeout was reached" in lines


def test_table_is_in_tree_order_with_costs():
    progress = Progress(Console(file=io.StringIO(), force_terminal=False, width=200), "run")
    for event in EVENTS:
        progress.on_event(event)
    table = progress._render()
    ids = [cell.plain.strip() for cell in table.columns[0]._cells]
    assert ids == ["root", "root.1", "root.1.1", "root.2"]
    assert "4 agents, 2 running" in str(table.title) and "$0.2500" in str(table.title)


def test_the_live_title_shows_the_spend_against_the_cost_cap():
    progress = Progress(Console(file=io.StringIO(), force_terminal=False, width=200), "run")
    started = {"type": "rollout_started", "config": {"rlm": {"max_cost_usd": 2.5}}}
    for event in [started, *EVENTS]:
        progress.on_event(event)
    assert "$0.2500 of $2.50" in str(progress._render().title)
