"""Typed endings of an agent or a rollout, and the engine's user-facing errors.

An agent's loop ends only by raising one of the `AgentEnded` subclasses; the rollout maps the
root's ending onto the run's status.
"""

from __future__ import annotations

from .status import Status


class RLMError(Exception):
    """An error the user can act on; str() is a sentence that says what to do."""


class RepoError(RLMError):
    """The repository could not be fetched or the commit/branch does not exist."""


class SandboxError(RLMError):
    """A sandbox could not be created or its REPL died."""


class LLMError(RLMError):
    """A model call failed for good (auth, context window, retries exhausted, script exhausted)."""


class AgentEnded(Exception):
    """Base of every way an agent's loop ends. `status` names the outcome in the trace."""

    status = Status.ERROR


class Submitted(AgentEnded):
    status = Status.COMPLETED

    def __init__(self, answer: str):
        super().__init__("submitted")
        self.answer = answer


class LimitsExceeded(AgentEnded):
    """A budget ran out: `kind` is iterations, depth, sandboxes, cost."""

    status = Status.BUDGET

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class TimeExceeded(AgentEnded):
    status = Status.TIMEOUT


class Cancelled(AgentEnded):
    status = Status.CANCELLED


class AgentFailed(AgentEnded):
    """The model or the sandbox failed in a way the agent cannot recover from."""

    status = Status.ERROR
