"""Copy-on-write checkouts for local sandboxes: an overlay per agent over one shared checkout.

The rollout's commit is checked out once (shared.py) and is every agent's read-only lower
layer; each agent owns a directory holding its upper layer (only what it changed) and work dir, and
the overlay is mounted on that directory inside the sandbox's own mount namespace by
overlay_launch.py, which then execs bwrap (or the driver). Creating one costs three `mkdir`s,
whatever the repository's size. The host never mounts anything and reads the upper layer directly
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
from .shared import SharedCheckout
from .upper_patch import diff_upper

LAUNCHER = Path(__file__).with_name("overlay_launch.py")
# No metadata-only copy-up and no redirects: every change is a whole file in the upper layer, and a
# directory that came from the checkout cannot be renamed in place (rename(2) says EXDEV; `mv` and
# shutil.move copy it instead), so the host reads the upper layer without interpreting redirects.
MOUNT_OPTIONS = "metacopy=off,redirect_dir=nofollow"
_UNSAFE = (",", ":", "\\", "\n")
PROBE_CODE = "import os; open('new', 'w').write('x'); os.remove('gone'); assert open('kept').read() == 'k'"
_probe_lock = threading.Lock()
_probe_results: dict[tuple, str | None] = {}


def launch_argv(
    python: str, lower: Path, upper: Path, work: Path, target: Path, command: list[str]
) -> list[str]:
    """`command` run with the overlay of `lower` + `upper` mounted on `target` (its cwd)."""
    layers = [str(lower), str(upper), str(work), str(target)]
    return [python, "-I", "-S", str(LAUNCHER), *layers, MOUNT_OPTIONS, "--", *command]  # stdlib only: no site


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
    try:
        lower.mkdir(parents=True)
        (lower / "kept").write_text("k")
        (lower / "gone").write_text("g")
        upper, work, target = area / "upper", area / "work", area / "merged"
        for d in (upper, work, target):
            d.mkdir(parents=True)
        reason = _unsafe_path(lower, area)
        if reason:
            return reason
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
                launch_argv(python, lower, upper, work, target, command),
                capture_output=True,
                timeout=30,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"the overlay probe could not run ({e})"
        if proc.returncode != 0:
            lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            return lines[-1] if lines else f"the overlay probe failed with status {proc.returncode}"
        whiteout = os.lstat(upper / "gone")
        if not ((upper / "new").is_file() and stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0):
            return "the overlay did not record changes in its upper layer as expected"
        return None
    except OSError as e:
        return f"the overlay probe could not prepare its directories ({e.strerror})"
    finally:
        remove_tree(lower)
        remove_tree(area)


@dataclass
class OverlayCheckout:
    """One agent's copy-on-write checkout: `path` (the mount point; on the host it holds the
    agent's `upper` and `work` directories) over the shared `lower` tree."""

    path: Path
    lower: Path
    python: str

    @property
    def upper(self) -> Path:
        return self.path / "upper"

    @property
    def ro_binds(self) -> list[Path]:
        return []

    def launch(self, command: list[str]) -> list[str]:
        return launch_argv(self.python, self.lower, self.upper, self.path / "work", self.path, command)

    def diff(self, cache: Path, base: str, max_bytes: int | None) -> str:
        return diff_upper(self.upper, cache, base, max_bytes)

    def remove(self) -> None:
        remove_tree(self.path)


class OverlayCheckouts:
    """Hands out overlay checkouts under `root` over one shared checkout (released on close)."""

    def __init__(self, shared: SharedCheckout, root: Path, python: str):
        self.shared = shared
        self.root = root
        self.python = python

    def take(self, name: str, priority: int = 0) -> OverlayCheckout:
        path = self.root / name
        path.mkdir(mode=0o700)
        for sub in ("upper", "work"):
            (path / sub).mkdir(mode=0o755)
        return OverlayCheckout(path, self.shared.tree, self.python)

    def close(self) -> None:
        self.shared.release()
