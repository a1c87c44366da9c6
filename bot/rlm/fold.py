"""A run's results, and the ONE fold that builds them from its events.

Every reader of a run folds with `fold`: the rollout as it emits (trace.py), the live progress on
a terminal (bot/progress.py), the status comment (bot/github/status.py), and the viewer's server,
which serves folded state to the page (bot/viewer/runs.py). Nothing else interprets events.

A new event kind is one entry in `EventKind` and one function in `FOLDS` (an unknown kind is
ignored, so old readers survive new writers). The private keys a fold keeps (`_index`, `_t0`)
start with an underscore; `public` drops them.

The results file is a JSON object whose `agents` key comes last: `read_head` parses the keys
before it, token by token, so listing many large runs never decodes their agents.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bot.common.enums import StrEnum

from .status import SetupStatus, Status

RESULTS_VERSION = 1
USAGE_KEYS = ("prompt_tokens", "completion_tokens", "cost_usd", "unpriced_calls")


class EventKind(StrEnum):
    ROLLOUT_STARTED = "rollout_started"
    AGENT_STARTED = "agent_started"
    SANDBOX_CREATED = "sandbox_created"
    LLM_CALL = "llm_call"
    LLM_QUERY = "llm_query"
    CODE_EXECUTED = "code_executed"
    CHILD_SPAWNED = "child_spawned"
    AGENT_FINISHED = "agent_finished"
    ROLLOUT_FINISHED = "rollout_finished"
    SETUP_STARTED = "setup_started"
    SETUP_FINISHED = "setup_finished"
    SETUP_SKIPPED = "setup_skipped"
    REPORT = "report"  # the root handed back a report (its text is in rollout_finished)
    FINDING = "finding"  # a review finding an agent recorded with COMMENT


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds")


def new_results(run_id: str) -> dict[str, Any]:
    return {
        "version": RESULTS_VERSION,
        "run_id": run_id,
        "status": Status.RUNNING,
        "error": None,
        "answer": None,
        "report": None,
        "repo": None,
        "commit": None,
        "branch": None,
        "prompt": None,
        "mode": "change",
        "model": None,
        "sandbox": None,
        "config": {},
        "started_at": None,
        "finished_at": None,
        "duration": None,
        "patch": None,
        "setup": None,
        "findings": [],
        "totals": {
            "agents": 0,
            "max_depth": 0,
            "iterations": 0,
            "llm_calls": 0,
            "code_blocks": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cost_usd": 0.0,
            "unpriced_calls": 0,  # model calls with no known price (their cost is not in cost_usd)
            "sandboxes": 0,
        },
        "agents": [],
    }


def agent_of(results: dict, agent_id: Any) -> dict | None:
    pos = results.setdefault("_index", {}).get(agent_id)
    return None if pos is None else results["agents"][pos]


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
            }
        )
    return agent["iterations"][n - 1]


def _since(t0: float | None, t: float | None) -> float | None:
    if t0 is None or t is None:
        return None
    return round(t - t0, 3)


def _add_usage(target: dict, usage: dict | None) -> None:
    for key in USAGE_KEYS:
        target[key] = target.get(key, 0) + ((usage or {}).get(key, 0) or 0)


# ---------------------------------------------------------------------- one function per kind
# Each takes (results, event, t) and changes results in place.


def _rollout_started(results: dict, event: dict, t: float | None) -> None:
    for key in ("repo", "commit", "branch", "prompt", "model", "sandbox", "config"):
        results[key] = event.get(key)
    results["mode"] = event.get("mode") or "change"
    results["started_at"] = iso(t)
    results["_t0"] = t


def _agent_started(results: dict, event: dict, t: float | None) -> None:
    agent = {
        "id": event["agent"],
        "parent": event.get("parent"),
        "depth": event.get("depth", 0),
        "parent_iteration": event.get("parent_iteration"),
        "index": event.get("index"),
        "task": event.get("task", ""),
        "sandbox": None,
        "sandbox_seconds": None,
        "status": Status.RUNNING,
        "result": None,
        "error": None,
        "patch": None,
        "patch_stats": None,
        "iterations": [],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0, "unpriced_calls": 0},
        "started_at": iso(t),
        "finished_at": None,
        "duration": None,
        "_t0": t,
    }
    results.setdefault("_index", {})[agent["id"]] = len(results["agents"])
    results["agents"].append(agent)
    totals = results["totals"]
    totals["agents"] += 1
    totals["max_depth"] = max(totals["max_depth"], agent["depth"])


def _sandbox_created(results: dict, event: dict, t: float | None) -> None:
    agent = agent_of(results, event["agent"])
    if agent is not None:
        agent["sandbox"], agent["sandbox_seconds"] = event.get("sandbox"), event.get("duration")
        results["totals"]["sandboxes"] += 1


def _llm_call(results: dict, event: dict, t: float | None) -> None:
    agent = agent_of(results, event["agent"])
    if agent is None:
        return
    it = _iteration(agent, event["iteration"])
    it.update(
        prompt=event.get("prompt", ""),
        response=event.get("response", ""),
        started_at=iso((t or 0) - (event.get("duration") or 0)),
        duration=event.get("duration"),
        usage=event.get("usage"),
    )
    _add_usage(agent["usage"], event.get("usage"))
    _add_usage(results["totals"], event.get("usage"))
    results["totals"]["llm_calls"] += 1
    results["totals"]["iterations"] += 1


def _llm_query(results: dict, event: dict, t: float | None) -> None:
    _add_usage(results["totals"], event.get("usage"))
    results["totals"]["llm_calls"] += 1


def _code_executed(results: dict, event: dict, t: float | None) -> None:
    agent = agent_of(results, event["agent"])
    if agent is None:
        return
    block = {k: event.get(k) for k in ("code", "stdout", "stderr", "error", "duration", "final")}
    _iteration(agent, event["iteration"])["blocks"].append(block)
    results["totals"]["code_blocks"] += 1


def _child_spawned(results: dict, event: dict, t: float | None) -> None:
    agent = agent_of(results, event["agent"])
    if agent is not None:
        _iteration(agent, event["iteration"])["children"].append(event["child"])


def _agent_finished(results: dict, event: dict, t: float | None) -> None:
    agent = agent_of(results, event["agent"])
    if agent is not None:
        agent.update(
            status=event.get("status"),
            result=event.get("result"),
            error=event.get("error"),
            finished_at=iso(t),
            duration=_since(agent.get("_t0"), t),
        )
        if "patch" in event:  # a sub-agent's changes, as handed to its parent
            agent.update(patch=event.get("patch"), patch_stats=event.get("patch_stats"))


def _rollout_finished(results: dict, event: dict, t: float | None) -> None:
    for key in ("status", "error", "answer", "patch", "report"):
        results[key] = event.get(key)
    results["finished_at"] = iso(t)
    results["duration"] = _since(results.get("_t0"), t)


SETUP_FIELDS = (
    "status",
    "cached",
    "duration",
    "build_duration",
    "log_tail",
    "error",
    "key",
    "path",
    "python",
)


def _setup_started(results: dict, event: dict, t: float | None) -> None:
    results["setup"] = {
        "status": SetupStatus.RUNNING,
        "commands": event.get("commands", []),
        "network": event.get("network"),
        "auto": event.get("auto"),
        "started_at": iso(t),
    }


def _setup_finished(results: dict, event: dict, t: float | None) -> None:
    setup = results.get("setup") or {}
    setup.update({k: event.get(k) for k in SETUP_FIELDS})
    results["setup"] = setup


def _setup_skipped(results: dict, event: dict, t: float | None) -> None:
    results["setup"] = {"status": SetupStatus.SKIPPED, "reason": event.get("reason")}


FINDING_FIELDS = ("agent", "path", "line", "body", "suggestion")


def _finding(results: dict, event: dict, t: float | None) -> None:
    results.setdefault("findings", []).append({k: event.get(k) for k in FINDING_FIELDS})


FOLDS: dict[EventKind, Callable[[dict, dict, float | None], None]] = {
    EventKind.ROLLOUT_STARTED: _rollout_started,
    EventKind.AGENT_STARTED: _agent_started,
    EventKind.SANDBOX_CREATED: _sandbox_created,
    EventKind.LLM_CALL: _llm_call,
    EventKind.LLM_QUERY: _llm_query,
    EventKind.CODE_EXECUTED: _code_executed,
    EventKind.CHILD_SPAWNED: _child_spawned,
    EventKind.AGENT_FINISHED: _agent_finished,
    EventKind.ROLLOUT_FINISHED: _rollout_finished,
    EventKind.SETUP_STARTED: _setup_started,
    EventKind.SETUP_FINISHED: _setup_finished,
    EventKind.SETUP_SKIPPED: _setup_skipped,
    EventKind.FINDING: _finding,
}
_BY_NAME = {kind.value: step for kind, step in FOLDS.items()}


def fold(results: dict, event: dict) -> dict:
    """Apply one event to a results dict (in place) and return it."""
    step = _BY_NAME.get(event.get("type"))  # type: ignore[arg-type]
    if step is not None:
        step(results, event, event.get("t"))
        results["totals"]["cost_usd"] = round(results["totals"]["cost_usd"], 8)
    return results


def fold_events(events: Iterable[dict], run_id: str = "") -> dict:
    results = new_results(run_id)
    for event in events:
        if event.get("type") == EventKind.ROLLOUT_STARTED and not run_id:
            results["run_id"] = event.get("run_id", "")
        fold(results, event)
    return results


def public(results: dict) -> dict:
    """The results without the fold's private keys, `agents` last (see `read_head`)."""
    out = {k: v for k, v in results.items() if not k.startswith("_") and k != "agents"}
    out["agents"] = [{k: v for k, v in a.items() if not k.startswith("_")} for a in results["agents"]]
    return out


# ---------------------------------------------------------------------- the results file's head

_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\n\r"


def parse_head(text: str) -> dict[str, Any] | None:
    """The members of a results JSON object before `agents`, parsed one by one; None when `text`
    is not (the start of) such an object. Layout-independent: any indentation or none."""
    try:
        pos = _skip(text, 0)
        if text[pos] != "{":
            return None
        head: dict[str, Any] = {}
        pos = _skip(text, pos + 1)
        while text[pos] != "}":
            key, pos = _DECODER.raw_decode(text, pos)
            pos = _skip(text, pos)
            if not isinstance(key, str) or text[pos] != ":":
                return None
            pos = _skip(text, pos + 1)
            if key == "agents":
                return head if text[pos] == "[" else None
            head[key], pos = _DECODER.raw_decode(text, pos)
            pos = _skip(text, pos)
            if text[pos] == ",":
                pos = _skip(text, pos + 1)
        return None  # an object without agents is not a results file
    except (ValueError, IndexError):
        return None


def _skip(text: str, pos: int) -> int:
    while text[pos] in _WHITESPACE:
        pos += 1
    return pos


def read_head(path: Path, first: int = 1 << 16) -> dict[str, Any] | None:
    """`parse_head` of a results file, reading no more of it than the head needs (a larger
    prefix is read only when the head is longer than `first` bytes)."""
    size = first
    with open(path, "rb") as f:
        while True:
            f.seek(0)
            data = f.read(size)
            head = parse_head(data.decode("utf-8", "ignore"))  # a character cut at the end is past the head
            if head is not None or len(data) < size:
                return head if head is not None and isinstance(head.get("totals"), dict) else None
            size *= 16
