"""Directories and processes the host may clean up: only those it can prove it made.

Work and cache roots are created private (0700) and checked without following symlinks: a path
that is a symlink, not a directory, or owned by another user is never used, entered or removed.
A process is identified by its pid AND its start time (from /proc), so a recycled pid or a pid
written into a file by someone else is never signalled.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
from pathlib import Path

from .errors import SandboxError

NOT_OURS = (
    "{path} is not a private directory of this user ({why}); another user may have created it. "
    "Remove it, or point sandbox.work_dir / sandbox.cache_dir somewhere only you can write."
)


class NotOwned(SandboxError):
    """A directory the host was about to use belongs to someone else or is a symlink."""


def process_start(pid: int) -> str | None:
    """The start time of `pid` in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().decode("ascii", "replace").rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_token(pid: int) -> list:
    """What proves later that a process is the one we started: [pid, start time]."""
    return [pid, process_start(pid)]


def same_process(token: object) -> bool:
    """True when `token` (from `process_token`) names a live process we started."""
    if not (isinstance(token, list) and len(token) == 2 and isinstance(token[0], int)):
        return False
    pid, start = token
    return start is not None and pid > 1 and process_start(pid) == start


def kill_group(token: object) -> None:
    """SIGKILL the process group led by the process `token` names, if it is still that process."""
    if same_process(token):
        try:
            os.killpg(token[0], signal.SIGKILL)  # type: ignore[index]
        except OSError:
            pass


def why_not_owned(path: Path) -> str | None:
    """None when `path` is a real directory (not a symlink) owned by us and closed to others."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "it does not exist"
    if stat.S_ISLNK(st.st_mode):
        return "it is a symbolic link"
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a directory"
    if st.st_uid != os.getuid():
        return f"it belongs to uid {st.st_uid}"
    if st.st_mode & 0o022:
        return f"others may write to it (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def why_not_owned_below(path: Path, base: Path) -> str | None:
    """`why_not_owned` for `path` and every directory between it and `base` (exclusive), each
    checked with lstat, so a symlink anywhere on the way is refused, not followed."""
    path, base = Path(path), Path(base)
    chain = [path, *[p for p in path.parents if p.is_relative_to(base) and p != base]]
    for p in reversed(chain):
        why = why_not_owned(p)
        if why:
            return f"{p}: {why}"
    return None


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) mode 0700, or check an existing one is ours; raises
    NotOwned otherwise. Never follows a symlink at `path`."""
    path = Path(path)
    if not os.path.lexists(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
    why = why_not_owned(path)
    if why:
        raise NotOwned(NOT_OURS.format(path=path, why=why))
    st = os.lstat(path)
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


def remove_owned(path: Path) -> bool:
    """Remove a directory tree only if it is ours (lstat); True when removed."""
    if not _ours_relaxed(path):
        return False
    remove_tree(path)
    return True


def remove_tree(path: Path) -> None:
    """Remove a directory tree even where its own modes forbid it (an overlay's work dir is mode
    000; an agent may make directories read-only). Never follows a symlink."""

    def unlock(directory: str) -> None:
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            return
        try:
            if stat.S_IMODE(os.fstat(fd).st_mode) & 0o700 != 0o700:
                os.fchmod(fd, 0o700)
        except OSError:
            pass
        finally:
            os.close(fd)

    if not os.path.isdir(path) or os.path.islink(path):
        return
    shutil.rmtree(path, ignore_errors=True)
    if not os.path.lexists(path):
        return
    unlock(str(path))
    for top, dirs, _ in os.walk(path):  # top-down: each directory is opened up before it is listed
        for name in dirs:
            unlock(os.path.join(top, name))
    shutil.rmtree(path, ignore_errors=True)


def _ours_relaxed(path: Path) -> bool:
    """Ours and a real directory, whatever its mode (e.g. a checkout made 0755 by cp)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid()


def read_private(path: Path, limit: int = 1 << 20) -> bytes:
    """Read a small file we wrote, refusing symlinks and other users' files."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
            raise OSError(f"{path} is not our regular file")
        return os.read(fd, limit)
    finally:
        os.close(fd)
