"""The sandbox seam: what every backend (local, daytona) provides to the engine.

A provider is made once per rollout for one prepared repository (an exact commit). Each agent
gets its own sandbox: a fresh checkout of that commit with a REPL driver inside.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

from ..config import Config
from ..environment import Environment, SetupSpec
from ..errors import SandboxError
from ..repl.session import Transport

T = TypeVar("T", bound=Transport)


class Sandbox(Protocol):
    id: str
    workdir: str  # the checkout's path as the driver sees it (the REPL's working directory)

    def start_driver(self) -> Transport:
        """Start (or restart) the REPL driver process; the caller sends `init`."""
        ...

    def init_limits(self) -> dict:
        """Resource limits the driver applies to itself (memory_bytes, file_bytes, processes)."""
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

    @property
    def prompt_note(self) -> str:
        """What every agent's system prompt says about this backend's environment beyond what
        setup built (e.g. the host's prepared Python, read-only); empty when nothing."""
        ...

    def create(self, agent_id: str) -> Sandbox:
        """A new sandbox at the rollout's commit; raises SandboxError with a readable reason."""
        ...

    def close(self) -> None:
        """Destroy every sandbox this provider made. Idempotent; safe from any thread."""
        ...

    def setup_environment(self, spec: SetupSpec, cancel: threading.Event) -> Environment:
        """Build or reuse the ready environment (environment.py) that every later sandbox gets;
        raises SetupFailed."""
        ...


def driver_limits(config: Config) -> dict:
    """The resource limits every backend's driver applies to itself (see driver.py)."""
    sandbox = config.sandbox
    return {"memory_bytes": sandbox.memory_mb * 1024 * 1024, "file_bytes": sandbox.disk_mb * 1024 * 1024}


class DriverSlot:
    """The one REPL transport a sandbox owns, for every backend: a restart kills the old driver
    first; destroying kills it once and refuses later starts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._transport: Transport | None = None
        self.destroyed = False

    def replace(self, start: Callable[[], T]) -> T:
        with self._lock:
            if self.destroyed:
                raise SandboxError("the sandbox was destroyed")
            if self._transport is not None:
                self._transport.kill()
            transport = start()
            self._transport = transport
            return transport

    def close(self) -> bool:
        """Kill the driver. True the first time only: the caller then removes the sandbox."""
        with self._lock:
            if self.destroyed:
                return False
            self.destroyed = True
            transport, self._transport = self._transport, None
        if transport is not None:
            transport.kill()
        return True
