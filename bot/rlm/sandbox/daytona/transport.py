"""The REPL protocol carried over a Daytona session command.

The driver runs as one long-lived, asynchronous session command. The shell gives it the
command's stdin and stdout as two extra descriptors (3 and 4) and then points its own stdin at
/dev/null and its stdout/stderr at a log file, so:

- host -> driver: `send_session_command_input` writes one JSON line into the command's input
  pipe, which only descriptor 3 reads (input echo into the log is suppressed);
- driver -> host: descriptor 4 is the command's stdout, streamed to us by
  `get_session_command_logs_async`; nothing else in the sandbox writes there, since the driver
  makes 3 and 4 non-inheritable and the agent's output goes to its own files.

The log stream carries text chunks that split lines anywhere; they are joined back into lines
here. If the stream breaks while the driver still runs, it is reopened; the daemon replays the
log from its start, so the characters already seen are skipped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import shlex
import threading
from collections.abc import Callable
from typing import Any

from daytona import DaytonaError

from ...errors import SandboxError
from ...repl.session import MAX_MESSAGE_BYTES, LineReader

log = logging.getLogger(__name__)
RECONNECTS = 5  # log-stream reopenings tolerated per driver before it counts as gone
STDERR_KEPT = 2000  # characters of the command's own stderr kept for describe_exit
REQUEST_TIMEOUT = 60.0  # seconds for one input or status request


def driver_command(
    python: str,
    driver: str,
    workdir: str,
    home: str,
    tmp: str,
    log_path: str,
    variables: dict[str, str] | None = None,
) -> str:
    """The shell command that starts the driver with the protocol on descriptors 3 and 4, in a
    scrubbed environment; its own stdout/stderr go to `log_path`. `variables` are added (a PATH
    there is put before the sandbox's own)."""
    q = shlex.quote
    extra = dict(variables or {})
    path = q(extra.pop("PATH", "")) + '"$PATH"'
    more = "".join(f" {name}={q(value)}" for name, value in extra.items())
    env = f"env -i PATH={path} HOME={q(home)} TMPDIR={q(tmp)} LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1{more}"
    return (
        f"cd {q(workdir)} && {env} {q(python)} -I {q(driver)} 3 4 3<&0 4>&1 </dev/null >>{q(log_path)} 2>&1"
    )


class SessionTransport:
    """Transport (repl/session.py) over one Daytona session command."""

    def __init__(
        self,
        process: Any,
        session_id: str,
        command_id: str,
        on_kill: Callable[[], None],
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ):
        self.process = process
        self.session_id = session_id
        self.command_id = command_id
        self._on_kill = on_kill
        self._send_lock = threading.Lock()
        self._lines: queue.Queue[bytes] = queue.Queue()
        self._pieces: list[str] = []  # the unfinished line, in pieces
        self._pending = 0  # its length
        self._max_bytes = max_message_bytes
        self._overflowed = False  # a line went over the bound: the rest of the stream is dropped
        self._seen = 0  # stdout characters received so far (to skip on a replayed stream)
        self._stderr = ""
        self._killed = threading.Event()
        self._stream_error: str | None = None
        self._code: int | None = None  # the command's exit status, once known
        threading.Thread(target=self._follow, daemon=True, name=f"daytona-log-{session_id}").start()
        self._reader = LineReader(lambda _limit: self._lines.get(), max_message_bytes)

    # ------------------------------------------------------------------ driver -> host

    def _follow(self) -> None:
        reconnects = 0
        try:
            while not self._killed.is_set():
                on_stdout = self._stdout_chunk(skip=self._seen)
                try:
                    asyncio.run(
                        self.process.get_session_command_logs_async(
                            self.session_id, self.command_id, on_stdout, self._stderr_chunk
                        )
                    )
                except DaytonaError as e:  # the SDK turns every failure (e.g. a dropped socket) into one
                    self._stream_error = str(e)
                    if reconnects < RECONNECTS and self._still_running():
                        reconnects += 1
                        log.info("log stream of %s broke (%s); reopening", self.session_id, e)
                        continue
                break  # the stream ended: the command exited
        finally:
            if self._pieces and not self._overflowed:
                self._lines.put("".join(self._pieces).encode("utf-8", "surrogateescape"))
            self._lines.put(b"")  # EOF for the LineReader

    def _stdout_chunk(self, skip: int) -> Callable[[str], None]:
        def on_stdout(text: str) -> None:
            nonlocal skip
            if skip:  # a reopened stream starts again at the beginning of the log
                drop = min(skip, len(text))
                skip -= drop
                text = text[drop:]
            if not text:
                return
            self._seen += len(text)
            if not self._overflowed:
                self._take(text)

        return on_stdout

    def _take(self, text: str) -> None:
        """Cut the stream into lines; the unfinished line is kept as pieces (no quadratic joins)
        and never past the bound: a longer line is handed on cut, and the reader reports it."""
        *complete, rest = text.split("\n")
        for piece in complete:
            line = "".join([*self._pieces, piece])
            self._pieces, self._pending = [], 0
            if not self._put_line(line):
                return
        if rest:
            self._pieces.append(rest)
            self._pending += len(rest)
            if self._pending > self._max_bytes:
                self._put_line("".join(self._pieces))

    def _put_line(self, line: str) -> bool:
        if len(line) > self._max_bytes:
            self._overflowed, self._pieces, self._pending = True, [], 0
            self._lines.put(line[: self._max_bytes + 1].encode("utf-8", "surrogateescape"))
            return False
        if line:
            self._lines.put(line.encode("utf-8", "surrogateescape") + b"\n")
        return True

    def _stderr_chunk(self, text: str) -> None:
        self._stderr = (self._stderr + text)[-STDERR_KEPT:]

    def _still_running(self) -> bool:
        try:
            return self._exit_code() is None
        except DaytonaError:  # the session or the sandbox is gone: not running
            return False

    def _exit_code(self) -> int | None:
        if self._code is None:
            cmd = self.process.get_session_command(
                self.session_id, self.command_id, request_timeout=REQUEST_TIMEOUT
            )
            self._code = getattr(cmd, "exit_code", None)
        return self._code

    # ------------------------------------------------------------------ Transport

    def send(self, msg: dict) -> None:
        data = json.dumps(msg) + "\n"  # ASCII only: survives any shell or log encoding
        if self._killed.is_set():
            raise SandboxError("the sandbox's REPL process exited")
        try:
            with self._send_lock:
                self.process.send_session_command_input(
                    self.session_id, self.command_id, data, request_timeout=REQUEST_TIMEOUT
                )
        except DaytonaError as e:  # gone, not found, or a broken connection
            status = self.describe_exit()
            reason = (
                _short(e)
                if status in ("still running", "") or status.startswith("status unknown")
                else status
            )
            raise SandboxError(f"the sandbox's REPL process exited ({reason})") from None

    def recv(self, timeout: float) -> dict | None:
        return self._reader.get(timeout)

    def kill(self) -> None:
        if self._killed.is_set():
            return
        self._killed.set()
        self._reader.close()
        self._on_kill()

    def describe_exit(self) -> str:
        try:
            code = self._exit_code()
        except DaytonaError as e:
            return f"status unknown: {_short(e)}"
        if code is None:
            return "still running"
        if code == 127:
            return "exit status 127: python3 or the driver was not found; the image needs python3"
        detail = self._stderr.strip().splitlines()[-1:] or (
            [self._stream_error] if self._stream_error else []
        )
        return f"exit status {code}" + (f": {detail[0][:300]}" if detail else "")


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__
