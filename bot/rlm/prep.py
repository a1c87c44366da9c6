"""Getting an agent's sandbox and REPL ready in the background.

An agent's first model call needs only its task and the commit, not its sandbox, so the rollout
creates the sandbox and starts the driver while that call is in flight: creation leaves the
critical path whenever the model is slower than a checkout. The agent blocks on `wait()` only
when it first has code to run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .errors import SandboxError
from .repl.session import POLL, ReplSession
from .sandbox.base import Sandbox


class SandboxPrep:
    def __init__(
        self,
        create: Callable[[], Sandbox],
        init: Callable[[Sandbox], dict],
        check_alive: Callable[[], None],
        on_created: Callable[[Sandbox, float], None],
    ):
        self._create = create
        self._init = init
        self._check_alive = check_alive
        self._on_created = on_created
        self._done = threading.Event()
        self.sandbox: Sandbox | None = None
        self.session: ReplSession | None = None
        self.ready: dict | None = None  # the driver's `ready` message (its Python, tools)
        self.error: Exception | None = None
        threading.Thread(target=self._run, daemon=True, name="rlm-prep").start()

    def _run(self) -> None:
        try:
            started = time.monotonic()
            self.sandbox = self._create()
            self._on_created(self.sandbox, time.monotonic() - started)
            self.session = self.start_session()
        except Exception as e:  # any failure is the agent's to report when it needs the REPL
            self.error = e if isinstance(e, SandboxError) else SandboxError(str(e))
        finally:
            self._done.set()

    def start_session(self) -> ReplSession:
        """A new REPL in the sandbox (also used to restart one that died)."""
        assert self.sandbox is not None
        session = ReplSession(self.sandbox.start_driver())
        self.ready = session.start(self._init(self.sandbox))
        return session

    def wait(self) -> ReplSession:
        """The ready REPL; raises SandboxError if the sandbox could not be made, or the
        rollout's deadline/cancellation while waiting."""
        while not self._done.wait(POLL):
            self._check_alive()
        if self.error is not None:
            raise self.error
        assert self.session is not None
        return self.session

    def settle(self, timeout: float = 60.0) -> Sandbox | None:
        """Wait for the background work to end (bounded) and return the sandbox, if any."""
        self._done.wait(timeout)
        return self.sandbox

    @property
    def failed(self) -> bool:
        return self._done.is_set() and self.sandbox is None
