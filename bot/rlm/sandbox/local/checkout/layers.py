"""The rollout's layer holder: the process whose mount namespace holds every agent's capped upper
layer (see overlay_launch.py, which it runs with `--hold`).

Each agent's upper and work directories live on a tmpfs of `sandbox.checkout_mb`, mounted on the
agent's directory in the holder's namespace by the agent's first launch, so they outlive a
restarted driver and the host can read them (`view`) through /proc/PID/root without mounting
anything itself. A write past the cap fails inside the sandbox with ENOSPC. The holder ends when
`close` closes its stdin, or when the host dies (the pipe closes with it).
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

from bot.common.waiting import readable

LAUNCHER = Path(__file__).with_name("overlay_launch.py")
HOLDER_START = 20.0  # seconds the layer holder may take to start
HOLDER_GONE = "the sandboxes' layer holder is not running ({reason})"


class HolderError(OSError):
    """The layer holder could not start, or refused a request (the sentence says why)."""


class LayerHolder:
    """The process whose mount namespace holds every agent's capped upper layer (a tmpfs of
    `size` bytes each, mounted by the agent's first launch); see overlay_launch.py. One per
    rollout; it ends with `close` or with us."""

    def __init__(self, python: str, size: int):
        self.size = size
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            [python, "-I", "-S", str(LAUNCHER), "--hold"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            start_new_session=True,  # a Ctrl-C for the host must not take the agents' changes with it
        )
        self.pid = self.proc.pid
        ready = self._answer(HOLDER_START)
        if ready != "ready":
            reason = self._why(ready)
            self.close()
            raise HolderError(HOLDER_GONE.format(reason=reason))

    def _answer(self, timeout: float) -> str | None:
        out = self.proc.stdout
        if not readable(out, timeout):
            return None
        line = out.readline()
        return line.decode("utf-8", "replace").strip() if line else None

    def _why(self, answer: str | None) -> str:
        if answer and answer.startswith("error "):
            return answer[len("error ") :]
        if self.proc.poll() is not None:
            lines = self.proc.stderr.read().decode("utf-8", "replace").strip().splitlines()
            return lines[-1] if lines else f"it exited with status {self.proc.returncode}"
        return "it did not answer"

    def request(self, verb: str, path: Path) -> None:
        with self._lock:
            try:
                self.proc.stdin.write(f"{verb} {path}\n".encode())
                self.proc.stdin.flush()
            except OSError:
                raise HolderError(HOLDER_GONE.format(reason=self._why(None))) from None
            answer = self._answer(HOLDER_START)
        if answer != "ok":
            raise HolderError(f"could not {verb} the checkout's layer at {path}: {self._why(answer)}")

    def view(self, path: Path) -> Path:
        """`path` as the holder's namespace has it (where the agent's tmpfs is); HolderError when
        the holder has ended (the layers went with it)."""
        if self.proc.poll() is not None:
            raise HolderError(HOLDER_GONE.format(reason=self._why(None)))
        return Path(f"/proc/{self.pid}/root") / path.relative_to("/")

    def close(self) -> None:
        """End the holder: every layer not still mounted by a sandbox goes with it."""
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe:
                pipe.close()
