"""Copy-on-write checkouts for local sandboxes: an overlay per agent over one shared checkout.

The rollout's commit is checked out once (shared.py) and is every agent's read-only lower
layer; each agent owns a directory holding its upper layer (only what it changed) and work dir, and
the overlay is mounted on that directory inside the sandbox's own mount namespace by
overlay_launch.py, which then execs bwrap (or the driver). Creating one costs a `mkdir`, whatever
the repository's size. What an agent writes is capped (`sandbox.checkout_mb`): its upper layer is
a tmpfs of that size in the namespace of the rollout's layer holder (one small process, started
with the first checkout, see overlay_launch.py), mounted by the agent's first launch, so a write
past the cap fails inside the sandbox with "No space left on device" and never fills the host's
memory-backed /dev/shm. The host itself never mounts anything; it reads the upper layer through
the holder's /proc/PID/root
(upper_patch.py). Where the kernel refuses (no user namespaces, an old kernel, a filesystem that
cannot be a layer) a probe says so once and the local backend copies checkouts instead.
"""

from __future__ import annotations

import os
import stat
import subprocess
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from ....owned import remove_tree
from .layers import LAUNCHER, HolderError, LayerHolder
from .shared import SharedCheckout
from .upper_patch import diff_upper

# No metadata-only copy-up and no redirects: every change is a whole file in the upper layer, and a
# directory that came from the checkout cannot be renamed in place (rename(2) says EXDEV; `mv` and
# shutil.move copy it instead), so the host reads the upper layer without interpreting redirects.
MOUNT_OPTIONS = "metacopy=off,redirect_dir=nofollow"
_UNSAFE = (",", ":", "\\", "\n")
PROBE_CODE = "import os; open('new', 'w').write('x'); os.remove('gone'); assert open('kept').read() == 'k'"
_probe_lock = threading.Lock()
_probe_results: dict[tuple, str | None] = {}


def launch_argv(
    python: str,
    lower: Path,
    upper: Path,
    work: Path,
    target: Path,
    command: list[str],
    holder: LayerHolder | None = None,
) -> list[str]:
    """`command` run with the overlay of `lower` + `upper` mounted on `target` (its cwd), inside
    `holder`'s namespaces when given (its layers are there)."""
    layers = [str(lower), str(upper), str(work), str(target)]
    join = ["--join", str(holder.pid), str(holder.size)] if holder else []
    # stdlib only: no site
    return [python, "-I", "-S", str(LAUNCHER), *join, *layers, MOUNT_OPTIONS, "--", *command]


def _unsafe_path(*paths: Path) -> str | None:
    for p in paths:
        if any(c in str(p) for c in _UNSAFE):
            return f"the path {p} holds a character overlay options cannot carry (, : \\)"
    return None


def probe(python: str, lower_parent: Path, upper_parent: Path, wrap: list[str] | None = None) -> str | None:
    """None when an overlay of a checkout under `lower_parent` with layers under `upper_parent` works
    here (inside `wrap`, e.g. bwrap binding the mount); else the reason, one sentence. Cached."""
    key = (python, str(lower_parent), str(upper_parent), tuple(wrap or ()), MOUNT_OPTIONS)
    with _probe_lock:
        if key not in _probe_results:
            _probe_results[key] = _probe(python, lower_parent, upper_parent, wrap or [])
        return _probe_results[key]


def forget_probes() -> None:
    with _probe_lock:
        _probe_results.clear()


def _probe(python: str, lower_parent: Path, upper_parent: Path, wrap: list[str]) -> str | None:
    tag = f".probe-{uuid.uuid4().hex[:8]}"
    lower, area = lower_parent / tag, upper_parent / tag
    holder = None
    try:
        lower.mkdir(parents=True)
        (lower / "kept").write_text("k")
        (lower / "gone").write_text("g")
        target = area / "merged"
        target.mkdir(parents=True)
        reason = _unsafe_path(lower, area)
        if reason:
            return reason
        try:
            holder = LayerHolder(python, 1 << 20)
        except HolderError as e:
            return str(e)
        upper, work = target / "upper", target / "work"
        command = [
            *wrap,
            *(["--bind", str(target), str(target), "--chdir", str(target)] if wrap else []),
            python,
            "-I",
            "-c",
            PROBE_CODE,
        ]
        try:
            proc = subprocess.run(
                launch_argv(python, lower, upper, work, target, command, holder),
                capture_output=True,
                timeout=30,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"the overlay probe could not run ({e})"
        if proc.returncode != 0:
            lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            return lines[-1] if lines else f"the overlay probe failed with status {proc.returncode}"
        seen = holder.view(upper)
        whiteout = os.lstat(seen / "gone")
        if not ((seen / "new").is_file() and stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0):
            return "the overlay did not record changes in its upper layer as expected"
        return None
    except OSError as e:
        return f"the overlay probe could not prepare its directories ({e.strerror})"
    finally:
        if holder is not None:
            holder.close()
        remove_tree(lower)
        remove_tree(area)


@dataclass
class OverlayCheckout:
    """One agent's copy-on-write checkout: `path` (the mount point; in the holder's namespace a
    tmpfs holding the agent's `upper` and `work` directories) over the shared `lower` tree."""

    path: Path
    lower: Path
    python: str
    holder: LayerHolder
    layers: tuple[Path, ...] = ()  # read-only layers above `lower` (what setup generated)

    @property
    def upper(self) -> Path:
        """The upper layer as the host reads it (through the holder)."""
        return self.holder.view(self.path) / "upper"

    @property
    def ro_binds(self) -> list[Path]:
        return []

    def launch(self, command: list[str]) -> list[str]:
        upper, work = self.path / "upper", self.path / "work"
        lower = Path(":".join(str(p) for p in (*self.layers, self.lower)))  # the first is the top one
        return launch_argv(self.python, lower, upper, work, self.path, command, self.holder)

    def add_layer(self, layer: Path) -> None:
        """`layer`'s files appear in the checkout, under the agent's own changes (not in its patch)."""
        if _unsafe_path(layer) is None:
            self.layers = (layer, *self.layers)

    def diff(self, cache: Path, base: str, max_bytes: int | None) -> str:
        upper = self.upper
        if not upper.is_dir():
            return ""  # never launched: nothing written
        return diff_upper(upper, cache, base, max_bytes)

    def remove(self) -> None:
        try:
            self.holder.request("umount", self.path)  # its memory is free once no sandbox uses it
        except HolderError:
            pass  # the holder is gone, and the layer with it
        remove_tree(self.path)


class OverlayCheckouts:
    """Hands out overlay checkouts under `root` over one shared checkout, each capped at
    `cap_bytes` written (the holder is started with the first; released on close)."""

    def __init__(self, shared: SharedCheckout, root: Path, python: str, cap_bytes: int):
        self.shared = shared
        self.root = root
        self.python = python
        self.cap_bytes = cap_bytes
        self._holder: LayerHolder | None = None
        self._lock = threading.Lock()

    def holder(self) -> LayerHolder:
        with self._lock:
            if self._holder is None:
                self._holder = LayerHolder(self.python, self.cap_bytes)
            return self._holder

    def take(self, name: str, priority: int = 0) -> OverlayCheckout:
        holder = self.holder()
        path = self.root / name
        path.mkdir(mode=0o700)  # its capped layer is mounted by the first launch (overlay_launch.py)
        return OverlayCheckout(path, self.shared.tree, self.python, holder)

    def close(self) -> None:
        with self._lock:
            holder, self._holder = self._holder, None
        if holder is not None:
            holder.close()
        self.shared.release()
