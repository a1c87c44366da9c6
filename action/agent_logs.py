"""The job log while a rollout runs: a progress line per agent, then one collapsible group per agent.

Agents run concurrently and the runner cannot nest or interleave groups, so each agent's log is
collected from its events and written as one `::group::` when the agent finishes. It is one of the
Action's reporters: it hears the run's events through the pipeline (`Reporter.event`) and switches
on the fold's `EventKind`, like every other reader of events. The counts in each group's title
(depth, iterations, cost) are read from the engine's fold of those events, as bot/progress.py does.
"""

from __future__ import annotations

import threading
from typing import Any

from bot.pipeline import NullReporter
from bot.rlm import STATUS_ICONS, EventKind, agent_of, fmt_cost, fold, new_results

from .workflow import Runner

MAX_TEXT = 4000


def _clip(text: str | None) -> str:
    text = (text or "").rstrip()
    if len(text) <= MAX_TEXT:
        return text
    return text[:MAX_TEXT] + f"\n… [{len(text) - MAX_TEXT} more characters in the results artifact]"


def _first_line(text: str | None, limit: int = 100) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class AgentLogs(NullReporter):
    """The Action's reporter that writes the job log from the run's events."""

    def __init__(self, runner: Runner):
        self.runner = runner
        self._lock = threading.Lock()
        self._lines: dict[str, list[str]] = {}
        self.results = new_results("")

    def _add(self, agent: str, *lines: str) -> None:
        with self._lock:
            self._lines.setdefault(agent, []).extend(lines)

    def event(self, event: dict[str, Any]) -> None:
        try:
            kind = EventKind(event.get("type"))
        except ValueError:  # a kind this version does not know: nothing to log
            return
        with self._lock:
            fold(self.results, event)
        agent = event.get("agent") or ""
        if kind is EventKind.ROLLOUT_STARTED:
            self.runner.log(
                f"rollout {event.get('run_id')} · {event.get('model')} · commit {str(event.get('commit'))[:12]}"
            )
        elif kind is EventKind.AGENT_STARTED:
            self._add(agent, f"task: {event.get('task', '')}")
            self.runner.log(
                f"▶ {agent} started (depth {event.get('depth', 0)}): {_first_line(event.get('task'))}"
            )
        elif kind is EventKind.LLM_CALL:
            usage = event.get("usage") or {}
            tokens = (usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0)
            self._add(
                agent,
                f"── iteration {event.get('iteration')} · {tokens} tokens · {event.get('duration')}s",
                _clip(event.get("response")),
            )
        elif kind is EventKind.CODE_EXECUTED:
            # the code itself is in the response above; show what running it printed
            parts = [f"── ran block {event.get('block')} ({event.get('duration')}s)"]
            for name in ("stdout", "stderr", "error"):
                if event.get(name):
                    parts += [f"[{name}]", _clip(event.get(name))]
            self._add(agent, *parts)
        elif kind is EventKind.CHILD_SPAWNED:
            self._add(agent, f"── spawned {event.get('child')}: {_first_line(event.get('task'))}")
        elif kind is EventKind.LLM_QUERY:
            self._add(agent, f"── llm_query: {_first_line(event.get('prompt'))}")
        elif kind is EventKind.AGENT_FINISHED:
            self._finished(agent, event)
        elif kind is EventKind.ROLLOUT_FINISHED:
            self.runner.log(
                f"rollout finished: {event.get('status')}"
                + (f" ({_first_line(event['error'], 300)})" if event.get("error") else "")
            )

    def _finished(self, agent: str, event: dict) -> None:
        status = event.get("status") or "error"
        with self._lock:
            lines = self._lines.pop(agent, [])
            folded = agent_of(self.results, agent) or {}
            depth, iterations = folded.get("depth", 0), len(folded.get("iterations", []))
            cost = (folded.get("usage") or {}).get("cost_usd", 0.0)
        if event.get("result"):
            lines += ["── answer", _clip(event.get("result"))]
        if event.get("error"):
            lines += ["── error", _clip(event.get("error"))]
        title = (
            f"{STATUS_ICONS.get(status, '•')} agent {agent} · depth {depth} · {status} · "
            f"{iterations} iterations · {fmt_cost(cost)}"
        )
        self.runner.group_block(title, "\n".join(lines))
