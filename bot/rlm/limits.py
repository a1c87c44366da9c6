"""Every limit of a rollout, checked in this one place.

`check_agent` ends an agent's loop by raising (iterations, cost, time, cancellation);
`refuse_children` / `refuse_llm_query` return the sentence the model reads when a call it makes
cannot be served (depth, sandboxes, cost, time). Nothing here ever blocks.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from .config import RLMConfig
from .errors import Cancelled, LimitsExceeded, TimeExceeded
from .llm import UsageMeter
from .prompts import Budget

if TYPE_CHECKING:
    from .node import AgentNode


class Limits:
    def __init__(self, cfg: RLMConfig, cancel: threading.Event, meter: UsageMeter):
        self.cfg = cfg
        self.cancel = cancel
        self.meter = meter
        self.deadline = time.monotonic() + cfg.global_timeout
        self._lock = threading.Lock()
        self.sandboxes_used = 0

    def start(self) -> None:
        self.deadline = time.monotonic() + self.cfg.global_timeout

    def seconds_left(self) -> float:
        return self.deadline - time.monotonic()

    # ------------------------------------------------------------------ endings (raise)

    def check_alive(self) -> None:
        """Cancellation and the deadline: checked before and during every blocking wait."""
        if self.cancel.is_set():
            raise Cancelled("the run was cancelled")
        if time.monotonic() >= self.deadline:
            raise TimeExceeded(f"the global timeout of {self.cfg.global_timeout:.0f}s was reached")

    def cost_spent(self) -> bool:
        limit = self.cfg.max_cost_usd
        return limit is not None and self.meter.total.cost_usd >= limit

    def check_agent(self, node: AgentNode) -> None:
        """Before each iteration of an agent."""
        self.check_alive()
        if self.cost_spent():
            raise LimitsExceeded("cost", f"the cost limit of ${self.cfg.max_cost_usd:.2f} was reached")
        if node.iterations >= self.cfg.max_iterations:
            raise LimitsExceeded(
                "iterations", f"the agent used all {self.cfg.max_iterations} iterations without calling FINAL"
            )

    # ------------------------------------------------------------------ refusals (return text)

    def _refuse_common(self) -> str | None:
        if self.cancel.is_set():
            return "the run was cancelled; finish now with FINAL"
        if self.seconds_left() <= 0:
            return "the global time limit is reached; finish now with FINAL"
        if self.cost_spent():
            return f"the cost limit of ${self.cfg.max_cost_usd:.2f} is reached; finish now with FINAL"
        return None

    def refuse_children(self, parent: AgentNode) -> str | None:
        common = self._refuse_common()
        if common:
            return common
        if parent.depth >= self.cfg.max_depth:
            return (
                f"maximum depth {self.cfg.max_depth} reached: sub-agents cannot delegate further; "
                "do this task yourself in your REPL"
            )
        return None

    def refuse_llm_query(self) -> str | None:
        return self._refuse_common()

    def reserve_sandbox(self) -> bool:
        with self._lock:
            if self.sandboxes_used >= self.cfg.max_sandboxes:
                return False
            self.sandboxes_used += 1
            return True

    def release_sandbox(self) -> None:
        with self._lock:
            self.sandboxes_used = max(0, self.sandboxes_used - 1)

    def sandboxes_exhausted(self) -> str:
        return (
            f"the sandbox budget ({self.cfg.max_sandboxes}) is used up, so no sub-agent was started; "
            "do this task yourself in your REPL"
        )

    def budget(self, node: AgentNode, iteration: int) -> Budget:
        with self._lock:
            left = self.cfg.max_sandboxes - self.sandboxes_used
        return Budget(
            iteration=iteration,
            max_iterations=self.cfg.max_iterations,
            depth=node.depth,
            max_depth=self.cfg.max_depth,
            sandboxes_left=left,
            max_sandboxes=self.cfg.max_sandboxes,
            seconds_left=self.seconds_left(),
            cost_usd=self.meter.total.cost_usd,
            max_cost_usd=self.cfg.max_cost_usd,
        )
