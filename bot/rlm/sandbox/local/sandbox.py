"""One agent's local sandbox: its checkout, its driver under bubblewrap (or a plain process), its
cgroup, and the host-computed patch.

The sandbox gets what it needs from its provider through `SandboxHost` (provider.py implements it),
so it never reaches into the provider's internals.
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from ...config import Config
from ...environment import CHECKOUT_IN_SANDBOX
from ...errors import SandboxError
from ...owned import kill_group, process_token
from ...repl.session import DRIVER_PATH
from ...repo import PreparedRepo
from ..base import DriverSlot, driver_limits
from .checkout import Checkout
from .env import SharedEnvironment
from .isolation import cgroups
from .isolation.bwrap import SANDBOX_PATH, BwrapOptions, bwrap_argv, python_exe, user_namespaces
from .transport import PipeTransport

DRIVER_IN_SANDBOX = "/opt/rlm/driver.py"
MEMORY_CAP_HIT = "the sandbox reached its memory cap of {mb} MB (sandbox.memory_mb)"
PROCESS_CAP_HIT = "the sandbox reached its cap of {n} processes (sandbox.max_processes)"
# bwrap --die-with-parent (PR_SET_PDEATHSIG) fires when the THREAD that started it exits, so every
# driver is started from this one thread, which lives as long as the process.
_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rlm-spawner")


class SandboxHost(Protocol):
    """What a local sandbox needs from the provider that made it."""

    config: Config
    repo: PreparedRepo
    root: Path  # the rollout's private directory (driver homes and logs)
    etc: Path | None  # the minimal /etc bwrap shows, or None without bwrap
    env: SharedEnvironment
    use_bwrap: bool

    def record_owner(self) -> None:
        """Record the drivers now running, for reaping after a kill."""
        ...

    def forget(self, sandbox: LocalSandbox) -> None:
        """The sandbox is gone: stop tracking it."""
        ...


class LocalSandbox:
    def __init__(self, provider: SandboxHost, agent_id: str, checkout: Checkout):
        self.provider = provider
        self.id = checkout.path.name
        self.agent_id = agent_id
        self.checkout = checkout
        self.path = checkout.path
        self.workdir = str(checkout.path)
        self.pid: int | None = None
        self.token: list | None = None  # the driver's pid + start time, for reaping
        self._driver = DriverSlot()
        sandbox = provider.config.sandbox
        self.cgroup = cgroups.create(
            cgroups.group_name(self.id), sandbox.max_processes, sandbox.memory_mb * 1024 * 1024
        )

    # ------------------------------------------------------------------ driver

    def bwrap_options(self) -> BwrapOptions:
        """What this sandbox's bwrap sees; extend here (e.g. a shared read-only environment)."""
        # Only the commit's own history (repo.store), never the whole cache with later commits.
        objects = str(self.provider.repo.store or self.provider.repo.cache)
        options = BwrapOptions(
            workdir=CHECKOUT_IN_SANDBOX,  # one path for the checkout: cwd, tracebacks, tools, setup's installs
            etc_dir=self.provider.etc,
            ro_binds=[
                (str(DRIVER_PATH), DRIVER_IN_SANDBOX),
                (objects, objects),
                *((str(p), str(p)) for p in self.checkout.ro_binds),
            ],
            rw_binds=[(self.workdir, CHECKOUT_IN_SANDBOX)],
            tmp_bytes=self.provider.config.sandbox.disk_mb * 1024 * 1024,
            user_namespace=bool(user_namespaces()),
        )
        return self.provider.env.extend(options, self.workdir)  # setup's and the host's environments

    def _argv(self, fds: tuple[int, int]) -> list[str]:
        python = self.provider.env.python() or python_exe()  # the environment's venv, if it runs
        if self.provider.use_bwrap:
            command = [python, "-I", DRIVER_IN_SANDBOX, str(fds[0]), str(fds[1])]
            return self.checkout.launch(bwrap_argv(self.bwrap_options(), command))
        return self.checkout.launch([python, "-I", str(DRIVER_PATH), str(fds[0]), str(fds[1])])

    def start_driver(self) -> PipeTransport:
        transport = self._driver.replace(self._spawn)
        self.provider.record_owner()
        return transport

    def _spawn(self) -> PipeTransport:
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        fds = (to_r, from_w)
        argv = self._argv(fds)
        if self.cgroup is not None:  # a shell joins the group, then becomes bwrap (no preexec_fn:
            argv = self.cgroup.wrap(argv)  # it would make every spawn a full fork of the host)
        home = self.provider.root / f"{self.id}.home"
        home.mkdir(mode=0o700, exist_ok=True)
        env = {"PATH": SANDBOX_PATH, "HOME": str(home), "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
        if not self.provider.use_bwrap:
            env.update(self.provider.env.variables(SANDBOX_PATH))
        log_path = self.provider.root / f"{self.id}.driver.log"
        try:
            with open(log_path, "ab") as log_file:
                proc = _SPAWNER.submit(
                    subprocess.Popen,
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=log_file,
                    cwd=self.workdir,
                    env=env,
                    pass_fds=fds,
                    start_new_session=True,
                ).result()
        except (OSError, subprocess.SubprocessError) as e:
            for fd in (to_r, to_w, from_r, from_w):
                os.close(fd)
            raise SandboxError(f"could not start the sandbox's REPL: {e}") from None
        os.close(to_r)
        os.close(from_w)
        self.pid = proc.pid
        self.token = token = process_token(proc.pid)
        limit = self.provider.config.sandbox.max_message_mb * 1024 * 1024
        return PipeTransport(
            proc,
            to_w,
            from_r,
            on_kill=lambda: self._stop(proc, token),
            max_message_bytes=limit,
            explain=self.cap_hit,
        )

    def cap_hit(self) -> str | None:
        """Which of the cgroup's caps the sandbox has hit, as a sentence for the model."""
        if self.cgroup is None:
            return None
        sandbox = self.provider.config.sandbox
        hits = []
        if self.cgroup.memory_exhausted():
            hits.append(MEMORY_CAP_HIT.format(mb=sandbox.memory_mb))
        if self.cgroup.processes_exhausted():
            hits.append(PROCESS_CAP_HIT.format(n=sandbox.max_processes))
        return "; ".join(hits) or None

    def init_limits(self) -> dict:
        limits = driver_limits(self.provider.config)
        if self.provider.use_bwrap and self.cgroup is None:
            # No cgroup: RLIMIT_NPROC counts the processes of the sandbox's own user namespace
            # (not when the host is root: the kernel exempts uid 0, see README).
            limits["processes"] = self.provider.config.sandbox.max_processes
        return limits

    def _stop(self, proc: subprocess.Popen, token: list) -> None:
        """Kill the driver's whole process group (under bwrap: its whole PID namespace), every
        process left in its cgroup, and reap it."""
        kill_group(token)
        if self.cgroup is not None and token == self.token:  # not a later driver's processes
            self.cgroup.kill()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    # ------------------------------------------------------------------ results and cleanup

    def diff(self) -> str:
        repo = self.provider.repo
        return self.checkout.diff(repo.cache, repo.commit, self.provider.config.rlm.max_patch_bytes)

    def destroy(self) -> None:
        if not self._driver.close():
            return
        if self.cgroup is not None:
            self.cgroup.remove()
        self.checkout.remove()
        self.provider.forget(self)
