"""The host's cache of ready environments (`<cache>/envs/`), shared by both backends.

The local backend keeps each built environment in `envs/<key>/` with a lock file beside it that a
rollout holds shared while it uses the environment; the Daytona backend keeps a small record of
its snapshot there. `prune` (after a setup, and `rlm sandboxes reap`) removes what is neither
among the newest nor in use. A `run-*` entry (`PRIVATE`) is one rollout's own environment, never
shared: it is never among the kept ones, and goes as soon as no rollout holds it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

PRIVATE = "run-"  # entries of one rollout only (an environment built from an untrusted commit)


def envs_root(cache_root: Path) -> Path:
    return cache_root / "envs"


def lock_entry(path: Path, mode: int) -> int:
    """An flock on `path` that is still the file at `path` (pruning may unlink it meanwhile)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, mode)
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        except BlockingIOError:
            os.close(fd)
            raise
        os.close(fd)


def prune(root: Path, keep: int) -> list[str]:
    """Remove environments beyond the `keep` most recently used, and unfinished ones, unless a
    rollout holds them (see `lock_entry`). Returns the removed keys."""
    if not root.is_dir():
        return []
    entries = [p for p in root.iterdir() if p.is_dir()]
    ready = sorted(
        (p for p in entries if (p / "ready.json").is_file() and not p.name.startswith(PRIVATE)),
        key=lambda p: (p / "ready.json").stat().st_mtime,
        reverse=True,
    )
    doomed = [p for p in entries if p not in ready] + ready[keep:]
    removed = []
    for entry in doomed:
        lock = entry.with_name(entry.name + ".lock")
        try:
            fd = lock_entry(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # being built or in use
        try:
            shutil.rmtree(entry, ignore_errors=True)
            lock.unlink(missing_ok=True)
            removed.append(entry.name)
        finally:
            os.close(fd)
    return removed
