"""The local backend's provider: one sandbox per agent on this machine (sandbox.py).

Under bwrap (isolation/bwrap.py says exactly what it sees) the driver runs as an unprivileged user
with no capabilities, in its own namespaces, with only its checkout and a size-limited /tmp
writable; where the host can, a cgroup per sandbox caps its processes and aggregate memory
(isolation/cgroups.py). Without bwrap it is a plain process with a scrubbed environment and
resource limits, and a warning says so.

Each agent's checkout is a copy-on-write overlay over one shared checkout of the commit
(checkout/overlay.py) where the kernel allows it, else a full copy (checkout/copies.py);
`sandbox.checkouts` forces either. Both are a `Checkouts` (checkout/__init__.py) to the provider.
Every rollout owns a private directory under `<root>/sandboxes/<rollout_id>` with an owner file;
a later start removes the directories of owners that are provably gone (roots.py).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import uuid
from pathlib import Path

from ...config import Config
from ...environment import Environment, SetupSpec
from ...errors import SandboxError
from ...owned import NotOwned, private_dir, process_token, remove_owned
from ...repo import PreparedRepo
from .checkout import Checkouts
from .checkout import shared as shared_checkouts
from .checkout.copies import CopiedCheckouts
from .checkout.overlay import OverlayCheckouts, probe
from .env import SharedEnvironment
from .inherit import inherit_note
from .isolation.bwrap import BwrapOptions, bwrap_argv, bwrap_works, python_exe, write_etc
from .isolation.probe import probe_sandbox
from .roots import SHM, choose_root, reap_leftovers
from .sandbox import LocalSandbox

__all__ = ["LocalSandboxProvider"]

log = logging.getLogger(__name__)
WARNED = threading.Event()
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
                f"sandbox.isolation is 'bwrap' but {probe_sandbox() or 'bubblewrap cannot run here.'}"
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
        self.checkouts: Checkouts
        if self.copy_on_write:
            try:
                shared = shared_checkouts.acquire(repo, cache_root, keep=config.sandbox.checkout_cache)
            except NotOwned:
                remove_owned(self.root)
                raise
            except (OSError, subprocess.CalledProcessError) as e:
                remove_owned(self.root)
                raise SandboxError(f"could not check out {repo.commit[:12]}: {_reason(e)}") from None
            cap = config.sandbox.checkout_mb * 1024 * 1024
            self.checkouts = OverlayCheckouts(shared, self.root, python_exe(), cap)
        else:
            in_memory = self.root.is_relative_to(SHM)
            pool = min(config.rlm.max_concurrency, config.rlm.max_sandboxes - 1) if in_memory else 2
            self.checkouts = CopiedCheckouts(
                repo, self.root, limit=config.rlm.max_sandboxes, pool_size=max(0, pool)
            )
        self._sandboxes: dict[str, LocalSandbox] = {}
        self._closed = False
        self.env = SharedEnvironment(config)  # setup's and the host's prepared environments
        self.record_owner()

    @property
    def prompt_note(self) -> str:
        """The host's prepared environment (sandbox.inherit), for the system prompt."""
        return inherit_note(self.env.inherited)

    def setup_environment(self, spec: SetupSpec, cancel: threading.Event) -> Environment:
        """Build or reuse the ready environment (env.py); every later sandbox gets it."""
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
        reason = probe(python_exe(), shared_checkouts.cache_dir(cache_root), sandboxes, wrap)
        if reason is None:
            return True
        if mode == "overlay":
            raise SandboxError(OVERLAY_REQUIRED_ERROR.format(reason=reason))
        if not COPY_WARNED.is_set():
            COPY_WARNED.set()
            log.warning(COPY_FALLBACK_WARNING.format(reason=reason))
        return False

    def record_owner(self) -> None:
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
            checkout = self.checkouts.take(name, depth)
        except (OSError, subprocess.CalledProcessError) as e:
            raise SandboxError(
                f"could not check out {self.repo.commit[:12]} for {agent_id}: {_reason(e)}"
            ) from None
        layer = self.env.layer()
        if layer is not None:
            try:
                checkout.add_layer(layer)
            except (OSError, subprocess.CalledProcessError) as e:
                checkout.remove()
                raise SandboxError(
                    f"could not add setup's files to {agent_id}'s checkout: {_reason(e)}"
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
