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

Entries are keyed by the repository's identity too (SetupSpec.scope), so no repository ever gets
another's environment. An environment that must not be shared (setup on an untrusted commit, or an
untrusted run without bubblewrap, whose agents could write into it) is built in a `run-*` entry of
its own, found by no key, and removed when the rollout releases it.

The setup runs in a cgroup like an agent's sandbox (processes, memory), its network is its own
(setup_network.py), and what it writes (environment, checkout, log) is measured while it runs:
past `sandbox.setup_disk_mb` it is stopped and the entry removed.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from ...config import Config
from ...environment import (
    CA_IN_SANDBOX,
    CHECKOUT_IN_SANDBOX,
    ENV_IN_SANDBOX,
    LOG_KEPT,
    SETUP_CANCELLED,
    SETUP_DISK_FULL,
    SETUP_FAILED,
    SETUP_MEMORY_CAP,
    SETUP_TIMED_OUT,
    Environment,
    SetupFailed,
    SetupSpec,
    failed_command,
    failure_cause,
    layout,
    python_ok,
    tail,
)
from ...repo import PreparedRepo
from ...status import SetupStatus
from ..environments import PRIVATE, envs_root, lock_entry, prune
from .checkout.copies import checkout
from .checkout.setup_layer import capture
from .inherit import inherited
from .isolation import cgroups
from .isolation.bwrap import SANDBOX_PATH, BwrapOptions, bwrap_argv, python_exe, write_etc
from .isolation.setup_network import NAMESERVER, NO_NETWORK, NetworkUnavailable, SetupNetwork

log = logging.getLogger(__name__)
POLL = 0.1
LAYER = "layer"  # beside env/: the files setup generated in its checkout (checkout/setup_layer.py)
DISK_POLL = 0.5  # seconds between two measures of what setup wrote (longer when measuring is slow)
DISK_FULL = -1  # _run's code when setup was stopped at its disk cap


class LocalEnvironments:
    """The environment cache of one rollout's provider."""

    def __init__(self, cache_root: Path, keep: int):
        self.root = envs_root(cache_root)
        self.keep = keep
        self._fd: int | None = None
        self._private: Path | None = None  # this rollout's own entry, removed on release
        self.host_dir: Path | None = None  # the environment in use, on the host
        self.limits: tuple[int, int] | None = None  # (processes, memory bytes) of setup's cgroup
        self._failure_note = ""  # what else a failed setup's message says (memory cap, no network)
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
        self.root.mkdir(parents=True, exist_ok=True)
        repo = repo.at(spec.commit or repo.commit)  # setup's commit (a fork's base, never its head)
        if not spec.shared or (options is None and not repo.trusted):
            return self._build_private(spec, key, repo, options, path, cancel)
        entry = self.root / key[:32]
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

    def _build_private(
        self,
        spec: SetupSpec,
        key: str,
        repo: PreparedRepo,
        options: BwrapOptions | None,
        path: str,
        cancel: threading.Event,
    ) -> Environment:
        """An environment for this rollout alone: built in an entry no key names, never reused,
        removed on release (and by pruning if this process dies first)."""
        entry = self.root / f"{PRIVATE}{uuid.uuid4().hex}"
        fd = lock_entry(entry.with_name(entry.name + ".lock"), fcntl.LOCK_EX)
        self._fd, self._private = fd, entry
        self._build(spec, key, entry, repo, options, path, cancel)
        self.host_dir = entry / "env"
        info = json.loads((entry / "ready.json").read_text())
        return self._environment(key, info, options is not None, cached=False)

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
            if options is not None and repo.store is not None:  # history and tags, nothing later
                options.ro_binds.append((str(repo.store), str(repo.store)))
            status, code = self._run(spec, options, path, env_dir, co, admin, work, log_path, cancel)
            log = _read_tail(log_path)
            duration = time.monotonic() - started
            if status is SetupStatus.OK and _disk_usage(entry) > (spec.disk_bytes or _UNLIMITED):
                status, code = SetupStatus.FAILED, DISK_FULL
            if status is not SetupStatus.OK:
                message = {
                    SetupStatus.FAILED: lambda: (
                        SETUP_DISK_FULL.format(
                            mb=(spec.disk_bytes or 0) // 2**20, tail=tail(log) or "(empty)"
                        )
                        if code == DISK_FULL
                        else SETUP_FAILED.format(
                            code=code,
                            command=failed_command(log),
                            cause=failure_cause(log, spec.network),
                            tail=tail(log) or "(empty)",
                        )
                        + self._failure_note
                    ),
                    SetupStatus.TIMEOUT: lambda: SETUP_TIMED_OUT.format(
                        timeout=spec.timeout, tail=tail(log) or "(empty)"
                    ),
                    SetupStatus.CANCELLED: lambda: SETUP_CANCELLED,
                }[status]()
                shutil.rmtree(entry, ignore_errors=True)
                raise SetupFailed(message, status, tail(log), duration)
            layer_files, layer_skipped = capture(co, admin, entry / LAYER)
            info = {
                "layer_files": layer_files,
                "layer_skipped": layer_skipped,
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
        network: SetupNetwork | None = None
        no_network = ""
        if options is not None:
            options.etc_dir = write_etc(work / "etc")
            options.workdir = CHECKOUT_IN_SANDBOX
            options.ro_binds.append((str(admin), str(admin)))
            options.rw_binds += [(str(co), CHECKOUT_IN_SANDBOX), (str(env_dir), ENV_IN_SANDBOX)]
            options.rw_binds += [(str(co), alias) for alias in self.aliases]  # inherited editable installs
            options.env.update(RLM_ENV=ENV_IN_SANDBOX, PATH=env_path)
            if spec.ca_bundle:
                options.ro_binds.append((spec.ca_bundle, CA_IN_SANDBOX))
            options.env.update(spec.variables(CA_IN_SANDBOX if spec.ca_bundle else None))
            options.network = False
            if spec.network:  # its own network namespace, never the host's (setup_network.py)
                try:
                    network = SetupNetwork()
                    (options.etc_dir / "resolv.conf").write_text(f"nameserver {NAMESERVER}\n")
                    options.network, options.resolv_conf = True, str(options.etc_dir / "resolv.conf")
                except (NetworkUnavailable, OSError, subprocess.SubprocessError) as e:
                    no_network = NO_NETWORK.format(reason=str(e) or type(e).__name__)
                    log.warning("%s", no_network)
            argv = bwrap_argv(options, ["sh", "-c", spec.script()])
            if network is not None:
                argv = network.wrap(argv)
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
                **spec.variables(spec.ca_bundle),
            }
        group = None
        if self.limits is not None:  # processes and memory capped as in an agent's sandbox
            group = cgroups.create(cgroups.group_name(f"setup-{uuid.uuid4().hex[:8]}"), *self.limits)
            if group is not None:
                argv = group.wrap(argv)
        self._failure_note = f" {no_network.removeprefix('rlm-setup: ')}" if no_network else ""
        deadline = time.monotonic() + spec.timeout
        entry = env_dir.parent
        next_measure = time.monotonic() + DISK_POLL
        with open(log_path, "wb") as log_file:
            if no_network:
                log_file.write(no_network.encode() + b"\n")
                log_file.flush()
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    cwd=cwd,
                    env=env,
                    start_new_session=True,
                )
            except BaseException:
                if network is not None:
                    network.close()
                if group is not None:
                    group.remove()
                raise
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
                    if spec.disk_bytes and time.monotonic() >= next_measure:
                        began = time.monotonic()
                        if _disk_usage(entry) > spec.disk_bytes:
                            return SetupStatus.FAILED, DISK_FULL
                        next_measure = time.monotonic() + max(DISK_POLL, 4 * (time.monotonic() - began))
            finally:
                if proc.poll() is None:
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except OSError:
                        pass
                    proc.wait()
                if group is not None:
                    if group.memory_exhausted():
                        self._failure_note += " " + SETUP_MEMORY_CAP.format(mb=self.limits[1] // 2**20)
                    group.remove()
                if network is not None:
                    network.close()

    def release(self) -> None:
        if self._private is not None:  # this rollout's own environment goes with it
            shutil.rmtree(self._private, ignore_errors=True)
            self._private.with_name(self._private.name + ".lock").unlink(missing_ok=True)
            self._private = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def prune(self) -> list[str]:
        """Remove environments beyond the `keep` most recently used, and unfinished ones, unless
        a rollout holds them. Returns the removed keys."""
        return prune(self.root, self.keep)


_UNLIMITED = 2**62


def _disk_usage(root: Path) -> int:
    """Bytes of disk under `root` (allocated blocks, so a sparse file counts what it holds), not
    following symlinks."""
    total, stack = 0, [str(root)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += st.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            continue
    return total


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
        self.cache.limits = (config.sandbox.max_processes, config.sandbox.memory_mb * 1024 * 1024)
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
        """An agent's sandbox (its checkout is at CHECKOUT_IN_SANDBOX, where setup's was):
        $RLM_ENV read-only at its fixed path, the inherited prefix read-only at its own, the
        checkout also at the inherited checkout's path, so editable installs resolve to it; PATH
        and variables."""
        inherit, host = self.inherited, self.cache.host_dir
        if inherit is not None:
            options.ro_binds += [(path, path) for path in inherit.binds]
            if inherit.checkout:
                options.rw_binds.append((workdir, inherit.checkout))
            options.path_prefix.insert(0, inherit.bin)
        if self.built is not None and host is not None:
            options.ro_binds.append((str(host), ENV_IN_SANDBOX))
            options.path_prefix[:0] = list(self.built.path_dirs)
            options.env.update(self.built.variables())
        return options

    def variables(self, sandbox_path: str) -> dict[str, str]:
        """Without bubblewrap: what the driver's environment gets."""
        out = self.built.variables() if self.built else {}
        return {**out, "PATH": self.path(sandbox_path)}

    def layer(self) -> Path | None:
        """What setup generated in its checkout, for every agent's checkout; None: nothing."""
        host = self.cache.host_dir
        if self.built is None or host is None:
            return None
        layer = host.parent / LAYER
        return layer if layer.is_dir() and any(layer.iterdir()) else None

    def python(self) -> str | None:
        """The setup venv's interpreter when it runs, else the inherited one: the REPL then
        imports the project's dependencies. None: the base interpreter."""
        if self.built is not None and self.built.python:
            return self.built.python
        return self.inherited.python if self.inherited else None

    def release(self) -> None:
        self.cache.release()
