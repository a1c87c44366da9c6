"""The local backend's ready environment (see bot/rlm/environment.py): built once in a setup sandbox,
cached under `<cache>/envs/<key>/`, bound read-only into every agent's sandbox.

Under bubblewrap the setup sandbox is the agents' sandbox with three differences: the network
is there when enabled (and only then), `$RLM_ENV` (`ENV_IN_SANDBOX`) is writable, and the
checkout is a private copy bound at `CHECKOUT_IN_SANDBOX`, thrown away afterwards, so nothing
setup writes there reaches a patch. Agents get `$RLM_ENV` read-only at the same path and their own
checkout bound at `CHECKOUT_IN_SANDBOX` too, so an editable install made by setup resolves to each
agent's own files. Without bubblewrap, `$RLM_ENV` is the cache directory itself and the
setup's checkout is kept beside it (an editable install then points there; the warning about
running without isolation already stands).

`SharedEnvironment` is what a provider holds: the built environment and the host's inherited
one (inherit.py), turned into every agent sandbox's binds, PATH and interpreter.

Each entry has a lock file: a builder holds it exclusively, every rollout using the entry holds
it shared until it ends, and pruning removes only entries whose lock it can take exclusively.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ...config import Config
from ...environment import (
    CHECKOUT_IN_SANDBOX,
    ENV_IN_SANDBOX,
    LOG_KEPT,
    SETUP_CANCELLED,
    SETUP_FAILED,
    SETUP_TIMED_OUT,
    Environment,
    SetupFailed,
    SetupSpec,
    SetupStatus,
    failed_command,
    layout,
    python_ok,
    tail,
)
from ...repo import PreparedRepo
from ..environments import envs_root, lock_entry, prune
from .checkout.copies import checkout
from .inherit import inherited
from .isolation.bwrap import SANDBOX_PATH, BwrapOptions, bwrap_argv, python_exe, write_etc

POLL = 0.1


class LocalEnvironments:
    """The environment cache of one rollout's provider."""

    def __init__(self, cache_root: Path, keep: int):
        self.root = envs_root(cache_root)
        self.keep = keep
        self._fd: int | None = None
        self.host_dir: Path | None = None  # the environment in use, on the host
        self.aliases: list[str] = []  # more paths at which the setup sandbox sees its checkout

    def get(
        self,
        spec: SetupSpec,
        base: str,
        repo: PreparedRepo,
        options: BwrapOptions | None,
        path: str,
        cancel: threading.Event,
    ) -> Environment:
        """The environment for `spec`, built now if the cache has none. `options`: the setup
        sandbox's bwrap view before its checkout and $RLM_ENV (None: no isolation); `path` its
        PATH without the environment's directories."""
        key = spec.key(base)
        entry = self.root / key[:32]
        self.root.mkdir(parents=True, exist_ok=True)
        lock = entry.with_name(entry.name + ".lock")
        fd = lock_entry(lock, fcntl.LOCK_SH)
        if not (entry / "ready.json").is_file():
            fcntl.flock(fd, fcntl.LOCK_UN)
            while True:  # another rollout may be building it: wait, honouring cancellation
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if cancel.wait(POLL):
                        os.close(fd)
                        raise SetupFailed(SETUP_CANCELLED, SetupStatus.CANCELLED) from None
            try:
                if not (entry / "ready.json").is_file():
                    self._build(spec, key, entry, repo, options, path, cancel)
                    built = True
                else:
                    built = False
            except BaseException:
                os.close(fd)
                raise
            fcntl.flock(fd, fcntl.LOCK_SH)  # downgrade: in use by this rollout
        else:
            built = False
        self._fd = fd
        info = json.loads((entry / "ready.json").read_text())
        os.utime(entry / "ready.json")  # last used, for pruning
        self.host_dir = entry / "env"
        if built:
            self.prune()
        return self._environment(key, info, options is not None, cached=not built)

    def _environment(self, key: str, info: dict, isolated: bool, cached: bool) -> Environment:
        assert self.host_dir is not None
        root = ENV_IN_SANDBOX if isolated else str(self.host_dir)
        host = self.host_dir
        dirs, python, node = layout(root, lambda rel: os.path.lexists(host / rel), info["python_ok"])
        return Environment(
            key=key,
            path=root,
            path_dirs=dirs,
            python=python,
            node_path=node,
            cached=cached,
            duration=info["duration"],
            log_tail=info["log_tail"],
            commands=tuple(info["commands"]),
        )

    def _build(
        self,
        spec: SetupSpec,
        key: str,
        entry: Path,
        repo: PreparedRepo,
        options: BwrapOptions | None,
        path: str,
        cancel: threading.Event,
    ) -> None:
        shutil.rmtree(entry, ignore_errors=True)  # a crashed or failed earlier attempt
        env_dir = entry / "env"
        env_dir.mkdir(parents=True)
        work = Path(tempfile.mkdtemp(prefix="setup-", dir=entry))
        co, admin = (
            (entry / "checkout", entry / "checkout.git")
            if options is None
            else (work / "co", work / "co.git")
        )
        log_path = entry / "setup.log"
        started = time.monotonic()
        try:
            checkout(repo, co, admin)
            status, code = self._run(spec, options, path, env_dir, co, admin, work, log_path, cancel)
            log = _read_tail(log_path)
            duration = time.monotonic() - started
            if status is not SetupStatus.OK:
                message = {
                    SetupStatus.FAILED: lambda: SETUP_FAILED.format(
                        code=code, command=failed_command(log), tail=tail(log) or "(empty)"
                    ),
                    SetupStatus.TIMEOUT: lambda: SETUP_TIMED_OUT.format(
                        timeout=spec.timeout, tail=tail(log) or "(empty)"
                    ),
                    SetupStatus.CANCELLED: lambda: SETUP_CANCELLED,
                }[status]()
                shutil.rmtree(entry, ignore_errors=True)
                raise SetupFailed(message, status, tail(log), duration)
            info = {
                "key": key,
                "commands": list(spec.commands),
                "duration": duration,
                "log_tail": tail(log),
                "python_ok": python_ok(log),
                "created": time.time(),
            }
            (entry / "ready.json.tmp").write_text(json.dumps(info))
            (entry / "ready.json.tmp").replace(entry / "ready.json")
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _run(
        self,
        spec: SetupSpec,
        options: BwrapOptions | None,
        path: str,
        env_dir: Path,
        co: Path,
        admin: Path,
        work: Path,
        log_path: Path,
        cancel: threading.Event,
    ) -> tuple[SetupStatus, int | None]:
        env_path = f"{ENV_IN_SANDBOX}/venv/bin:{ENV_IN_SANDBOX}/bin:{path}"
        if options is not None:
            options.etc_dir = write_etc(work / "etc")  # bwrap_argv adds resolv.conf with the network
            options.workdir = CHECKOUT_IN_SANDBOX
            options.ro_binds.append((str(admin), str(admin)))
            options.rw_binds += [(str(co), CHECKOUT_IN_SANDBOX), (str(env_dir), ENV_IN_SANDBOX)]
            options.rw_binds += [(str(co), alias) for alias in self.aliases]  # inherited editable installs
            options.env.update(RLM_ENV=ENV_IN_SANDBOX, PATH=env_path)
            options.network = spec.network
            argv = bwrap_argv(options, ["sh", "-c", spec.script()])
            cwd, env = str(co), {"PATH": path, "LANG": "C.UTF-8"}
        else:
            home = work / "home"
            home.mkdir()
            argv, cwd = ["sh", "-c", spec.script()], str(co)
            env = {
                "PATH": env_path.replace(ENV_IN_SANDBOX, str(env_dir)),
                "HOME": str(home),
                "LANG": "C.UTF-8",
                "RLM_ENV": str(env_dir),
                "TMPDIR": str(home),
            }
        deadline = time.monotonic() + spec.timeout
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )
            try:
                while True:
                    try:
                        code = proc.wait(timeout=POLL)
                        return (SetupStatus.OK if code == 0 else SetupStatus.FAILED), code
                    except subprocess.TimeoutExpired:
                        pass
                    if cancel.is_set():
                        return SetupStatus.CANCELLED, None
                    if time.monotonic() > deadline:
                        return SetupStatus.TIMEOUT, None
            finally:
                if proc.poll() is None:
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except OSError:
                        pass
                    proc.wait()

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def prune(self) -> list[str]:
        """Remove environments beyond the `keep` most recently used, and unfinished ones, unless
        a rollout holds them. Returns the removed keys."""
        return prune(self.root, self.keep)


def _read_tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - LOG_KEPT))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


class SharedEnvironment:
    """A local provider's view of both prepared environments: what setup built ($RLM_ENV) and what
    the host prepared (sandbox.inherit): the bwrap arguments, variables and interpreter of every
    agent's sandbox."""

    def __init__(self, config: Config):
        self.cache = LocalEnvironments(config.cache_root(), config.sandbox.setup_cache_keep)
        self.tmp_bytes = config.sandbox.disk_mb * 1024 * 1024
        self.built: Environment | None = None
        self.inherited = inherited(config)

    def setup(
        self, spec: SetupSpec, cancel: threading.Event, repo: PreparedRepo, isolated: bool
    ) -> Environment:
        """Build or reuse the environment; under bubblewrap when `isolated`."""
        inherit = self.inherited
        python = python_exe()
        base = f"local:{'bwrap' if isolated else 'plain'}:{os.path.realpath(python)}:{sys.version}:{platform.machine()}"
        base += f":{inherit.prefix}" if inherit else ""
        options = None
        if isolated:
            options = BwrapOptions(
                workdir=CHECKOUT_IN_SANDBOX, etc_dir=Path("/etc"), tmp_bytes=self.tmp_bytes
            )
            if inherit:
                options.ro_binds += [(path, path) for path in inherit.binds]
                self.cache.aliases = [inherit.checkout] if inherit.checkout else []
        path = ":".join([*([inherit.bin] if inherit else []), os.path.dirname(python), SANDBOX_PATH])
        self.built = self.cache.get(spec, base, repo, options, path, cancel)
        return self.built

    def path(self, sandbox_path: str) -> str:
        """Agents' PATH: $RLM_ENV's directories, the inherited bin, the sandbox's own."""
        path = f"{self.inherited.bin}:{sandbox_path}" if self.inherited else sandbox_path
        return self.built.path_value(path) if self.built else path

    def extend(self, options: BwrapOptions, workdir: str) -> BwrapOptions:
        """An agent's sandbox: $RLM_ENV read-only at its fixed path, the inherited prefix
        read-only at its own, the agent's checkout also at CHECKOUT_IN_SANDBOX (and at the
        inherited checkout's path), so editable installs resolve to it; PATH and variables."""
        inherit, host = self.inherited, self.cache.host_dir
        if inherit is not None:
            options.ro_binds += [(path, path) for path in inherit.binds]
            if inherit.checkout:
                options.rw_binds.append((workdir, inherit.checkout))
            options.path_prefix.insert(0, inherit.bin)
        if self.built is not None and host is not None:
            options.ro_binds.append((str(host), ENV_IN_SANDBOX))
            options.rw_binds.append((workdir, CHECKOUT_IN_SANDBOX))
            options.path_prefix[:0] = list(self.built.path_dirs)
            options.env.update(self.built.variables())
        return options

    def variables(self, sandbox_path: str) -> dict[str, str]:
        """Without bubblewrap: what the driver's environment gets."""
        out = self.built.variables() if self.built else {}
        return {**out, "PATH": self.path(sandbox_path)}

    def python(self) -> str | None:
        """The setup venv's interpreter when it runs, else the inherited one: the REPL then
        imports the project's dependencies. None: the base interpreter."""
        if self.built is not None and self.built.python:
            return self.built.python
        return self.inherited.python if self.inherited else None

    def release(self) -> None:
        self.cache.release()
