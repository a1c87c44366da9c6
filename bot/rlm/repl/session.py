"""Host side of the REPL protocol (see driver.py for the messages).

A `Transport` moves JSON messages to and from one driver process, whatever the sandbox backend.
`ReplSession` runs code blocks over it, answers the driver's calls, and enforces the per-exec
timeout, the rollout's deadline and cancellation from the host side too.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..errors import SandboxError

DRIVER_PATH = Path(__file__).with_name("driver.py")
POLL = 0.2  # seconds between checks of deadline and cancellation while a block runs
GRACE = 10.0  # seconds the host waits past the driver's own timeout before killing it
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # default bound on one protocol message (sandbox.max_message_mb)
QUEUED_MESSAGES = 4  # messages read ahead of the session; more wait in the pipe (back-pressure)
_EOF = object()
OVERSIZED = "oversized"  # the kind of the marker a reader queues for a message over the bound
MESSAGE_TOO_LARGE = (
    "ProtocolError: the REPL sent a message over {limit} bytes (sandbox.max_message_mb); the block "
    "was stopped, the REPL restarted and its variables are lost. Print less, or write large data "
    "to a file and read parts of it."
)


class Transport(Protocol):
    def send(self, msg: dict) -> None: ...
    def recv(self, timeout: float) -> dict | None:
        """The next message, None on timeout; raises SandboxError when the driver is gone."""
        ...

    def kill(self) -> None: ...
    def describe_exit(self) -> str: ...


class LineReader:
    """Feeds JSON lines from a byte stream into a small queue on a daemon thread.

    `read_line(n)` returns at most `n` bytes up to a newline, b"" at EOF. A line longer than
    `max_bytes` is never held: the reader queues an `oversized` marker and stops, so the host's
    memory per driver stays bounded whatever the driver sends."""

    def __init__(self, read_line: Callable[[int], bytes], max_bytes: int = MAX_MESSAGE_BYTES):
        self.queue: queue.Queue = queue.Queue(maxsize=QUEUED_MESSAGES)
        self.max_bytes = max_bytes
        self._read_line = read_line
        self._closed = threading.Event()
        threading.Thread(target=self._pump, daemon=True, name="repl-reader").start()

    def _put(self, item: object) -> None:
        while not self._closed.is_set():
            try:
                self.queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _pump(self) -> None:
        try:
            while not self._closed.is_set():
                line = self._read_line(self.max_bytes + 1)
                if not line:
                    break
                if len(line) > self.max_bytes and not line.endswith(b"\n"):
                    self._put({"type": OVERSIZED, "limit": self.max_bytes})
                    break
                try:
                    self._put(json.loads(line))
                except ValueError:
                    self._put({"type": "garbage", "line": line[:200].decode("utf-8", "replace")})
        except (OSError, ValueError):
            pass
        finally:
            self._put(_EOF)

    def close(self) -> None:
        """Stop reading; the pump thread ends without waiting for a consumer."""
        self._closed.set()

    def get(self, timeout: float) -> dict | None:
        try:
            item = self.queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _EOF:
            self.queue.put(_EOF)  # stay at EOF for every later reader
            raise SandboxError("the sandbox's REPL process exited")
        return item


@dataclass
class ExecResult:
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    final: str | None = None
    duration: float = 0.0
    repl_lost: bool = False  # the driver was killed; the namespace is gone
    findings: list = field(default_factory=list)  # COMMENT's raw findings (checked by the rollout)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stdout": self.stdout,
            "stderr": self.stderr,
            "error": self.error,
            "final": self.final is not None,
            "duration": round(self.duration, 4),
        }


CallHandler = Callable[[str, dict], Any]
StopCheck = Callable[[], None]  # raises (TimeExceeded, Cancelled) to abandon the block


class ReplSession:
    def __init__(self, transport: Transport):
        self.transport = transport
        self._next_id = 0
        self.alive = True

    def start(self, init: dict, timeout: float = 30.0) -> dict:
        end = time.monotonic() + timeout
        try:
            self.transport.send({"type": "init", **init})
            while time.monotonic() < end:
                msg = self.transport.recv(min(POLL, max(0.01, end - time.monotonic())))
                if msg and msg.get("type") == "ready":
                    return msg
        except SandboxError as e:  # the driver died at start: say how (e.g. python3 missing)
            how = self._exit_reason()
            self.close()
            raise SandboxError(f"{e} ({how})") from None
        self.close()
        raise SandboxError(f"the sandbox's REPL did not start within {timeout:.0f}s")

    def _exit_reason(self, wait: float = 3.0) -> str:
        """How the driver ended; its exit status can lag a moment behind its closed pipes."""
        end = time.monotonic() + wait
        how = self.transport.describe_exit()
        while how == "still running" and time.monotonic() < end:
            time.sleep(0.05)
            how = self.transport.describe_exit()
        return how

    def execute(
        self, code: str, timeout: float, on_call: CallHandler, check: StopCheck, label: int | None = None
    ) -> ExecResult:
        """Run one block. `timeout` counts only the block's own time, not its calls' time. `label`:
        the block's number as the model sees it (tracebacks name `<block N>`)."""
        if not self.alive:
            raise SandboxError("the REPL is no longer running")
        self._next_id += 1
        exec_id = self._next_id
        msg = {"type": "exec", "id": exec_id, "code": code, "timeout": timeout}
        if label is not None:
            msg["label"] = label
        self.transport.send(msg)
        budget = timeout + GRACE
        started = time.monotonic()
        try:
            while True:
                check()
                t0 = time.monotonic()
                msg = self.transport.recv(POLL)
                budget -= time.monotonic() - t0
                if msg is None:
                    if budget <= 0:
                        self.close()
                        return ExecResult(
                            error=f"TimeoutError: the block did not stop after {timeout:.0f}s; the REPL "
                            "was restarted and its variables are lost",
                            duration=time.monotonic() - started,
                            repl_lost=True,
                        )
                    continue
                kind = msg.get("type")
                if kind == OVERSIZED:
                    self.close()
                    return ExecResult(
                        error=MESSAGE_TOO_LARGE.format(limit=msg.get("limit")),
                        duration=time.monotonic() - started,
                        repl_lost=True,
                    )
                if kind == "call":
                    self._answer(msg, on_call)
                elif kind == "result" and msg.get("id") == exec_id:
                    final = msg.get("final")
                    return ExecResult(
                        stdout=msg.get("stdout") or "",
                        stderr=msg.get("stderr") or "",
                        error=msg.get("error"),
                        final=final.get("answer") if isinstance(final, dict) else None,
                        duration=float(msg.get("duration") or 0.0),
                        findings=msg.get("findings") if isinstance(msg.get("findings"), list) else [],
                    )
        except SandboxError as e:
            self.close()
            return ExecResult(
                error=f"SandboxError: {e} ({self.transport.describe_exit()}); the REPL was restarted "
                "and its variables are lost",
                duration=time.monotonic() - started,
                repl_lost=True,
            )
        except BaseException:
            self.close()  # deadline, cancellation, Ctrl-C: the block is abandoned with its sandbox
            raise

    def _answer(self, msg: dict, on_call: CallHandler) -> None:
        call_id = msg.get("id")
        try:
            value = on_call(str(msg.get("fn")), msg.get("args") or {})
            reply = {"type": "reply", "id": call_id, "ok": True, "value": value}
        except CallRefused as e:
            reply = {"type": "reply", "id": call_id, "ok": False, "error": str(e)}
        self.transport.send(reply)

    def close(self) -> None:
        if self.alive:
            self.alive = False
            try:
                self.transport.send({"type": "shutdown"})
            except SandboxError:
                pass
            self.transport.kill()


class CallRefused(Exception):
    """A driver call the host will not serve (unknown function, budget gone); the text goes back."""
