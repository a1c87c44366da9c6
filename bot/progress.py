"""Live progress of a rollout on stderr: the agent tree with status, depth, iterations, elapsed, cost.

On a terminal it is a rich Live table redrawn a few times a second; elsewhere (CI logs, pipes)
one plain line per agent start and finish. What it shows is the engine's own fold of the events
(bot/rlm/fold.py), the same results the trace and the viewer show.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .rlm import (
    STATUS_ICONS,
    EventKind,
    SetupStatus,
    Status,
    agent_of,
    fmt_cost,
    fmt_duration,
    fmt_spend_of_cap,
    fold,
    new_results,
)

STATUS_STYLES = {
    Status.RUNNING: "yellow",
    Status.COMPLETED: "green",
    Status.BUDGET: "magenta",
    Status.TIMEOUT: "magenta",
    Status.CANCELLED: "dim",
    Status.ERROR: "red",
}
MAX_ROWS = 40


def _kind(event: dict) -> EventKind | None:
    """The event's kind; None for a kind this version does not know (the fold ignores it too)."""
    try:
        return EventKind(event.get("type"))
    except ValueError:
        return None


class Progress:
    def __init__(self, console: Console, title: str):
        self.console = console
        self.title = title
        self.live_mode = console.is_terminal
        self._lock = threading.Lock()
        self.results = new_results("")
        self._started = time.monotonic()
        self._live: Live | None = None

    def __enter__(self) -> Progress:
        if self.live_mode:
            self._live = Live(
                self._render(),
                console=self.console,
                refresh_per_second=4,
                transient=False,
                get_renderable=self._render,
            )
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def on_event(self, event: dict) -> None:
        kind = _kind(event)
        if kind in (EventKind.SETUP_STARTED, EventKind.SETUP_FINISHED):
            self._on_setup(kind, event)
        with self._lock:
            fold(self.results, event)
        if not self.live_mode:
            self._plain(kind, event)

    def _on_setup(self, kind: EventKind, event: dict) -> None:
        if kind is EventKind.SETUP_STARTED:
            n = len(event.get("commands") or [])
            line = f"🧰 setting up the environment ({n} command{'s' if n != 1 else ''}) …"
        elif event.get("status") == SetupStatus.OK:
            how = "cached" if event.get("cached") else "built"
            line = f"🧰 environment ready ({how}) in {fmt_duration(event.get('duration'))}"
        else:
            line = f"🧰 environment setup {event.get('status')} after {fmt_duration(event.get('duration'))}"
        self.console.print(line, highlight=False, markup=False)

    def _plain(self, kind: EventKind | None, event: dict) -> None:
        if kind not in (EventKind.AGENT_STARTED, EventKind.AGENT_FINISHED):
            return
        with self._lock:
            agent = dict(agent_of(self.results, event.get("agent")) or {})
        indent = "  " * agent.get("depth", 0)
        if kind is EventKind.AGENT_STARTED:
            self.console.print(
                f"{indent}▶ {event['agent']} started: {_short(agent.get('task', ''))}",
                highlight=False,
                markup=False,
            )
        else:
            status = agent.get("status")
            extra = f" — {agent.get('error')}" if agent.get("error") else ""
            self.console.print(
                f"{indent}{STATUS_ICONS.get(status, '•')} {event['agent']} {status} after "
                f"{len(agent.get('iterations', []))} iterations{extra}",
                highlight=False,
                markup=False,
            )

    def _render(self) -> Table:
        with self._lock:
            agents = sorted((_row(a) for a in self.results["agents"]), key=_tree_order)
            spend = fmt_spend_of_cap(self.results)
        running = sum(1 for a in agents if a["status"] == Status.RUNNING)
        elapsed = fmt_duration(time.monotonic() - self._started)
        table = Table(
            title=f"{self.title} — {len(agents)} agents, {running} running, {elapsed}, {spend}",
            title_justify="left",
            expand=False,
            box=None,
            padding=(0, 1),
        )
        for column in ("agent", "status", "depth", "iter", "elapsed", "cost", "task"):
            table.add_column(
                column, no_wrap=True, overflow="ellipsis", max_width=60 if column == "task" else None
            )
        shown = (
            agents
            if len(agents) <= MAX_ROWS
            else [a for a in agents if a["status"] == Status.RUNNING][:MAX_ROWS]
        )
        for a in shown:
            style = STATUS_STYLES.get(a["status"], "")
            table.add_row(
                Text("  " * a["depth"] + a["id"]),
                Text(f"{STATUS_ICONS.get(a['status'], '•')} {a['status']}", style=style),
                str(a["depth"]),
                str(a["iterations"]),
                fmt_duration(a["elapsed"]),
                fmt_cost(a["cost"]),
                Text(_short(a["task"])),
            )
        if len(shown) < len(agents):
            table.add_row(Text(f"… {len(agents) - len(shown)} more", style="dim"), "", "", "", "", "", "")
        return table


def _row(agent: dict) -> dict[str, Any]:
    """What the table shows of one folded agent."""
    elapsed = agent.get("duration")
    if elapsed is None:
        elapsed = time.time() - agent["_t0"] if agent.get("_t0") else 0.0
    return {
        "id": agent["id"],
        "depth": agent.get("depth", 0),
        "task": agent.get("task") or "",
        "status": agent.get("status") or Status.RUNNING,
        "iterations": len(agent.get("iterations", [])),
        "elapsed": elapsed,
        "cost": (agent.get("usage") or {}).get("cost_usd", 0.0),
    }


def _tree_order(agent: dict) -> list[int]:
    """root, root.1, root.1.1, root.1.2, root.2, …: children right under their parent."""
    return [int(part) if part.isdigit() else -1 for part in agent["id"].split(".")]


def _short(text: str, limit: int = 70) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
