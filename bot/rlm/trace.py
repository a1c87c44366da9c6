"""Events while a rollout runs, the results JSON at the end, and the markdown tree summary.

One code path builds the results: `fold(results, event)`. The running rollout folds each event as
it emits it; after a crash (or in a live viewer) the same fold over `<run_id>.events.jsonl`
rebuilds everything the run had recorded. Every string is redacted before it is written.

Event types: rollout_started, agent_started, sandbox_created, llm_call, llm_query, code_executed,
child_spawned, agent_finished (a sub-agent's `patch`), report, rollout_finished (the root's `report`). Each line: {"seq", "t" (epoch seconds), "type", ...fields}.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .secrets import REDACTOR, Redactor

RESULTS_VERSION = 1
STATUS_ICONS = {
    "running": "⏳",
    "completed": "✅",
    "budget": "⛔",
    "timeout": "⏱️",
    "cancelled": "🚫",
    "error": "❌",
    "failed": "❌",
}


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds")


def new_results(run_id: str) -> dict[str, Any]:
    return {
        "version": RESULTS_VERSION,
        "run_id": run_id,
        "status": "running",
        "error": None,
        "answer": None,
        "report": None,
        "repo": None,
        "commit": None,
        "branch": None,
        "prompt": None,
        "model": None,
        "sandbox": None,
        "config": {},
        "started_at": None,
        "finished_at": None,
        "duration": None,
        "patch": None,
        "totals": {
            "agents": 0,
            "max_depth": 0,
            "iterations": 0,
            "llm_calls": 0,
            "code_blocks": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cost_usd": 0.0,
            "sandboxes": 0,
        },
        "agents": [],
    }


def _agent(results: dict, agent_id: str) -> dict | None:
    index = results.setdefault("_index", {})
    pos = index.get(agent_id)
    if pos is None:
        return None
    return results["agents"][pos]


def _iteration(agent: dict, n: int) -> dict:
    while len(agent["iterations"]) < n:
        agent["iterations"].append(
            {
                "n": len(agent["iterations"]) + 1,
                "prompt": "",
                "response": "",
                "started_at": None,
                "duration": None,
                "usage": None,
                "blocks": [],
                "children": [],
            }  # fmt: skip
        )
    return agent["iterations"][n - 1]


def fold(results: dict, event: dict) -> dict:
    """Apply one event to a results dict (in place) and return it."""
    kind, t = event.get("type"), event.get("t")
    totals = results["totals"]
    if kind == "rollout_started":
        for key in ("repo", "commit", "branch", "prompt", "model", "sandbox", "config"):
            results[key] = event.get(key)
        results["started_at"] = iso(t)
        results["_t0"] = t
    elif kind == "agent_started":
        agent = {
            "id": event["agent"],
            "parent": event.get("parent"),
            "depth": event.get("depth", 0),
            "parent_iteration": event.get("parent_iteration"),
            "index": event.get("index"),
            "task": event.get("task", ""),
            "sandbox": None,
            "sandbox_seconds": None,
            "status": "running",
            "result": None,
            "error": None,
            "patch": None,
            "patch_stats": None,
            "iterations": [],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0},
            "started_at": iso(t),
            "finished_at": None,
            "duration": None,
            "_t0": t,
        }
        results.setdefault("_index", {})[agent["id"]] = len(results["agents"])
        results["agents"].append(agent)
        totals["agents"] += 1
        totals["max_depth"] = max(totals["max_depth"], agent["depth"])
    elif kind == "sandbox_created":
        agent = _agent(results, event["agent"])
        if agent is not None:
            agent["sandbox"], agent["sandbox_seconds"] = event.get("sandbox"), event.get("duration")
            totals["sandboxes"] += 1
    elif kind == "llm_call":
        agent = _agent(results, event["agent"])
        if agent is None:
            return results
        it = _iteration(agent, event["iteration"])
        it.update(prompt=event.get("prompt", ""), response=event.get("response", ""),
                  started_at=iso((t or 0) - (event.get("duration") or 0)), duration=event.get("duration"),
                  usage=event.get("usage"))  # fmt: skip
        usage = event.get("usage") or {}
        for key in ("prompt_tokens", "completion_tokens", "cost_usd"):
            agent["usage"][key] += usage.get(key, 0) or 0
            totals[key] += usage.get(key, 0) or 0
        totals["llm_calls"] += 1
        totals["iterations"] += 1
    elif kind == "code_executed":
        agent = _agent(results, event["agent"])
        if agent is None:
            return results
        block = {k: event.get(k) for k in ("code", "stdout", "stderr", "error", "duration", "final")}
        _iteration(agent, event["iteration"])["blocks"].append(block)
        totals["code_blocks"] += 1
    elif kind == "child_spawned":
        agent = _agent(results, event["agent"])
        if agent is not None:
            _iteration(agent, event["iteration"])["children"].append(event["child"])
    elif kind == "agent_finished":
        agent = _agent(results, event["agent"])
        if agent is None:
            return results
        agent.update(status=event.get("status"), result=event.get("result"), error=event.get("error"),
                     finished_at=iso(t), duration=_since(agent.get("_t0"), t))  # fmt: skip
        if "patch" in event:  # a sub-agent's changes, as handed to its parent
            agent.update(patch=event.get("patch"), patch_stats=event.get("patch_stats"))
    elif kind == "rollout_finished":
        for key in ("status", "error", "answer", "patch", "report"):
            results[key] = event.get(key)
        results["finished_at"] = iso(t)
        results["duration"] = _since(results.get("_t0"), t)
    elif kind == "llm_query":
        totals_usage = event.get("usage") or {}
        for key in ("prompt_tokens", "completion_tokens", "cost_usd"):
            totals[key] += totals_usage.get(key, 0) or 0
        totals["llm_calls"] += 1
    totals["cost_usd"] = round(totals["cost_usd"], 8)
    return results


def _since(t0: float | None, t: float | None) -> float | None:
    if t0 is None or t is None:
        return None
    return round(t - t0, 3)


def public(results: dict) -> dict:
    """The results without the fold's private bookkeeping keys."""
    out = {k: v for k, v in results.items() if not k.startswith("_")}
    out["agents"] = [{k: v for k, v in a.items() if not k.startswith("_")} for a in results["agents"]]
    return out


def fold_events(events: Iterable[dict], run_id: str = "") -> dict:
    results = new_results(run_id)
    for event in events:
        if event.get("type") == "rollout_started" and not run_id:
            results["run_id"] = event.get("run_id", "")
        fold(results, event)
    return results


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
    with open(tmp, "w", encoding="utf-8") as f:
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

    def emit(self, kind: str, **fields: Any) -> dict:
        with self._lock:
            self._seq += 1
            event = self.redactor.redact_obj({"seq": self._seq, "t": time.time(), "type": kind, **fields})
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


def fmt_cost(usd: float) -> str:
    return f"${usd:.4f}" if usd < 1 else f"${usd:.2f}"


def _one_line(text: str, limit: int = 90) -> str:
    line = " ".join((text or "").split()).replace("`", "'").replace("|", "/")
    line = line.replace("<", "&lt;").replace(">", "&gt;")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def totals_line(results: dict) -> str:
    t = results["totals"]
    return (
        f"{t['agents']} agents · max depth {t['max_depth']} · {t['iterations']} iterations · "
        f"{fmt_duration(results.get('duration'))} · "
        f"{fmt_tokens(t['prompt_tokens'] + t['completion_tokens'])} tokens · {fmt_cost(t['cost_usd'])}"
    )


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
                f"{fmt_cost(usage.get('cost_usd', 0.0))}"
            )
            walk(agent["id"], level + 1)

    walk(None, 0)
    if len(agents) > shown:
        lines.append(f"- … and {len(agents) - shown} more agents (see the full trace)")
    header = f"**Agent tree** — {totals_line(results)}"
    return "\n".join([header, "", *lines])
