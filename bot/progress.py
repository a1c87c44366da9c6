"""Live progress of a rollout on stderr: the agent tree with status, depth, iterations, elapsed, cost.

On a terminal it is a rich Live table redrawn a few times a second; elsewhere (CI logs, pipes)
one plain line per agent start and finish.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .rlm.trace import STATUS_ICONS, fmt_cost, fmt_duration

STATUS_STYLES = {
    "running": "yellow",
    "completed": "green",
    "budget": "magenta",
    "timeout": "magenta",
    "cancelled": "dim",
    "error": "red",
}
MAX_ROWS = 40


class Progress:
    def __init__(self, console: Console, title: str):
        self.console = console
        self.title = title
        self.live_mode = console.is_terminal
        self._lock = threading.Lock()
        self._agents: dict[str, dict[str, Any]] = {}
        self._cost = 0.0
        self._started = time.monotonic()
        self._live: Live | None = None

    def __enter__(self) -> Progress:
        if self.live_mode:
            self._live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False,
                              get_renderable=self._render)  # fmt: skip
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def on_event(self, event: dict) -> None:
        kind = event.get("type")
        if kind in ("setup_started", "setup_finished"):
            self._on_setup(event)
            return
        with self._lock:
            if kind == "agent_started":
                self._agents[event["agent"]] = {
                    "id": event["agent"], "depth": event.get("depth", 0), "task": event.get("task", ""),
                    "status": "running", "iterations": 0, "t0": time.monotonic(), "t1": None, "cost": 0.0,
                }  # fmt: skip
            elif kind == "llm_call" and event.get("agent") in self._agents:
                agent = self._agents[event["agent"]]
                agent["iterations"] = event.get("iteration", agent["iterations"])
                cost = (event.get("usage") or {}).get("cost_usd", 0.0)
                agent["cost"] += cost
                self._cost += cost
            elif kind == "llm_query":
                self._cost += (event.get("usage") or {}).get("cost_usd", 0.0)
            elif kind == "agent_finished" and event.get("agent") in self._agents:
                agent = self._agents[event["agent"]]
                agent["status"], agent["t1"] = event.get("status"), time.monotonic()
                agent["error"] = event.get("error")
        if not self.live_mode:
            self._plain(event)

    def _on_setup(self, event: dict) -> None:
        if event["type"] == "setup_started":
            n = len(event.get("commands") or [])
            line = f"🧰 setting up the environment ({n} command{'s' if n != 1 else ''}) …"
        elif event.get("status") == "ok":
            how = "cached" if event.get("cached") else "built"
            line = f"🧰 environment ready ({how}) in {fmt_duration(event.get('duration'))}"
        else:
            line = f"🧰 environment setup {event.get('status')} after {fmt_duration(event.get('duration'))}"
        self.console.print(line, highlight=False, markup=False)

    def _plain(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "agent_started":
            indent = "  " * event.get("depth", 0)
            self.console.print(f"{indent}▶ {event['agent']} started: {_short(event.get('task', ''))}",
                               highlight=False, markup=False)  # fmt: skip
        elif kind == "agent_finished":
            with self._lock:
                agent = self._agents.get(event["agent"], {})
            indent = "  " * agent.get("depth", 0)
            status = event.get("status")
            extra = f" — {event.get('error')}" if event.get("error") else ""
            self.console.print(
                f"{indent}{STATUS_ICONS.get(status, '•')} {event['agent']} {status} after "
                f"{agent.get('iterations', 0)} iterations{extra}",
                highlight=False,
                markup=False,
            )

    def _render(self) -> Table:
        with self._lock:
            agents = sorted(self._agents.values(), key=_tree_order)
            cost = self._cost
        running = sum(1 for a in agents if a["status"] == "running")
        elapsed = fmt_duration(time.monotonic() - self._started)
        table = Table(title=f"{self.title} — {len(agents)} agents, {running} running, {elapsed}, {fmt_cost(cost)}",
                      title_justify="left", expand=False, box=None, padding=(0, 1))  # fmt: skip
        for column in ("agent", "status", "depth", "iter", "elapsed", "cost", "task"):
            table.add_column(
                column, no_wrap=True, overflow="ellipsis", max_width=60 if column == "task" else None
            )
        shown = (
            agents if len(agents) <= MAX_ROWS else [a for a in agents if a["status"] == "running"][:MAX_ROWS]
        )
        now = time.monotonic()
        for a in shown:
            style = STATUS_STYLES.get(a["status"], "")
            table.add_row(
                Text("  " * a["depth"] + a["id"]),
                Text(f"{STATUS_ICONS.get(a['status'], '•')} {a['status']}", style=style),
                str(a["depth"]),
                str(a["iterations"]),
                fmt_duration((a["t1"] or now) - a["t0"]),
                fmt_cost(a["cost"]),
                Text(_short(a["task"])),
            )
        if len(shown) < len(agents):
            table.add_row(Text(f"… {len(agents) - len(shown)} more", style="dim"), "", "", "", "", "", "")
        return table


def _tree_order(agent: dict) -> list[int]:
    """root, root.1, root.1.1, root.1.2, root.2, …: children right under their parent."""
    return [int(part) if part.isdigit() else -1 for part in agent["id"].split(".")]


def _short(text: str, limit: int = 70) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
