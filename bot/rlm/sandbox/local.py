"""The local sandbox: a checkout of the pinned commit per agent, the driver under bubblewrap.

Under bwrap the driver sees only the system's read-only program directories, the Python it runs
on, the repository cache (read-only) and its own checkout (writable): no network, its own PID
namespace, an empty environment, a private /tmp. Without bwrap it is a plain process with a
scrubbed environment and resource limits, and a warning says so.

Each agent's checkout is a copy-on-write overlay over one shared checkout of the commit
(overlay.py) where the kernel allows it, else a full copy (checkouts.py); `sandbox.checkouts`
forces either. Every rollout owns a directory under `<cache>/sandboxes/<rollout_id>` with an owner
file; a later start removes the directories of owners that are no longer alive (a killed run's
leftovers).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

from ..config import Config
from ..errors import SandboxError
from ..repl.session import DRIVER_PATH, PipeTransport
from ..repo import PreparedRepo, git
from . import overlay, shared_checkouts
from .base import DriverSlot, driver_limits
from .checkouts import Checkout, Checkouts, CopiedCheckout

log = logging.getLogger(__name__)
DRIVER_IN_SANDBOX = "/opt/rlm/driver.py"
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
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


@lru_cache(maxsize=1)
def bwrap_works() -> bool:
    """bwrap is installed and can create namespaces here (containers often forbid it)."""
    exe = shutil.which("bwrap")
    if not exe:
        return False
    try:
        proc = subprocess.run(
            [exe, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _python() -> str:
    """The base interpreter: the driver needs only the standard library, not our venv."""
    base = Path(sys.base_prefix)
    for name in (f"python{sys.version_info.major}.{sys.version_info.minor}", "python3"):
        exe = base / "bin" / name
        if exe.exists():
            return str(exe)
    return os.path.realpath(sys.executable)


def _process_start(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().decode("ascii", "replace").rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


SHM = Path("/dev/shm")


def shm_root(cache_root: Path) -> Path:
    """Where checkouts go when memory-backed /dev/shm has room (one place per cache)."""
    digest = hashlib.sha256(str(cache_root.resolve()).encode()).hexdigest()[:12]
    return SHM / f"rlm-bot-{os.getuid()}" / digest


def sandbox_roots(cache_root: Path, work_dir: Path | None = None) -> list[Path]:
    """Every directory that may hold rollouts' sandboxes for this cache."""
    roots = [cache_root / "sandboxes", shm_root(cache_root) / "sandboxes"]
    if work_dir is not None:
        roots.append(work_dir / "sandboxes")
    return roots


def checkout_bytes(repo: PreparedRepo) -> int:
    """Size of one checkout of the pinned commit (the sum of its blobs)."""
    out = git("ls-tree", "-r", "-l", "--full-tree", repo.commit, git_dir=repo.cache).stdout.decode()
    return sum(int(line.split()[3]) for line in out.splitlines() if line.split()[3].isdigit())


def choose_root(config: Config, repo: PreparedRepo, copies: bool = True) -> Path:
    """Sandboxes are short-lived and write thousands of files: on memory-backed /dev/shm a
    checkout costs a fraction of what it costs on a busy disk. Use it when it has room for every
    sandbox the rollout may create (with margin), else the cache directory. Copy-on-write
    sandboxes hold only what agents write: the margin alone."""
    if config.sandbox.work_dir:
        return Path(config.sandbox.work_dir).expanduser()
    cache_root = config.cache_root()
    if SHM.is_dir() and os.access(SHM, os.W_OK):
        need = (checkout_bytes(repo) * config.rlm.max_sandboxes * 2 if copies else 0) + 256 * 1024**2
        if shutil.disk_usage(SHM).free > need:
            return shm_root(cache_root)
    return cache_root


def reap_leftovers(cache_root: Path, work_dir: Path | None = None) -> list[str]:
    """Remove sandbox directories of rollouts whose process is gone. Returns the rollout ids."""
    reaped: list[str] = []
    for root in sandbox_roots(cache_root, work_dir):
        if root.is_dir():
            reaped += _reap_root(root)
    return reaped


def _reap_root(root: Path) -> list[str]:
    reaped: list[str] = []
    for entry in root.iterdir():
        owner_file = entry / "owner.json"
        try:
            owner = json.loads(owner_file.read_text())
            alive = _process_start(int(owner["pid"])) == owner.get("start")
        except (OSError, ValueError, KeyError, TypeError):
            owner, alive = {}, False
        if alive:
            continue
        for pid in owner.get("pids", []):
            _kill_group(pid)
        shared_checkouts.remove_tree(entry)
        reaped.append(entry.name)
    return reaped


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


def _reason(e: OSError | subprocess.CalledProcessError) -> str:
    stderr = getattr(e, "stderr", None)
    return stderr.decode("utf-8", "replace").strip() if stderr else str(e)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (OSError, ProcessLookupError):
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
        use_overlay = self._overlay_possible(cache_root, choose_root(config, repo, copies=False))
        self.root = choose_root(config, repo, copies=not use_overlay) / "sandboxes" / rollout_id
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._owner_lock = threading.Lock()
        self.checkouts: Checkouts | overlay.OverlayCheckouts
        if use_overlay:
            try:
                shared = shared_checkouts.acquire(repo, cache_root, keep=config.sandbox.checkout_cache)
            except (OSError, subprocess.CalledProcessError) as e:
                raise SandboxError(f"could not check out {repo.commit[:12]}: {_reason(e)}") from None
            self.checkouts = overlay.OverlayCheckouts(shared, self.root, _python())
        else:
            in_memory = self.root.is_relative_to(SHM)
            pool = min(config.rlm.max_concurrency, config.rlm.max_sandboxes - 1) if in_memory else 2
            self.checkouts = Checkouts(repo, self.root, limit=config.rlm.max_sandboxes, pool_size=max(0, pool))
        self.copy_on_write = use_overlay
        self._sandboxes: dict[str, LocalSandbox] = {}
        self._closed = False
        self._write_owner()

    def _overlay_possible(self, cache_root: Path, work_root: Path) -> bool:
        """Copy-on-write checkouts unless `sandbox.checkouts` says copy or the probe fails (said
        once; an error when `overlay` is required)."""
        mode = self.config.sandbox.checkouts
        if mode == "copy":
            return False
        wrap = ["bwrap", "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent"] if self.use_bwrap else None
        reason = overlay.probe(_python(), shared_checkouts.cache_dir(cache_root), work_root / "sandboxes", wrap)
        if reason is None:
            return True
        if mode == "overlay":
            raise SandboxError(OVERLAY_REQUIRED_ERROR.format(reason=reason))
        if not COPY_WARNED.is_set():
            COPY_WARNED.set()
            log.warning(COPY_FALLBACK_WARNING.format(reason=reason))
        return False

    def _write_owner(self) -> None:
        """Record who owns this rollout's sandboxes (for reaping after a kill). Sandboxes start in
        parallel, so writers are serialised and the file is replaced atomically."""
        with self._owner_lock:
            with self._lock:
                if self._closed:
                    return
                pids = [s.pid for s in self._sandboxes.values() if s.pid]
            owner = {"pid": os.getpid(), "start": _process_start(os.getpid()), "pids": pids}
            tmp = self.root / "owner.json.tmp"
            tmp.write_text(json.dumps(owner))
            tmp.replace(self.root / "owner.json")

    def create(self, agent_id: str) -> LocalSandbox:
        with self._lock:
            if self._closed:
                raise SandboxError("the rollout is over; no new sandbox")
        name, depth = f"{agent_id}-{uuid.uuid4().hex[:6]}", agent_id.count(".")
        try:
            # An agent's depth is the number of dots in its id (root, root.1, root.1.2).
            if isinstance(self.checkouts, Checkouts):
                checkout: Checkout = CopiedCheckout(*self.checkouts.take(name, depth))
            else:
                checkout = self.checkouts.take(name, depth)
        except (OSError, subprocess.CalledProcessError) as e:
            raise SandboxError(f"could not check out {self.repo.commit[:12]} for {agent_id}: {_reason(e)}") from None
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
        with self._owner_lock:
            shared_checkouts.remove_tree(self.root)
        for parent in (self.root.parent, self.root.parent.parent):  # empty shm dirs go too
            try:
                parent.rmdir()
            except OSError:
                break


class LocalSandbox:
    def __init__(self, provider: LocalSandboxProvider, agent_id: str, checkout: Checkout):
        self.provider = provider
        self.id = checkout.path.name
        self.agent_id = agent_id
        self.checkout = checkout
        self.path = checkout.path
        self.workdir = str(checkout.path)
        self.pid: int | None = None
        self._driver = DriverSlot()

    # ------------------------------------------------------------------ driver

    def _bwrap_argv(self, fds: tuple[int, int]) -> list[str]:
        argv = ["bwrap", "--die-with-parent", "--unshare-all", "--new-session", "--clearenv"]
        for top in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"):
            if os.path.islink(top):
                argv += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                argv += ["--ro-bind", top, top]
        prefix = os.path.realpath(sys.base_prefix)
        if not prefix.startswith("/usr/"):
            argv += ["--ro-bind", prefix, prefix]
        cache = str(self.provider.repo.cache)
        argv += [
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
            "--ro-bind", str(DRIVER_PATH), DRIVER_IN_SANDBOX,
            "--ro-bind", cache, cache,
        ]  # fmt: skip
        for path in self.checkout.ro_binds:
            argv += ["--ro-bind", str(path), str(path)]
        argv += [
            "--bind", self.workdir, self.workdir,
            "--setenv", "PATH", SANDBOX_PATH, "--setenv", "HOME", "/tmp",
            "--setenv", "LANG", "C.UTF-8", "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
            "--setenv", "GIT_CONFIG_NOSYSTEM", "1",
            "--chdir", self.workdir,
            _python(), "-I", DRIVER_IN_SANDBOX, str(fds[0]), str(fds[1]),
        ]  # fmt: skip
        return argv

    def _plain_argv(self, fds: tuple[int, int]) -> list[str]:
        return [_python(), "-I", str(DRIVER_PATH), str(fds[0]), str(fds[1])]

    def start_driver(self) -> PipeTransport:
        transport = self._driver.replace(self._spawn)
        self.provider._write_owner()
        return transport

    def _spawn(self) -> PipeTransport:
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        fds = (to_r, from_w)
        argv = self.checkout.launch(self._bwrap_argv(fds) if self.provider.use_bwrap else self._plain_argv(fds))
        home = self.provider.root / f"{self.id}.home"
        home.mkdir(exist_ok=True)
        env = {"PATH": SANDBOX_PATH, "HOME": str(home), "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
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
        except OSError as e:
            for fd in (to_r, to_w, from_r, from_w):
                os.close(fd)
            raise SandboxError(f"could not start the sandbox's REPL: {e}") from None
        os.close(to_r)
        os.close(from_w)
        self.pid = proc.pid
        return PipeTransport(proc, to_w, from_r, on_kill=lambda p=proc: _stop(p))

    def init_limits(self) -> dict:
        return driver_limits(self.provider.config)

    # ------------------------------------------------------------------ results and cleanup

    def diff(self) -> str:
        return self.checkout.diff(self.provider.repo.cache, self.provider.repo.commit)

    def destroy(self) -> None:
        if not self._driver.close():
            return
        self.checkout.remove()
        self.provider.forget(self)


def _stop(proc: subprocess.Popen) -> None:
    """Kill the driver's whole process group (under bwrap: its whole PID namespace) and reap it."""
    _kill_group(proc.pid)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
