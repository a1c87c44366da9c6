"""The sandbox seam: what every backend (local, daytona) provides to the engine.

A provider is made once per rollout for one prepared repository (an exact commit). Each agent
gets its own sandbox: a fresh checkout of that commit with a REPL driver inside.
"""

from __future__ import annotations

from typing import Protocol

from ..repl.session import Transport


class Sandbox(Protocol):
    id: str
    workdir: str  # the checkout's path as the driver sees it (the REPL's working directory)

    def start_driver(self) -> Transport:
        """Start (or restart) the REPL driver process; the caller sends `init`."""
        ...

    def init_limits(self) -> dict:
        """Resource limits the driver applies to itself (memory_bytes, file_bytes), if any."""
        ...

    def diff(self) -> str:
        """Binary git diff of the checkout against the base commit, untracked files included,
        ignored files excluded. Computed by the host, never trusted from the sandbox's git."""
        ...

    def destroy(self) -> None:
        """Kill every process and delete the checkout. Idempotent; never raises."""
        ...


class SandboxProvider(Protocol):
    name: str

    def create(self, agent_id: str) -> Sandbox:
        """A new sandbox at the rollout's commit; raises SandboxError with a readable reason."""
        ...

    def close(self) -> None:
        """Destroy every sandbox this provider made. Idempotent; safe from any thread."""
        ...
