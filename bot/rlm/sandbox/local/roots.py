"""Where local sandboxes live, and removing what killed rollouts left there.

Checkouts go to memory-backed /dev/shm (`/dev/shm/rlm-bot-<uid>/<digest of the cache>`) when it
has room, else the cache directory (or `sandbox.work_dir`). Every rollout owns a private directory
`<root>/sandboxes/<rollout id>` with an owner file naming this process and its drivers by pid and
start time. Reaping enters only directories this user owns, checked component by component
without following symlinks, and signals only processes it can prove it started (bot/rlm/owned.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

from ...config import Config
from ...owned import kill_group, read_private, remove_owned, same_process, why_not_owned, why_not_owned_below
from ...repo import PreparedRepo, git
from .isolation import cgroups

log = logging.getLogger(__name__)

SHM = Path("/dev/shm")
STARTING = 120.0  # seconds a rollout directory may exist before its owner file is written


def _age(path: Path) -> float:
    try:
        return time.time() - os.lstat(path).st_mtime
    except OSError:
        return float("inf")


def shm_root(cache_root: Path) -> Path:
    """Where checkouts go when memory-backed /dev/shm has room (one place per cache)."""
    digest = hashlib.sha256(str(cache_root.resolve()).encode()).hexdigest()[:12]
    return SHM / f"rlm-bot-{os.getuid()}" / digest


def sandbox_roots(cache_root: Path, work_dir: Path | None = None) -> list[Path]:
    """Every directory that may hold rollouts' sandboxes for this cache."""
    return [root for root, _ in _trusted_roots(cache_root, work_dir)]


def _trusted_roots(cache_root: Path, work_dir: Path | None) -> list[tuple[Path, Path]]:
    """(sandbox root, the directory below which every component must be ours)."""
    roots = [(cache_root / "sandboxes", cache_root.parent), (shm_root(cache_root) / "sandboxes", SHM)]
    if work_dir is not None:
        roots.append((work_dir / "sandboxes", work_dir.parent))
    return roots


def checkout_bytes(repo: PreparedRepo) -> int:
    """Size of one checkout of the pinned commit (the sum of its blobs)."""
    out = git("ls-tree", "-r", "-l", "--full-tree", repo.commit, git_dir=repo.cache).stdout.decode()
    return sum(int(line.split()[3]) for line in out.splitlines() if line.split()[3].isdigit())


def _shm_usable(cache_root: Path) -> bool:
    """/dev/shm/rlm-bot-<uid>/<digest> is ours (or can be made ours). A path another local user
    created first (a squat) is never entered: checkouts then go to the cache directory."""
    top = shm_root(cache_root) / "sandboxes"
    for path in (top.parent.parent, top.parent, top):
        if not os.path.lexists(path):
            return True
        why = why_not_owned_below(path, SHM)
        if why:
            log.warning("not using %s", why)
            return False
    return True


def choose_root(config: Config, repo: PreparedRepo, copies: bool = True) -> Path:
    """Sandboxes are short-lived and write thousands of files: on memory-backed /dev/shm a
    checkout costs a fraction of what it costs on a busy disk. Use it when it has room for every
    sandbox the rollout may create (with margin), else the cache directory. Copy-on-write
    sandboxes hold only what agents write: the margin alone."""
    if config.sandbox.work_dir:
        return Path(config.sandbox.work_dir).expanduser()
    cache_root = config.cache_root()
    if SHM.is_dir() and os.access(SHM, os.W_OK) and _shm_usable(cache_root):
        need = (checkout_bytes(repo) * config.rlm.max_sandboxes * 2 if copies else 0) + 256 * 1024**2
        if shutil.disk_usage(SHM).free > need:
            return shm_root(cache_root)
    return cache_root


def reap_leftovers(cache_root: Path, work_dir: Path | None = None) -> list[str]:
    """Remove sandbox directories of rollouts whose process is gone. Returns the rollout ids.
    Only directories this user owns are entered; only processes proven ours are signalled."""
    reaped: list[str] = []
    for root, base in _trusted_roots(cache_root, work_dir):
        if not why_not_owned_below(root, base):
            reaped += _reap_root(root)
    cgroups.reap()
    return reaped


def _reap_root(root: Path) -> list[str]:
    reaped: list[str] = []
    for entry in root.iterdir():
        if why_not_owned(entry):
            continue  # a symlink, a file, or another user's: never ours to remove
        try:
            owner = json.loads(read_private(entry / "owner.json"))
            # {"pid", "start"}: written by an older version, which may still be running
            alive = same_process(owner.get("owner") or [owner.get("pid"), owner.get("start")])
        except (OSError, ValueError, AttributeError):
            # No owner file yet: a rollout still starting (another process), unless it is old.
            owner, alive = {}, _age(entry) < STARTING
        if alive:
            continue
        for token in owner.get("drivers", []) if isinstance(owner, dict) else []:
            kill_group(token)
        if remove_owned(entry):
            reaped.append(entry.name)
    return reaped
