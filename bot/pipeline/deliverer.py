"""Where a run starts and where its change goes: the `Deliverer` seam each front end implements
(the App and the Action: bot.github.deliver; the CLI: a patch file or stdout)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .outcome import RunOutcome, Target
    from .request import RunRequest
    from .state import RunState


class Deliverer(Protocol):
    """Knows where a run starts and where its change goes."""

    def target(self, request: RunRequest) -> Target:
        """The commit to run on and the branch a change goes to, resolved once per run and without
        changing `request` (raises DeliveryError)."""

    def deliver(self, state: RunState) -> RunOutcome:
        """Deliver a completed rollout's change (state.result.has_changes is true; the patch is
        already at state.patch_path), or a review run's findings (state.result.mode is `review`).
        Returns the outcome, which names where the change (or the review) is."""
