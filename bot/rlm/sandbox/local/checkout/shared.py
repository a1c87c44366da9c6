"""One read-only checkout per commit, shared by every copy-on-write sandbox and kept across rollouts.

`<cache>/checkouts/<repo>-<commit>/tree` holds the work tree with its git dir inside (agents get
their own copy of the index and refs through the overlay). A rollout holds a shared `flock` on
`<name>.lock` while it uses the checkout, so a killed rollout's hold ends with its process. The
newest `keep` checkouts stay for the next rollout at the same commit; older idle ones are removed,
and `rlm sandboxes reap` removes every idle one. The host alone writes here: no sandbox sees it.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from ....owned import private_dir, remove_tree, why_not_owned
from ....repo import PreparedRepo, git
from .copies import checkout, write_tags

READY = ".rlm-ready-2"  # 2: its git dir borrows the commit's own store (repo.commit_store) and has its tags


def cache_dir(cache_root: Path) -> Path:
    return cache_root / "checkouts"


@dataclass
class SharedCheckout:
    """A rollout's hold on the shared checkout of its commit (released with `release`)."""

    tree: Path
    _lock_fd: int
    cache_root: Path
    keep: int

    def release(self) -> None:
        if self._lock_fd < 0:
            return
        os.close(self._lock_fd)  # ends the shared flock
        self._lock_fd = -1
        evict(self.cache_root, self.keep)


def acquire(repo: PreparedRepo, cache_root: Path, keep: int) -> SharedCheckout:
    """The shared checkout of `repo.commit`, made if missing; raises OSError/CalledProcessError."""
    root = private_dir(cache_dir(cache_root))
    name = f"{repo.cache.name.removesuffix('.git')}-{repo.commit}"
    entry = root / name
    fd = os.open(root / f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        for _ in range(5):
            fcntl.flock(fd, fcntl.LOCK_SH)
            if (entry / READY).exists():
                break
            fcntl.flock(fd, fcntl.LOCK_UN)
            fcntl.flock(fd, fcntl.LOCK_EX)
            if not (entry / READY).exists():
                _build(repo, entry)
            fcntl.flock(fd, fcntl.LOCK_UN)
        else:
            raise OSError(f"the shared checkout {entry} keeps disappearing")
    except BaseException:
        os.close(fd)
        raise
    write_tags(repo, entry / "tree" / ".git")  # tags fetched since it was made
    os.utime(entry)  # most recently used
    evict(cache_root, keep)
    return SharedCheckout(entry / "tree", fd, cache_root, keep)


def _build(repo: PreparedRepo, entry: Path) -> None:
    building = entry.parent / f".{entry.name}.{uuid.uuid4().hex[:8]}"
    try:
        building.mkdir()
        tree = building / "tree"
        checkout(repo, tree, tree / ".git")
        # Every agent's view has other inode numbers than the index recorded: compare only what
        # the overlay keeps (mtime, size), so `git status` in a sandbox does not re-read every file.
        config = ["--file", str(tree / ".git" / "config")]
        git("config", *config, "core.checkStat", "minimal")
        git("config", *config, "core.trustctime", "false")
        (building / READY).write_text(repo.commit + "\n")
        remove_tree(entry)  # a half-built leftover of a killed build
        building.rename(entry)
    finally:
        remove_tree(building)


def _idle(lock: Path) -> int | None:
    """An exclusive hold on an unused checkout's lock (the caller closes it), or None if in use."""
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def evict(cache_root: Path, keep: int) -> list[str]:
    """Remove idle shared checkouts beyond the `keep` most recently used, and dead builds."""
    root = cache_dir(cache_root)
    if why_not_owned(root):
        return []
    entries = sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.is_symlink()),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    kept = 0
    removed: list[str] = []
    for entry in entries:
        building = entry.name.startswith(".")
        name = entry.name[1:].rsplit(".", 1)[0] if building else entry.name
        if not building and kept < keep and (entry / READY).exists():
            kept += 1
            continue
        fd = _idle(root / f"{name}.lock")
        if fd is None:
            kept += not building
            continue
        try:
            remove_tree(entry)
            removed.append(entry.name)
        finally:
            os.close(fd)
    return removed
