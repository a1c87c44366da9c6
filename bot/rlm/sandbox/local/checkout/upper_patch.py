"""The patch of a copy-on-write sandbox, computed by the host from the agent's upper layer.

The upper layer holds only what the agent changed: whole new or rewritten files, symlinks,
directories, whiteouts (a character device 0/0: the path was deleted) and opaque directories (an
xattr: nothing of the lower directory shows through). The host walks it through directory file
descriptors without ever following a link, writes the blobs itself into a throwaway git dir that
borrows the cache's objects, stages every change onto a private index of the base tree, and lets
git diff that index against the base: the same `git diff --cached` as a copied checkout gets, so
both modes give the same patch. Untracked files are included, ignored ones excluded (the
`.gitignore` files of the agent's view decide); nothing the agent wrote is ever run or configured.

The builder reads the layer exactly as the mount did: only the opaque xattr of the namespace the
mount used counts (`trusted.` as root, `user.` with `userxattr`, see overlay_launch.py), so an
attribute the agent could set on its own files never deletes anything it still sees. It is bounded
by `max_bytes` (rlm.max_patch_bytes) before it reads: the walk looks at sizes only, ignored files
are never read, a changed file larger than `max_bytes` refuses the patch from its size alone, and
blobs are hashed and compressed in chunks, so a sparse or huge file costs the host no memory.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from ....patch import DIFF_FLAGS, FILE_TOO_LARGE, PATCH_TOO_LARGE, PatchError, PatchTooLarge, read_bounded
from ....repo import SAFE_GIT, git, git_env
from .overlay_launch import xattr_namespace

CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
GITIGNORE = b".gitignore"
FILE_CHANGED = "{path} changed while the patch was being computed; try again once nothing writes to it"


@dataclass
class UpperChanges:
    """What an upper layer says about the merged tree, as paths relative to its root (bytes).
    Regular files are listed with their size only; nothing else of them is read by the walk."""

    files: dict[bytes, tuple[str, int]] = field(default_factory=dict)  # path -> (mode, size)
    links: dict[bytes, bytes] = field(default_factory=dict)  # symlink path -> target
    removed: set[bytes] = field(default_factory=set)  # whiteouts: the path is gone
    cleared: set[bytes] = field(default_factory=set)  # opaque dirs: nothing below shows through
    gitignores: dict[bytes, bytes] = field(default_factory=dict)  # path -> content

    def __bool__(self) -> bool:
        return bool(self.files or self.links or self.removed or self.cleared)


class LooseObjects:
    """Writes blobs as loose objects into one git dir's object store (host-side, no git process),
    hashing and compressing in chunks: memory does not grow with the blob."""

    def __init__(self, objects: Path, algorithm: str):
        self.objects = objects
        self.algorithm = algorithm

    def write(self, data: bytes) -> str:
        return self.write_chunks(len(data), iter((data,)), b"?")

    def write_chunks(self, size: int, chunks, path: bytes) -> str:
        """The blob of exactly `size` bytes from `chunks`; PatchError if they hold another size."""
        header = b"blob %d\0" % size
        digest = hashlib.new(self.algorithm, header)
        packer = zlib.compressobj(1)
        fd, tmp_name = tempfile.mkstemp(prefix="tmp-", dir=self.objects)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(packer.compress(header))
                seen = 0
                for chunk in chunks:
                    seen += len(chunk)
                    if seen > size:
                        break
                    digest.update(chunk)
                    out.write(packer.compress(chunk))
                if seen != size:
                    raise PatchError(FILE_CHANGED.format(path=os.fsdecode(path)))
                out.write(packer.flush())
            oid = digest.hexdigest()
            dest = self.objects / oid[:2] / oid[2:]
            if dest.exists():
                os.unlink(tmp_name)
            else:
                dest.parent.mkdir(exist_ok=True)
                os.replace(tmp_name, dest)
            return oid
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise


def opaque_xattr() -> str:
    """The one xattr that makes a directory of the upper layer opaque, as the mount reads it."""
    return f"{xattr_namespace(os.geteuid())}.overlay.opaque"


def _opaque(dir_fd: int, xattr: str) -> bool:
    try:
        return os.getxattr(dir_fd, xattr) == b"y"
    except OSError:  # absent, not readable by this user, or not supported
        return False


def _open_file(dir_fd: int, name: bytes | str) -> int | None:
    """A regular file's descriptor, opened relative to its directory without following a link."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None  # replaced by a link or removed since the listing
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def _chunks(fd: int, size: int):
    left = size + 1  # one byte more: a file that grew is noticed
    while left > 0:
        chunk = os.read(fd, min(CHUNK, left))
        if not chunk:
            return
        left -= len(chunk)
        yield chunk


def open_beneath(root: Path, path: bytes) -> int | None:
    """`path` (relative, from the walk) under `root`, opened one component at a time without
    following a link anywhere; None when it is no longer a regular file there."""
    parts = path.split(b"/")
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            try:
                sub = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError:
                return None
            os.close(fd)
            fd = sub
        return _open_file(fd, parts[-1])
    finally:
        os.close(fd)


def read_upper(upper: Path, max_bytes: int | None = None, xattr: str | None = None) -> UpperChanges:
    """Every change an upper layer records (a `.git` at any depth is not part of the tree).
    `.gitignore` files are read (PatchTooLarge when they hold more than `max_bytes` in all)."""
    changes = UpperChanges()
    root = os.open(upper, _DIR_FLAGS)
    try:
        _walk(root, b"", changes, xattr or opaque_xattr(), [max_bytes, max_bytes])
    finally:
        os.close(root)
    return changes


def _walk(dir_fd: int, prefix: bytes, changes: UpperChanges, xattr: str, budget: list) -> None:
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
                if _opaque(sub, xattr):
                    changes.cleared.add(path)
                _walk(sub, path + b"/", changes, xattr, budget)
            finally:
                os.close(sub)
        elif stat.S_ISREG(st.st_mode):
            mode = "100755" if st.st_mode & stat.S_IXUSR else "100644"
            changes.files[path] = (mode, st.st_size)
            if bname == GITIGNORE:
                content = _read_small(dir_fd, name, st.st_size, budget)
                if content is not None:
                    changes.gitignores[path] = content
        elif stat.S_ISLNK(st.st_mode):
            try:
                changes.links[path] = os.readlink(bname, dir_fd=dir_fd)
            except OSError:
                continue


def _read_small(dir_fd: int, name: str, size: int, budget: list) -> bytes | None:
    """A `.gitignore`'s content, charged to the budget ([bytes left, limit], or [None, None])."""
    if budget[0] is not None:
        if size > budget[0]:
            raise PatchTooLarge(PATCH_TOO_LARGE.format(limit=budget[1]))
        budget[0] -= size
    fd = _open_file(dir_fd, name)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read(size)


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


def _blob_sizes(git_dir: Path, env: dict, oids: list[str]) -> dict[str, int]:
    if not oids:
        return {}
    out = git("cat-file", "--batch-check", git_dir=git_dir, env=env, input="\n".join(oids).encode() + b"\n")
    sizes = {}
    for line in out.stdout.decode().splitlines():
        oid, _, size = line.split()
        sizes[oid] = int(size)
    return sizes


def _write_blobs(
    upper: Path,
    changes: UpperChanges,
    wanted: list[bytes],
    base_entries: dict[bytes, tuple[str, str]],
    objects: LooseObjects,
    git_dir: Path,
    env: dict,
    max_bytes: int | None,
) -> dict[bytes, tuple[str, str]]:
    """(mode, object id) of every wanted path, its size checked before a byte of it is read: a
    changed file over `max_bytes` refuses the patch (one the agent only copied up, the same size and
    content as the base's, is hashed in chunks and drops out)."""
    big = [
        p for p in wanted if p in changes.files and max_bytes is not None and changes.files[p][1] > max_bytes
    ]
    base_sizes = _blob_sizes(git_dir, env, [base_entries[p][1] for p in big if p in base_entries])
    for p in big:
        size = changes.files[p][1]
        if (
            base_entries.get(p, ("", ""))[0] not in ("100644", "100755")
            or base_sizes.get(base_entries[p][1]) != size
        ):
            raise PatchTooLarge(FILE_TOO_LARGE.format(path=os.fsdecode(p), size=size, limit=max_bytes))
    staged: dict[bytes, tuple[str, str]] = {}
    for p in wanted:
        if p in changes.links:
            staged[p] = ("120000", objects.write(changes.links[p]))
            continue
        mode, size = changes.files[p]
        fd = open_beneath(upper, p)
        if fd is None:
            continue  # gone or replaced by a link since the walk
        try:
            size = os.fstat(fd).st_size
            oid = objects.write_chunks(size, _chunks(fd, size), p)
        finally:
            os.close(fd)
        if p in big and oid != base_entries[p][1]:
            raise PatchTooLarge(FILE_TOO_LARGE.format(path=os.fsdecode(p), size=size, limit=max_bytes))
        staged[p] = (mode, oid)
    return staged


def diff_upper(
    upper: Path, cache: Path, base: str, max_bytes: int | None = None, xattr: str | None = None
) -> str:
    """Binary diff of the tree `upper` makes of commit `base`, as `git diff --cached` prints it
    (PatchTooLarge past `max_bytes`, decided from sizes before anything large is read). `xattr`:
    the opaque attribute the mount honoured (default: the one overlay_launch.py mounts with)."""
    with tempfile.TemporaryDirectory(prefix="rlm-upper-") as tmp_name:
        tmp = Path(tmp_name)
        env = git_env()
        env["GIT_INDEX_FILE"] = str(tmp / "index")
        changes = read_upper(upper, max_bytes, xattr)
        if not changes:
            return ""  # nothing written: skip reading the base tree (its cost grows with the repository)
        algorithm = git("rev-parse", "--show-object-format", git_dir=cache, env=env).stdout.decode().strip()
        git_dir = tmp / "git"
        git("init", "--bare", "--quiet", "--template=", f"--object-format={algorithm}", str(git_dir), env=env)
        (git_dir / "objects" / "info" / "alternates").write_text(str(cache.resolve() / "objects") + "\n")
        base_entries = _base_entries(git_dir, base, env)
        written = set(changes.files) | set(changes.links)
        gone = _under(changes.removed | changes.cleared, base_entries)
        gone |= _under(written, base_entries, itself=False)  # a file where a directory was
        kept = {p: e for p, e in base_entries.items() if p not in gone}
        untracked = [p for p in written if p not in base_entries]
        ignore_files = dict(changes.gitignores)
        base_ignores = [
            p
            for p in kept
            if p.rsplit(b"/", 1)[-1] == GITIGNORE and p not in written and kept[p][0] in ("100644", "100755")
        ]
        ignore_files.update(
            zip(base_ignores, _contents(git_dir, env, [kept[p][1] for p in base_ignores]), strict=True)
        )
        ignored = _ignored(git_dir, env, untracked, ignore_files, tmp)
        wanted = sorted(p for p in written if p not in ignored)
        objects = LooseObjects(git_dir / "objects", algorithm)
        staged = _write_blobs(upper, changes, wanted, base_entries, objects, git_dir, env, max_bytes)
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
