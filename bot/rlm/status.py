"""How an agent, and so a rollout (its root's outcome), stands: one word per meaning.

The values are what the results JSON and the events store; readers of older results also accept
"failed" (an earlier word for `ERROR`, see trace.STATUS_ICONS).
"""

from __future__ import annotations

from bot.common.enums import StrEnum

__all__ = ["SetupStatus", "Status"]


class Status(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"  # FINAL was called and ran
    BUDGET = "budget"  # a limit ran out: iterations, depth, sandboxes, cost
    TIMEOUT = "timeout"  # the tree's deadline passed
    CANCELLED = "cancelled"
    ERROR = "error"  # the model, the sandbox or the setup failed


class SetupStatus(StrEnum):
    """How the environment setup stands (results["setup"]["status"])."""

    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
