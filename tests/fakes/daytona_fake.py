"""A local, directory-backed fake of the Daytona SDK surface rlm-bot uses (daytona 0.2xx, sync).

Same method names, signatures, return types and error classes as the real SDK; the far side of
the network is replaced by a directory per sandbox and real processes:

- `FakeDaytona.create/list/get/delete`: a sandbox is `<root>/<id>/`, its user home is
  `<root>/<id>/home/daytona` (returned by `get_user_home_dir`, so every absolute path the client
  uses is a real host path inside the sandbox directory). Creation can be slowed down
  (`create_latency`) and made to fail (`failures`: exceptions raised, or callables run, by the
  next create() calls in order). Deleting a sandbox kills every process inside it.
- `fs.create_folder/upload_file/download_file`: paths must stay inside the sandbox.
- `process.exec`: `sh -c` with the sandbox's own environment (never the host's).
- snapshots: `sandbox.create_snapshot(name)` keeps a copy of the sandbox's files; a sandbox
  created from `CreateSandboxFromSnapshotParams(snapshot=name)` starts with that copy. Every fake
  sandbox lives in its own host directory where the real ones share one layout, so paths to the
  old home inside copied text files are rewritten to the new one. `snapshot.get/list/delete`.
- sessions: each command is a real `bash -c` process, in its own process group, whose stdin is
  an always-open pipe (`send_session_command_input`, a newline added when missing, echoed to the
  log unless `suppress_input_echo`), and whose stdout/stderr lines are appended to one log with
  the daemon's 3-byte stream prefixes. `get_session_command_logs_async` follows that log from its
  start, demultiplexed and decoded, in chunks of `log_chunk` characters that split lines anywhere;
  `drop_log_streams` makes that many streams break mid-way with a DaytonaError.
"""

from __future__ import annotations

import codecs
import datetime as dt
import inspect
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daytona import (
    CreateSandboxFromImageParams,
    CreateSandboxFromSnapshotParams,
    DaytonaConfig,
    DaytonaError,
    DaytonaNotFoundError,
    ExecuteResponse,
    ListSandboxesQuery,
    SessionExecuteRequest,
    SessionExecuteResponse,
)
from daytona.common.errors import (
    DaytonaConflictError,
    DaytonaFileNotFoundError,
    DaytonaForbiddenError,
    DaytonaGoneError,
    DaytonaTimeoutError,
)
from daytona.common.process import STDERR_PREFIX, STDOUT_PREFIX, SessionCommandLogsResponse

Failure = BaseException | Callable[["FakeDaytona", Any], None]


class FakeDaytona:
    def __init__(
        self,
        config: DaytonaConfig | None = None,
        *,
        root: Path,
        create_latency: float = 0.0,
        failures: list[Failure] | None = None,
        log_chunk: int = 7,
        drop_log_streams: int = 0,
        image_env: dict[str, str] | None = None,
        old_daemon: bool = False,
    ):
        self.config = config
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.create_latency = create_latency
        self.failures: list[Failure] = list(failures or [])
        self.log_chunk = log_chunk
        self.drop_log_streams = drop_log_streams
        self.image_env = dict(image_env or {})  # e.g. a PATH without python3: an unsuitable image
        self.old_daemon = old_daemon  # a daemon that ignores suppress_input_echo and echoes input
        self.request_timeouts: list[float | None] = []  # what each input request was bounded by
        self.sandboxes: dict[str, FakeSandbox] = {}
        self.created: list[Any] = []  # params of every successful create, in order
        self.create_calls = 0
        self.deleted: list[str] = []
        self.snapshot = FakeSnapshots(self)
        self.active_creates = 0
        self.max_active_creates = 0
        self.lock = threading.Lock()

    def create(
        self,
        params: CreateSandboxFromSnapshotParams | CreateSandboxFromImageParams | None = None,
        *,
        timeout: float = 60,
        on_snapshot_create_logs: Callable[[str], None] | None = None,
    ) -> FakeSandbox:
        params = params or CreateSandboxFromSnapshotParams(language="python")
        if not isinstance(params, CreateSandboxFromSnapshotParams | CreateSandboxFromImageParams):
            raise DaytonaError(f"Failed to create sandbox: unexpected params {type(params).__name__}")
        with self.lock:
            self.create_calls += 1
            self.active_creates += 1
            self.max_active_creates = max(self.max_active_creates, self.active_creates)
            failure = self.failures.pop(0) if self.failures else None
        try:
            if self.create_latency:
                time.sleep(min(self.create_latency, timeout or self.create_latency))
                if timeout and self.create_latency > timeout:
                    raise DaytonaTimeoutError(f"Failed to create sandbox: timed out after {timeout}s")
            if isinstance(failure, BaseException):
                raise failure
            if failure is not None:
                failure(self, params)
            return self.make_sandbox(params)
        finally:
            with self.lock:
                self.active_creates -= 1

    def make_sandbox(self, params: Any) -> FakeSandbox:
        image = getattr(params, "snapshot", None)
        if image and image.startswith("rlm-env-") and image not in self.snapshot.made:
            raise DaytonaNotFoundError(f"Failed to create sandbox: Snapshot {image} not found", 404)
        sandbox = FakeSandbox(self, uuid.uuid4().hex[:16], params)
        if image in self.snapshot.made:
            self.snapshot.restore(image, sandbox)
        with self.lock:
            self.sandboxes[sandbox.id] = sandbox
            self.created.append(params)
        return sandbox

    def list(
        self, query: ListSandboxesQuery | None = None, request_timeout: float | None = None
    ) -> Iterator[FakeSandbox]:
        wanted = (query.labels if query else None) or {}
        with self.lock:
            found = [s for s in self.sandboxes.values() if wanted.items() <= s.labels.items()]
        yield from found

    def get(self, sandbox_id_or_name: str, request_timeout: float | None = None) -> FakeSandbox:
        with self.lock:
            sandbox = self.sandboxes.get(sandbox_id_or_name)
        if sandbox is None:
            raise DaytonaNotFoundError(f"Failed to get sandbox: Sandbox {sandbox_id_or_name} not found", 404)
        return sandbox

    def delete(self, sandbox: FakeSandbox, timeout: float = 60, wait: bool = False) -> None:
        sandbox.delete(timeout, wait=wait)


class FakeSandbox:
    def __init__(self, fake: FakeDaytona, sandbox_id: str, params: Any):
        self._fake = fake
        self.id = sandbox_id
        self.name = sandbox_id
        self.params = params
        self.labels: dict[str, str] = dict(params.labels or {})
        self.user = "daytona"
        self.env = dict(params.env_vars or {})
        self.state = "started"
        self.created_at = dt.datetime.now(dt.timezone.utc).isoformat()
        self.root = fake.root / sandbox_id
        self.home = self.root / "home" / "daytona"
        self.tmp = self.root / "tmp"
        self.home.mkdir(parents=True)
        self.tmp.mkdir()
        self.fs = FakeFileSystem(self)
        self.process = FakeProcess(self)

    def environment(self) -> dict[str, str]:
        """What a process in the sandbox starts with: the image's basics plus params.env_vars."""
        base = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "TMPDIR": str(self.tmp),
            "DAYTONA_SANDBOX_ID": self.id,
        }
        return {**base, **self._fake.image_env, **self.env}

    def resolve(self, path: str) -> Path:
        full = Path(path) if path.startswith("/") else self.home / path
        full = Path(os.path.normpath(full))
        if full != self.root and self.root not in full.parents:
            raise DaytonaForbiddenError(f"path {path} is outside the sandbox", 403)
        return full

    def create_snapshot(self, name: str, timeout: float | None = 60) -> None:
        self._check_alive()
        self._fake.snapshot.capture(name, self)

    def get_user_home_dir(self) -> str:
        self._check_alive()
        return str(self.home)

    def refresh_data(self, request_timeout: float | None = None) -> None:
        self._check_alive()

    def _check_alive(self) -> None:
        if self.state == "destroyed":
            raise DaytonaNotFoundError(f"Sandbox {self.id} not found", 404)

    def delete(self, timeout: float | None = 60, wait: bool = False) -> None:
        with self._fake.lock:
            if self._fake.sandboxes.pop(self.id, None) is None:
                raise DaytonaNotFoundError(f"Sandbox {self.id} not found", 404)
            self._fake.deleted.append(self.id)
        self.state = "destroyed"
        self.process.terminate_all()
        kill_inside(self.root)
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class FakeSnapshot:
    id: str
    name: str
    state: str = "active"


class FakeSnapshots:
    """`Daytona.snapshot`: snapshots made from sandboxes (`create_snapshot`), kept as directories."""

    def __init__(self, fake: FakeDaytona):
        self._fake = fake
        self.made: dict[str, Path] = {}  # name -> copy of the sandbox's home
        self.homes: dict[str, str] = {}  # name -> the home path inside the copied files
        self.captures: list[str] = []

    def capture(self, name: str, sandbox: FakeSandbox) -> None:
        if name in self.made:
            raise DaytonaConflictError(f"Snapshot {name} already exists", 409)
        target = self._fake.root / "_snapshots" / name
        shutil.copytree(sandbox.home, target, symlinks=True)
        self.made[name], self.homes[name] = target, str(sandbox.home)
        self.captures.append(name)

    def restore(self, name: str, sandbox: FakeSandbox) -> None:
        old, new = self.homes[name].encode(), str(sandbox.home).encode()
        shutil.rmtree(sandbox.home)
        shutil.copytree(self.made[name], sandbox.home, symlinks=True)
        for path in sandbox.home.rglob("*"):
            if path.is_file() and not path.is_symlink() and old in (data := path.read_bytes()):
                mode = path.stat().st_mode
                path.chmod(mode | 0o200)
                path.write_bytes(data.replace(old, new))
                path.chmod(mode)

    def get(self, name: str) -> FakeSnapshot:
        if name not in self.made:
            raise DaytonaNotFoundError(f"Failed to get snapshot: Snapshot {name} not found", 404)
        return FakeSnapshot(id=name, name=name)

    def list(self, page: int | None = None, limit: int | None = None) -> Any:
        from types import SimpleNamespace

        return SimpleNamespace(items=[FakeSnapshot(id=n, name=n) for n in self.made], total=len(self.made))

    def delete(self, snapshot: FakeSnapshot | str) -> None:
        name = snapshot if isinstance(snapshot, str) else snapshot.name
        if self.made.pop(name, None) is None:
            raise DaytonaNotFoundError(f"Snapshot {name} not found", 404)
        shutil.rmtree(self._fake.root / "_snapshots" / name, ignore_errors=True)


def kill_inside(root: Path) -> None:
    """The container goes away: kill every process whose cwd or command line is inside root."""
    needle = str(root)
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{name}/cwd")
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if cwd.startswith(needle) or needle in cmdline:
            try:
                os.kill(int(name), signal.SIGKILL)
            except OSError:
                pass


class FakeFileSystem:
    def __init__(self, sandbox: FakeSandbox):
        self._sandbox = sandbox

    def create_folder(self, path: str, mode: str, request_timeout: float | None = None) -> None:
        self._sandbox._check_alive()
        target = self._sandbox.resolve(path)
        target.mkdir(parents=True, exist_ok=True)
        target.chmod(int(mode, 8))

    def upload_file(self, src: str | bytes, dst: str, timeout: int = 30 * 60) -> None:
        self._sandbox._check_alive()
        target = self._sandbox.resolve(dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = src if isinstance(src, bytes) else Path(src).read_bytes()
        target.write_bytes(data)

    def download_file(self, remote_path: str, timeout: int = 30 * 60) -> bytes:
        self._sandbox._check_alive()
        target = self._sandbox.resolve(remote_path)
        if not target.is_file():
            raise DaytonaFileNotFoundError(f"Failed to download file: {remote_path} not found", 404)
        return target.read_bytes()


@dataclass
class CommandInfo:
    id: str
    command: str
    exit_code: int | None = None


class FakeCommand:
    def __init__(self, sandbox: FakeSandbox, cmd_id: str, command: str, suppress_echo: bool):
        self.info = CommandInfo(cmd_id, command)
        self.suppress_echo = suppress_echo
        self.log = bytearray()
        self.changed = threading.Condition()
        self.proc = subprocess.Popen(
            ["bash", "-c", command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=sandbox.home,
            env=sandbox.environment(),
            start_new_session=True,
        )
        self._pumps = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, STDOUT_PREFIX), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, STDERR_PREFIX), daemon=True),
        ]
        for t in self._pumps:
            t.start()
        threading.Thread(target=self._reap, daemon=True).start()

    def _pump(self, stream, prefix: bytes) -> None:
        for line in iter(stream.readline, b""):
            self.append(prefix + line.rstrip(b"\n") + b"\n")

    def _reap(self) -> None:
        code = self.proc.wait()
        for t in self._pumps:
            t.join()
        with self.changed:
            self.info.exit_code = code if code >= 0 else 128 - code
            self.changed.notify_all()

    def append(self, data: bytes) -> None:
        with self.changed:
            self.log += data
            self.changed.notify_all()

    def send(self, data: str) -> None:
        if self.info.exit_code is not None:
            raise DaytonaGoneError(f"command has already completed with exit code {self.info.exit_code}", 410)
        if not data.endswith("\n"):
            data += "\n"
        try:
            self.proc.stdin.write(data.encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise DaytonaGoneError("session process is no longer accepting input", 410) from None
        if not self.suppress_echo:
            self.append(STDOUT_PREFIX + data.encode())

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait()


def demux(data: bytes) -> list[tuple[str, bytes]]:
    """Split a prefixed log into (stream, payload) pieces."""
    pieces: list[tuple[str, bytes]] = []
    i, stream, start = 0, "stdout", 0
    while i < len(data):
        mark = data[i : i + 3]
        if mark in (STDOUT_PREFIX, STDERR_PREFIX):
            if i > start:
                pieces.append((stream, data[start:i]))
            stream = "stdout" if mark == STDOUT_PREFIX else "stderr"
            i = start = i + 3
        else:
            i += 1
    if start < len(data):
        pieces.append((stream, data[start:]))
    return pieces


class FakeProcess:
    def __init__(self, sandbox: FakeSandbox):
        self._sandbox = sandbox
        self._sessions: dict[str, dict[str, FakeCommand]] = {}
        self._lock = threading.Lock()

    def exec(
        self,
        command: str,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        timeout: int | None = None,
    ) -> ExecuteResponse:
        sandbox = self._sandbox
        sandbox._check_alive()
        try:
            proc = subprocess.run(
                ["sh", "-c", command],
                cwd=sandbox.resolve(cwd) if cwd else sandbox.home,
                env={**sandbox.environment(), **(env or {})},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise DaytonaTimeoutError(f"Failed to execute command: timed out after {timeout}s") from None
        out = proc.stdout.decode("utf-8", "replace")
        return ExecuteResponse(exit_code=proc.returncode, result=out)

    def _command(self, session_id: str, command_id: str) -> FakeCommand:
        self._sandbox._check_alive()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                raise DaytonaNotFoundError("session not found", 404)
            if command_id not in session:
                raise DaytonaNotFoundError("command not found", 404)
            return session[command_id]

    def create_session(self, session_id: str, request_timeout: float | None = None) -> None:
        self._sandbox._check_alive()
        with self._lock:
            if session_id in self._sessions:
                raise DaytonaConflictError("session already exists", 409)
            self._sessions[session_id] = {}

    def execute_session_command(
        self, session_id: str, req: SessionExecuteRequest, timeout: int | None = None
    ) -> SessionExecuteResponse:
        self._sandbox._check_alive()
        with self._lock:
            if session_id not in self._sessions:
                raise DaytonaNotFoundError("session not found", 404)
            suppress = bool(req.suppress_input_echo) and not self._sandbox._fake.old_daemon
            cmd = FakeCommand(self._sandbox, uuid.uuid4().hex, req.command, suppress)
            self._sessions[session_id][cmd.info.id] = cmd
        if req.run_async:
            return SessionExecuteResponse.model_construct(cmd_id=cmd.info.id)
        with cmd.changed:
            cmd.changed.wait_for(lambda: cmd.info.exit_code is not None, timeout)
        logs = self.get_session_command_logs(session_id, cmd.info.id)
        return SessionExecuteResponse.model_construct(
            cmd_id=cmd.info.id,
            output=logs.output,
            stdout=logs.stdout,
            stderr=logs.stderr,
            exit_code=cmd.info.exit_code,
        )

    def get_session_command(
        self, session_id: str, command_id: str, request_timeout: float | None = None
    ) -> CommandInfo:
        return self._command(session_id, command_id).info

    def get_session_command_logs(
        self, session_id: str, command_id: str, request_timeout: float | None = None
    ) -> SessionCommandLogsResponse:
        cmd = self._command(session_id, command_id)
        with cmd.changed:
            data = bytes(cmd.log)
        parts = {"stdout": b"", "stderr": b""}
        for stream, payload in demux(data):
            parts[stream] += payload
        text = {k: v.decode("utf-8", "replace") for k, v in parts.items()}
        return SessionCommandLogsResponse(output=text["stdout"] + text["stderr"], **text)

    async def get_session_command_logs_async(
        self, session_id: str, command_id: str, on_stdout, on_stderr
    ) -> None:
        cmd = self._command(session_id, command_id)
        fake = self._sandbox._fake
        with fake.lock:
            drop = fake.drop_log_streams > 0
            fake.drop_log_streams -= 1 if drop else 0
        decoders = {s: codecs.getincrementaldecoder("utf-8")("replace") for s in ("stdout", "stderr")}
        handlers = {"stdout": on_stdout, "stderr": on_stderr}
        pos, delivered = 0, 0
        while True:
            with cmd.changed:
                cmd.changed.wait_for(
                    lambda seen=pos: (
                        len(cmd.log) > seen
                        or cmd.info.exit_code is not None
                        or self._sandbox.state == "destroyed"
                    ),
                    timeout=0.5,
                )
                data, done = bytes(cmd.log[pos:]), cmd.info.exit_code is not None
            if self._sandbox.state == "destroyed":
                return
            pos += len(data)
            # Only whole records are demultiplexed: a record always ends with a newline.
            cut = data.rfind(b"\n") + 1 if not done else len(data)
            pos -= len(data) - cut
            for stream, payload in demux(data[:cut]):
                text = decoders[stream].decode(payload)
                for i in range(0, len(text), fake.log_chunk):
                    if drop and delivered >= 3:
                        raise DaytonaError("WebSocket closed unexpectedly (close code 1006)")
                    result = handlers[stream](text[i : i + fake.log_chunk])
                    if inspect.isawaitable(result):
                        await result
                    delivered += 1
            if done and pos >= len(cmd.log):
                return

    def send_session_command_input(
        self, session_id: str, command_id: str, data: str, request_timeout: float | None = None
    ) -> None:
        self._sandbox._fake.request_timeouts.append(request_timeout)
        self._command(session_id, command_id).send(data)

    def delete_session(self, session_id: str, request_timeout: float | None = None) -> None:
        self._sandbox._check_alive()
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is None:
            raise DaytonaNotFoundError("session not found", 404)
        for cmd in session.values():
            cmd.kill()

    def terminate_all(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            for cmd in session.values():
                cmd.kill()
