"""The local sandbox: a checkout of the pinned commit per agent, the driver under bubblewrap.

Under bwrap (see bwrap.py for exactly what it sees) the driver runs as an unprivileged user with
no capabilities, in its own namespaces, with only its checkout and a size-limited /tmp writable;
where the host can, a cgroup per sandbox caps its processes and aggregate memory (cgroups.py).
Without bwrap it is a plain process with a scrubbed environment and resource limits, and a
warning says so.

Each agent's checkout is a copy-on-write overlay over one shared checkout of the commit
(overlay.py) where the kernel allows it, else a full copy (checkouts.py); `sandbox.checkouts`
forces either. Every rollout owns a private directory under `<root>/sandboxes/<rollout_id>` with
an owner file; a later start removes the directories of owners that are provably gone (roots.py).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ...config import Config
from ...environment import Environment, SetupSpec
from ...errors import SandboxError
from ...owned import (
    NotOwned,
    kill_group,
    private_dir,
    process_token,
    remove_owned,
)
from ...repl.session import DRIVER_PATH, PipeTransport
from ...repo import PreparedRepo
from ..base import DriverSlot, driver_limits
from .checkout import overlay
from .checkout import shared as shared_checkouts
from .checkout.copies import Checkout, Checkouts, CopiedCheckout
from .env import SharedEnvironment
from .isolation import cgroups
from .isolation.bwrap import (
    SANDBOX_PATH,
    BwrapOptions,
    bwrap_argv,
    bwrap_works,
    python_exe,
    user_namespaces,
    write_etc,
)
from .roots import SHM, checkout_bytes, choose_root, reap_leftovers, sandbox_roots, shm_root

__all__ = [
    "LocalSandbox",
    "LocalSandboxProvider",
    "bwrap_works",
    "checkout_bytes",
    "choose_root",
    "reap_leftovers",
    "sandbox_roots",
    "shm_root",
]

log = logging.getLogger(__name__)
DRIVER_IN_SANDBOX = "/opt/rlm/driver.py"
WARNED = threading.Event()
# bwrap --die-with-parent (PR_SET_PDEATHSIG) fires when the THREAD that started it exits, so every
# driver is started from this one thread, which lives as long as the process.
_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rlm-spawner")
NO_BWRAP_WARNING = (
    "bubblewrap (bwrap) is not available: sandboxes run as plain processes with a scrubbed "
    "environment, without network or filesystem isolation: model-written code can read what your "
    "user can read. Install bubblewrap for isolation."
)
COPY_FALLBACK_WARNING = (
    "copy-on-write sandboxes are not available here ({reason}): every sandbox is a full copy of "
    "the checkout, which costs time and memory in proportion to the repository's size."
)
OVERLAY_REQUIRED_ERROR = (
    "sandbox.checkouts is 'overlay' but overlay mounts do not work here ({reason}); "
    "set sandbox.checkouts to auto or copy."
)
COPY_WARNED = threading.Event()
MEMORY_CAP_HIT = "the sandbox reached its memory cap of {mb} MB (sandbox.memory_mb)"
PROCESS_CAP_HIT = "the sandbox reached its cap of {n} processes (sandbox.max_processes)"


def _hide_host_process() -> None:
    """Without a PID namespace, a sandbox shares our user and could read /proc/<host>/environ
    (where the host's keys are). A non-dumpable process's /proc files belong to root, so for a
    non-root host that door closes. Best effort; Linux only."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    except (OSError, AttributeError):
        pass


class LocalSandboxProvider:
    name = "local"

    def __init__(self, config: Config, repo: PreparedRepo, rollout_id: str):
        self.config = config
        self.repo = repo
        self.rollout_id = rollout_id
        cache_root = config.cache_root()
        work_dir = Path(config.sandbox.work_dir).expanduser() if config.sandbox.work_dir else None
        reap_leftovers(cache_root, work_dir)
        mode = config.sandbox.isolation
        if mode == "bwrap" and not bwrap_works():
            raise SandboxError(
                "sandbox.isolation is 'bwrap' but bubblewrap cannot run here; install it "
                "(apt-get install bubblewrap) or set sandbox.isolation to auto."
            )
        self.use_bwrap = mode != "none" and bwrap_works()
        if not self.use_bwrap:
            _hide_host_process()
            if mode == "auto" and not WARNED.is_set():
                WARNED.set()
                log.warning(NO_BWRAP_WARNING)
        try:
            base = self._private_base(choose_root(config, repo, copies=False))
            self.copy_on_write = self._overlay_possible(cache_root, base / "sandboxes")
            if not self.copy_on_write:
                base = self._private_base(choose_root(config, repo))
            self.root = private_dir(base / "sandboxes" / rollout_id)
        except NotOwned as e:
            raise SandboxError(str(e)) from None
        self.etc = write_etc(self.root / "etc") if self.use_bwrap else None
        self._lock = threading.Lock()
        self._owner_lock = threading.Lock()
        self.checkouts: Checkouts | overlay.OverlayCheckouts
        if self.copy_on_write:
            try:
                shared = shared_checkouts.acquire(repo, cache_root, keep=config.sandbox.checkout_cache)
            except NotOwned:
                remove_owned(self.root)
                raise
            except (OSError, subprocess.CalledProcessError) as e:
                remove_owned(self.root)
                raise SandboxError(f"could not check out {repo.commit[:12]}: {_reason(e)}") from None
            self.checkouts = overlay.OverlayCheckouts(shared, self.root, python_exe())
        else:
            in_memory = self.root.is_relative_to(SHM)
            pool = min(config.rlm.max_concurrency, config.rlm.max_sandboxes - 1) if in_memory else 2
            self.checkouts = Checkouts(
                repo, self.root, limit=config.rlm.max_sandboxes, pool_size=max(0, pool)
            )
        self._sandboxes: dict[str, LocalSandbox] = {}
        self._closed = False
        self.env = SharedEnvironment(config)  # setup's and the host's prepared environments
        self._write_owner()

    def setup_environment(self, spec: SetupSpec, cancel: threading.Event) -> Environment:
        """Build or reuse the ready environment (local_env.py); every later sandbox gets it."""
        return self.env.setup(spec, cancel, self.repo, self.use_bwrap)

    @staticmethod
    def _private_base(base: Path) -> Path:
        for path in ([base.parent] if base.is_relative_to(SHM) else []) + [base, base / "sandboxes"]:
            private_dir(path)
        return base

    def _overlay_possible(self, cache_root: Path, sandboxes: Path) -> bool:
        """Copy-on-write checkouts unless `sandbox.checkouts` says copy or the probe fails (said
        once; an error when `overlay` is required)."""
        mode = self.config.sandbox.checkouts
        if mode == "copy":
            return False
        wrap = bwrap_argv(BwrapOptions(workdir="/", etc_dir=Path("/etc")), []) if self.use_bwrap else None
        reason = overlay.probe(python_exe(), shared_checkouts.cache_dir(cache_root), sandboxes, wrap)
        if reason is None:
            return True
        if mode == "overlay":
            raise SandboxError(OVERLAY_REQUIRED_ERROR.format(reason=reason))
        if not COPY_WARNED.is_set():
            COPY_WARNED.set()
            log.warning(COPY_FALLBACK_WARNING.format(reason=reason))
        return False

    def _write_owner(self) -> None:
        """Record who owns this rollout's sandboxes (for reaping after a kill): this process and
        each driver, as pid + start time. Sandboxes start in parallel, so writers are serialised
        and the file is replaced atomically."""
        with self._owner_lock:
            with self._lock:
                if self._closed:
                    return
                drivers = [s.token for s in self._sandboxes.values() if s.token]
            owner = {"owner": process_token(os.getpid()), "drivers": drivers}
            tmp = self.root / "owner.json.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(owner))
            tmp.replace(self.root / "owner.json")

    def create(self, agent_id: str) -> LocalSandbox:
        with self._lock:
            if self._closed:
                raise SandboxError("the rollout is over; no new sandbox")
        # An agent's depth is the number of dots in its id (root, root.1, root.1.2).
        name, depth = f"{agent_id}-{uuid.uuid4().hex[:6]}", agent_id.count(".")
        try:
            if isinstance(self.checkouts, Checkouts):
                checkout: Checkout = CopiedCheckout(*self.checkouts.take(name, depth))
            else:
                checkout = self.checkouts.take(name, depth)
        except (OSError, subprocess.CalledProcessError) as e:
            raise SandboxError(
                f"could not check out {self.repo.commit[:12]} for {agent_id}: {_reason(e)}"
            ) from None
        sandbox = LocalSandbox(self, agent_id, checkout)
        with self._lock:
            if self._closed:
                sandbox.destroy()
                raise SandboxError("the rollout is over; no new sandbox")
            self._sandboxes[sandbox.id] = sandbox
        return sandbox

    def forget(self, sandbox: LocalSandbox) -> None:
        with self._lock:
            self._sandboxes.pop(sandbox.id, None)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sandboxes = list(self._sandboxes.values())
        for sandbox in sandboxes:
            sandbox.destroy()
        self.checkouts.close()
        self.env.release()
        with self._owner_lock:
            remove_owned(self.root)
        for parent in (self.root.parent, self.root.parent.parent):  # empty shm dirs go too
            try:
                parent.rmdir()
            except OSError:
                break


def _reason(e: OSError | subprocess.CalledProcessError) -> str:
    stderr = getattr(e, "stderr", None)
    return stderr.decode("utf-8", "replace").strip() if stderr else str(e)


class LocalSandbox:
    def __init__(self, provider: LocalSandboxProvider, agent_id: str, checkout: Checkout):
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
        cache = str(self.provider.repo.cache)
        options = BwrapOptions(
            workdir=self.workdir,
            etc_dir=self.provider.etc,
            ro_binds=[
                (str(DRIVER_PATH), DRIVER_IN_SANDBOX),
                (cache, cache),
                *((str(p), str(p)) for p in self.checkout.ro_binds),
            ],
            rw_binds=[(self.workdir, self.workdir)],
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
        self.provider._write_owner()
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
