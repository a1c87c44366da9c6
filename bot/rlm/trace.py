"""Events while a rollout runs, the results JSON at the end, and the markdown tree summary.

One code path builds the results: `fold(results, event)` (fold.py, with the event kinds). The
running rollout folds each event as it emits it; after a crash (or in a live viewer) the same fold
over `<run_id>.events.jsonl` rebuilds everything the run had recorded. Every string is redacted,
and made encodable, before it is written. Each line: {"seq", "t" (epoch seconds), "type", ...fields}.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.common.secrets import REDACTOR, Redactor
from bot.common.text import clean_obj

from .fold import EventKind, fold, new_results, public
from .status import SetupStatus, Status

STATUS_ICONS: dict[str, str] = {
    Status.RUNNING: "⏳",
    Status.COMPLETED: "✅",
    Status.BUDGET: "⛔",
    Status.TIMEOUT: "⏱️",
    Status.CANCELLED: "🚫",
    Status.ERROR: "❌",
    "failed": "❌",  # results written before Status: the same meaning as "error"
}


def read_events(path: Path) -> list[dict]:
    """Events from a JSONL file; a torn last line (a crash mid-write) is skipped."""
    events = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    return events


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", errors="replace") as f:  # any text left unclean is replaced
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


class Trace:
    """Thread-safe event sink: appends to the JSONL file, folds into `results`, tells listeners."""

    def __init__(self, run_id: str, results_dir: Path | None, redactor: Redactor = REDACTOR):
        self.run_id = run_id
        self.redactor = redactor
        self.results = new_results(run_id)
        self._lock = threading.Lock()
        self._seq = 0
        self._listeners: list[Callable[[dict], None]] = []
        self.events_path = self.results_path = None
        self._file = None
        if results_dir is not None:
            results_dir.mkdir(parents=True, exist_ok=True)
            self.events_path = results_dir / f"{run_id}.events.jsonl"
            self.results_path = results_dir / f"{run_id}.json"
            self._file = open(self.events_path, "a", encoding="utf-8", buffering=1)

    def subscribe(self, listener: Callable[[dict], None]) -> None:
        self._listeners.append(listener)

    def emit(self, kind: EventKind, **fields: Any) -> dict:
        """Record one event; `kind` must be an EventKind (a new kind is taught to fold.py first)."""
        with self._lock:
            self._seq += 1
            event = {"seq": self._seq, "t": time.time(), "type": EventKind(kind).value, **fields}
            event = clean_obj(self.redactor.redact_obj(event))
            if self._file is not None:
                self._file.write(json.dumps(event, ensure_ascii=False) + "\n")
            fold(self.results, event)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(event)
        return event

    def snapshot(self) -> dict:
        with self._lock:
            return json.loads(json.dumps(public(self.results)))

    def write_results(self) -> Path | None:
        with self._lock:
            if self._file is not None:
                self._file.flush()
            if self.results_path is None:
                return None
            write_json_atomic(self.results_path, public(self.results))
            return self.results_path

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


# ---------------------------------------------------------------------- markdown summary


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def fmt_tokens(n: int) -> str:
    return f"{n / 1000:.1f}k" if n >= 1000 else str(n)


COST_UNKNOWN = "cost unknown (no price for this model)"
COST_AT_LEAST = "at least {cost} (some calls have no known price)"


def fmt_cost(usd: float) -> str:
    return f"${usd:.4f}" if usd < 1 else f"${usd:.2f}"


def cost_cap_of(results: dict) -> float | None:
    """The run's cost cap (rlm.max_cost_usd), as its trace recorded its config."""
    return ((results.get("config") or {}).get("rlm") or {}).get("max_cost_usd")


def fmt_spend_of_cap(results: dict) -> str:
    """What the run spent, against its cap when it has one: `$0.4100 of $5.00`."""
    spent = fmt_spend(results.get("totals") or {})
    cap = cost_cap_of(results)
    return spent if cap is None else f"{spent} of ${cap:.2f}"


def fmt_spend(usage: dict) -> str:
    """What calls cost: a price, or that it is unknown (a model with no known price), never a
    made-up `$0.0000`."""
    cost, unpriced = usage.get("cost_usd", 0.0) or 0.0, usage.get("unpriced_calls", 0) or 0
    if not unpriced:
        return fmt_cost(cost)
    return COST_AT_LEAST.format(cost=fmt_cost(cost)) if cost > 0 else COST_UNKNOWN


def count(n: int, word: str, plural: str | None = None) -> str:
    """`1 agent`, `2 agents`."""
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def _one_line(text: str, limit: int = 90) -> str:
    line = " ".join((text or "").split()).replace("`", "'").replace("|", "/")
    line = line.replace("<", "&lt;").replace(">", "&gt;")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def totals_line(results: dict) -> str:
    t = results["totals"]
    return (
        f"{count(t['agents'], 'agent')} · max depth {t['max_depth']} · {count(t['iterations'], 'iteration')} · "
        f"{fmt_duration(results.get('duration'))} · "
        f"{fmt_tokens(t['prompt_tokens'] + t['completion_tokens'])} tokens · {fmt_spend(t)}"
    )


def setup_line(results: dict) -> str | None:
    """One line about the environment setup, or None when the run had none."""
    setup = results.get("setup")
    if not setup or setup.get("status") in (None, SetupStatus.SKIPPED):
        return None
    if setup["status"] == SetupStatus.RUNNING:
        return "🧰 Setting up the environment…"
    if setup["status"] == SetupStatus.OK:
        how = "cached" if setup.get("cached") else f"built in {fmt_duration(setup.get('build_duration'))}"
        return f"🧰 Environment ready ({how})"
    return f"🧰 Environment setup {setup['status']}"


def summary_markdown(results: dict, max_lines: int = 60) -> str:
    """The agent tree as a nested markdown list (for PR bodies, step summaries, the CLI)."""
    agents = results.get("agents", [])
    children: dict[str | None, list[dict]] = {}
    for agent in agents:
        children.setdefault(agent.get("parent"), []).append(agent)
    for siblings in children.values():
        siblings.sort(key=lambda a: (a.get("parent_iteration") or 0, a.get("index") or 0))
    lines: list[str] = []
    shown = 0

    def walk(parent: str | None, level: int) -> None:
        nonlocal shown
        for agent in children.get(parent, []):
            if shown >= max_lines:
                return
            shown += 1
            icon = STATUS_ICONS.get(agent.get("status") or "", "•")
            where = f" (from iteration {agent['parent_iteration']})" if agent.get("parent") else ""
            usage = agent.get("usage") or {}
            lines.append(
                f"{'  ' * level}- {icon} `{agent['id']}`{where} {_one_line(agent.get('task', ''))} — "
                f"{len(agent.get('iterations', []))} it · {fmt_duration(agent.get('duration'))} · "
                f"{fmt_spend(usage)}"
            )
            walk(agent["id"], level + 1)

    walk(None, 0)
    if len(agents) > shown:
        lines.append(f"- … and {len(agents) - shown} more agents (see the full trace)")
    header = f"**Agent tree** — {totals_line(results)}"
    setup = setup_line(results)
    return "\n".join([header, *([setup] if setup else []), "", *lines])
