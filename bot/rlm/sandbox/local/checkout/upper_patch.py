"""The patch of a copy-on-write sandbox, computed by the host from the agent's upper layer.

The upper layer holds only what the agent changed: whole new or rewritten files, symlinks,
directories, whiteouts (a character device 0/0: the path was deleted) and opaque directories (an
xattr: nothing of the lower directory shows through). The host walks it through directory file
descriptors without ever following a link, writes the blobs itself into a throwaway git dir that
borrows the cache's objects, stages every change onto a private index of the base tree, and lets
git diff that index against the base: the same `git diff --cached` as a copied checkout gets, so
both modes give the same patch. Untracked files are included, ignored ones excluded (the
`.gitignore` files of the agent's view decide); nothing the agent wrote is ever run or configured.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from ....patch import DIFF_FLAGS, read_bounded
from ....repo import SAFE_GIT, git, git_env

OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
GITIGNORE = b".gitignore"


@dataclass
class UpperChanges:
    """What an upper layer says about the merged tree, as paths relative to its root (bytes)."""

    files: dict[bytes, tuple[str, str]] = field(default_factory=dict)  # path -> (mode, object id)
    removed: set[bytes] = field(default_factory=set)  # whiteouts: the path is gone
    cleared: set[bytes] = field(default_factory=set)  # opaque dirs: nothing below shows through
    gitignores: dict[bytes, bytes] = field(default_factory=dict)  # path -> content


class LooseObjects:
    """Writes blobs as loose objects into one git dir's object store (host-side, no git process)."""

    def __init__(self, objects: Path, algorithm: str):
        self.objects = objects
        self.algorithm = algorithm

    def write(self, data: bytes) -> str:
        header = b"blob %d\0" % len(data)
        oid = hashlib.new(self.algorithm, header + data).hexdigest()
        path = self.objects / oid[:2] / oid[2:]
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            tmp = path.parent / f"tmp-{os.getpid()}-{oid[2:10]}"
            tmp.write_bytes(zlib.compress(header + data, 1))
            tmp.replace(path)
        return oid


def _opaque(dir_fd: int) -> bool:
    for name in OPAQUE_XATTRS:
        try:
            if os.getxattr(dir_fd, name) == b"y":
                return True
        except OSError:  # absent, not readable by this user, or not supported
            continue
    return False


def _read_file(dir_fd: int, name: str) -> bytes | None:
    """A regular file's content, opened relative to its directory without following a link."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None  # replaced by a link or removed since the listing
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        return f.read()


def read_upper(upper: Path, objects: LooseObjects) -> UpperChanges:
    """Every change an upper layer records (a `.git` at any depth is not part of the tree)."""
    changes = UpperChanges()
    root = os.open(upper, _DIR_FLAGS)
    try:
        _walk(root, b"", objects, changes)
    finally:
        os.close(root)
    return changes


def _walk(dir_fd: int, prefix: bytes, objects: LooseObjects, changes: UpperChanges) -> None:
    with os.scandir(dir_fd) as entries:
        listing = list(entries)
    for entry in listing:
        name = entry.name
        bname = os.fsencode(name)
        if bname == b".git":
            continue
        path = prefix + bname
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            changes.removed.add(path)
        elif stat.S_ISDIR(st.st_mode):
            try:
                sub = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError:
                continue
            try:
                if _opaque(sub):
                    changes.cleared.add(path)
                _walk(sub, path + b"/", objects, changes)
            finally:
                os.close(sub)
        elif stat.S_ISREG(st.st_mode):
            data = _read_file(dir_fd, name)
            if data is not None:
                mode = "100755" if st.st_mode & stat.S_IXUSR else "100644"
                changes.files[path] = (mode, objects.write(data))
                if bname == GITIGNORE:
                    changes.gitignores[path] = data
        elif stat.S_ISLNK(st.st_mode):
            try:
                target = os.readlink(bname, dir_fd=dir_fd)
            except OSError:
                continue
            changes.files[path] = ("120000", objects.write(target))


def _base_entries(git_dir: Path, base: str, env: dict) -> dict[bytes, tuple[str, str]]:
    out = git("ls-tree", "-r", "-z", "--full-tree", base, git_dir=git_dir, env=env, timeout=300).stdout
    entries: dict[bytes, tuple[str, str]] = {}
    for record in out.split(b"\0"):
        if record:
            meta, path = record.split(b"\t", 1)
            mode, _, oid = meta.decode().split(" ")
            entries[path] = (mode, oid)
    return entries


def _under(paths: set[bytes], entries: dict[bytes, tuple[str, str]], itself: bool = True) -> set[bytes]:
    """The entries below any of `paths` (and at them, with `itself`)."""
    if not paths:
        return set()
    prefixes = tuple(p + b"/" for p in paths)
    return {e for e in entries if (itself and e in paths) or e.startswith(prefixes)}


def _ignored(
    git_dir: Path, env: dict, candidates: list[bytes], gitignores: dict[bytes, bytes], tmp: Path
) -> set[bytes]:
    """Which untracked paths the merged tree's `.gitignore` files exclude (a shadow work tree holds
    only those files, written by the host as plain files)."""
    if not candidates:
        return set()
    shadow = tmp / "shadow"
    shadow.mkdir()
    for path, content in gitignores.items():
        dest = shadow / os.fsdecode(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(content)
    proc = git(
        f"--work-tree={shadow}",
        "check-ignore",
        "--no-index",
        "-z",
        "--stdin",
        git_dir=git_dir,
        env=env,
        input=b"\0".join(candidates) + b"\0",
        check=False,
        timeout=300,
    )
    if proc.returncode not in (0, 1):
        raise OSError(proc.stderr.decode("utf-8", "replace").strip() or "git check-ignore failed")
    return {p for p in proc.stdout.split(b"\0") if p}


def _contents(git_dir: Path, env: dict, oids: list[str]) -> list[bytes]:
    if not oids:
        return []
    out = git("cat-file", "--batch", git_dir=git_dir, env=env, input="\n".join(oids).encode() + b"\n").stdout
    contents, pos = [], 0
    for _ in oids:
        header_end = out.index(b"\n", pos)
        size = int(out[pos:header_end].split()[2])
        contents.append(out[header_end + 1 : header_end + 1 + size])
        pos = header_end + 1 + size + 1
    return contents


def diff_upper(upper: Path, cache: Path, base: str, max_bytes: int | None = None) -> str:
    """Binary diff of the tree `upper` makes of commit `base`, as `git diff --cached` prints it
    (PatchTooLarge past `max_bytes`, without holding more of it)."""
    with tempfile.TemporaryDirectory(prefix="rlm-upper-") as tmp_name:
        tmp = Path(tmp_name)
        env = git_env()
        env["GIT_INDEX_FILE"] = str(tmp / "index")
        algorithm = git("rev-parse", "--show-object-format", git_dir=cache, env=env).stdout.decode().strip()
        git_dir = tmp / "git"
        git("init", "--bare", "--quiet", "--template=", f"--object-format={algorithm}", str(git_dir), env=env)
        (git_dir / "objects" / "info" / "alternates").write_text(str(cache.resolve() / "objects") + "\n")
        changes = read_upper(upper, LooseObjects(git_dir / "objects", algorithm))
        if not (changes.files or changes.removed or changes.cleared):
            return ""  # nothing written: skip reading the base tree (its cost grows with the repository)
        base_entries = _base_entries(git_dir, base, env)
        gone = _under(changes.removed | changes.cleared, base_entries)
        gone |= _under(set(changes.files), base_entries, itself=False)  # a file where a directory was
        kept = {p: e for p, e in base_entries.items() if p not in gone}
        untracked = [p for p in changes.files if p not in base_entries]
        ignore_files = dict(changes.gitignores)
        base_ignores = [
            p
            for p in kept
            if p.rsplit(b"/", 1)[-1] == GITIGNORE
            and p not in changes.files
            and kept[p][0] in ("100644", "100755")
        ]
        ignore_files.update(
            zip(base_ignores, _contents(git_dir, env, [kept[p][1] for p in base_ignores]), strict=True)
        )
        ignored = _ignored(git_dir, env, untracked, ignore_files, tmp)
        staged = {p: e for p, e in changes.files.items() if p not in ignored}
        lines = [b"0 %s\t%s" % (b"0" * len(base_entries[p][1]), p) for p in sorted(gone)]
        lines += [
            b"%s %s\t%s" % (m.encode(), oid.encode(), p)
            for p, (m, oid) in sorted(staged.items())
            if base_entries.get(p) != (m, oid) or p in gone
        ]
        git("read-tree", base, git_dir=git_dir, env=env)
        if lines:
            git(
                "update-index",
                "--add",
                "--replace",
                "-z",
                "--index-info",
                git_dir=git_dir,
                env=env,
                input=b"\0".join(lines) + b"\0",
                timeout=300,
            )
        cmd = ["git", *SAFE_GIT, f"--git-dir={git_dir}", "diff", "--cached", *DIFF_FLAGS, base]
        data = read_bounded(cmd, env, max_bytes, tmp / "stderr")
    return data.decode("utf-8", "surrogateescape")
