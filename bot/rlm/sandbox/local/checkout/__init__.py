"""An agent's checkout of the pinned commit, made one of two ways behind one interface.

overlay.py: a copy-on-write view over one read-only checkout per commit (shared.py), mounted by
overlay_launch.py inside the sandbox, its patch read from the upper layer (upper_patch.py).
copies.py: a full copy per agent, where overlay mounts are impossible.
The provider holds a `Checkouts` and each sandbox a `Checkout`; neither asks which kind it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

__all__ = ["Checkout", "Checkouts"]


class Checkout(Protocol):
    """One agent's checkout: a full copy (copies.py) or a copy-on-write view (overlay.py)."""

    path: Path  # the checkout's root, at the same path inside the sandbox

    @property
    def ro_binds(self) -> list[Path]:
        """Host paths the sandbox also sees, read-only, at the same path."""
        ...

    def launch(self, command: list[str]) -> list[str]:
        """The command line that runs `command` (bwrap or the driver) with this checkout in place."""
        ...

    def add_layer(self, layer: Path) -> None:
        """Show `layer`'s files (what setup generated) in the checkout, outside its patch."""
        ...

    def diff(self, cache: Path, base: str, max_bytes: int | None) -> str:
        """The host-computed patch of the agent's changes against `base` (PatchTooLarge past
        `max_bytes`)."""
        ...

    def remove(self) -> None: ...


class Checkouts(Protocol):
    """Hands out the checkouts of one rollout's sandboxes."""

    def take(self, name: str, priority: int) -> Checkout:
        """A new checkout named `name`; deeper agents (higher `priority`) go first when checkouts
        queue. Raises OSError or CalledProcessError."""
        ...

    def close(self) -> None:
        """Release what the rollout held (pooled copies, the shared checkout)."""
        ...
