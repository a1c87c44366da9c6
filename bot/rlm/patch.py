"""Patches: computed by the host from a checkout, validated against a clean base, summarised.

The host runs git on its own repository cache (read-only inside sandboxes) with a throwaway index
and object directory, and the hardened environment of repo.py, so nothing the agent wrote into the
checkout (a forged .git, hooks, config, attributes naming filter drivers) changes what git does
here. git records a symlink in the checkout as a link and never reads through one.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .repo import SAFE_GIT, git, git_env


class PatchError(Exception):
    pass


PATCH_TOO_LARGE = (
    "the changes make a patch of more than {limit} bytes (rlm.max_patch_bytes), so no patch was "
    "kept; ask for a smaller change, keep generated or binary files out of the checkout, or raise "
    "rlm.max_patch_bytes."
)

FILE_TOO_LARGE = (
    "{path} is {size} bytes, more than rlm.max_patch_bytes ({limit}), so no patch was kept; keep "
    "large generated or binary files out of the checkout (or in a directory .gitignore names), or "
    "raise rlm.max_patch_bytes."
)

PATCH_FAILED = "git could not compute the patch of the checkout: {reason}"


class PatchTooLarge(PatchError):
    """The root's diff is over rlm.max_patch_bytes."""


DIFF_FLAGS = ["--binary", "--no-ext-diff", "--no-textconv", "--no-color", "--full-index"]
CHUNK = 1 << 20


def diff_worktree(git_dir: Path, workdir: Path, base: str, max_bytes: int | None = None) -> str:
    """Diff of `workdir` against commit `base`, untracked files included, ignored excluded.
    `git_dir` is only read (new blobs go to a throwaway object directory). Raises PatchTooLarge
    past `max_bytes`, without ever holding more than that of the diff."""
    with tempfile.TemporaryDirectory(prefix="rlm-index-") as tmp:
        env = git_env()
        env["GIT_INDEX_FILE"] = str(Path(tmp) / "index")
        (Path(tmp) / "objects").mkdir()
        env["GIT_OBJECT_DIRECTORY"] = str(Path(tmp) / "objects")
        env["GIT_ALTERNATE_OBJECT_DIRECTORIES"] = str(Path(git_dir) / "objects")
        wt = [f"--work-tree={workdir}"]
        try:
            git(*wt, "read-tree", base, git_dir=git_dir, env=env)
            git(*wt, "add", "--all", "--", ".", git_dir=git_dir, env=env, timeout=300)
            cmd = ["git", *SAFE_GIT, f"--git-dir={git_dir}", *wt, "diff", "--cached", *DIFF_FLAGS, base]
            data = read_bounded(cmd, env, max_bytes, Path(tmp) / "stderr")
        except subprocess.CalledProcessError as e:
            lines = (e.stderr or b"").decode("utf-8", "replace").strip().splitlines()
            raise PatchError(
                PATCH_FAILED.format(reason=lines[0] if lines else f"exit {e.returncode}")
            ) from None
    return data.decode("utf-8", "surrogateescape")


def read_bounded(
    cmd: list[str], env: dict, max_bytes: int | None, stderr_path: Path, timeout: float = 300
) -> bytes:
    """stdout of `cmd`, refused (PatchTooLarge) as soon as it passes `max_bytes`. Kept as chunks
    and joined once: a growing buffer would hold up to twice the output while it is copied."""
    chunks: list[bytes] = []
    size = 0
    with (
        open(stderr_path, "w+b") as err,
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env) as proc,
    ):
        try:
            while chunk := proc.stdout.read(CHUNK):
                chunks.append(chunk)
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    proc.kill()
                    raise PatchTooLarge(PATCH_TOO_LARGE.format(limit=max_bytes))
            code = proc.wait(timeout=timeout)
        except BaseException:
            proc.kill()
            raise
        if code != 0:
            err.seek(0)
            raise subprocess.CalledProcessError(code, cmd, b"".join(chunks)[:1000], err.read(10_000))
    data = b"".join(chunks)
    chunks.clear()
    return data


def write_text(path: Path, text: str) -> None:
    """`text` (a patch, surrogate-escaped bytes included) into `path` a chunk at a time: a large
    patch is never held twice."""
    with open(path, "wb") as f:
        for i in range(0, len(text), CHUNK):
            f.write(text[i : i + CHUNK].encode("utf-8", "surrogateescape"))


def check_applies(cache: Path, base: str, patch: str) -> None:
    """Raise PatchError unless `patch` applies cleanly to a clean checkout of `base`."""
    if not patch.strip():
        return
    with tempfile.TemporaryDirectory(prefix="rlm-check-") as tmp:
        env = git_env()
        env["GIT_INDEX_FILE"] = str(Path(tmp) / "index")
        git("read-tree", base, git_dir=cache, env=env)
        patch_file = Path(tmp) / "patch.diff"
        write_text(patch_file, patch)
        proc = git("apply", "--cached", "--check", str(patch_file), git_dir=cache, env=env, check=False)
    if proc.returncode != 0:
        reason = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise PatchError(
            f"the patch does not apply to {base[:12]}: {reason[0] if reason else 'unknown reason'}"
        )


@dataclass
class PatchStats:
    files: int = 0
    additions: int = 0
    deletions: int = 0
    paths: list[str] = field(default_factory=list)
    binary: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "files": self.files,
            "additions": self.additions,
            "deletions": self.deletions,
            "paths": self.paths,
            "binary": self.binary,
        }


_HEADER = re.compile(r"^diff --git a/(.*?) b/(.*)$")


def _lines(text: str) -> Iterator[str]:
    """The lines of `text` one at a time (splitlines would hold a second copy of a large patch)."""
    pos, end = 0, len(text)
    while pos < end:
        nl = text.find("\n", pos)
        nl = end if nl < 0 else nl
        yield text[pos:nl].rstrip("\r")
        pos = nl + 1


def patch_stats(patch: str) -> PatchStats:
    stats = PatchStats()
    current = None
    for line in _lines(patch):
        m = _HEADER.match(line)
        if m:
            current = m.group(2)
            stats.paths.append(current)
            continue
        if line.startswith("GIT binary patch") and current:
            stats.binary.append(current)
        elif line.startswith("+") and not line.startswith("+++"):
            stats.additions += 1
        elif line.startswith("-") and not line.startswith("---"):
            stats.deletions += 1
    stats.files = len(stats.paths)
    return stats


def apply_to_dir(patch: str, workdir: Path) -> None:
    """Apply a patch to a plain checkout (e.g. to check a rollout's patch on a fresh clone)."""
    proc = subprocess.run(
        ["git", *SAFE_GIT, "apply", "--whitespace=nowarn", "-"],
        cwd=workdir,
        input=patch.encode("utf-8", "surrogateescape"),
        capture_output=True,
        env=git_env(),
    )
    if proc.returncode != 0:
        raise PatchError(proc.stderr.decode("utf-8", "replace").strip())


@dataclass
class FileChange:
    """One file of a patch applied to the base: new content and mode, or a deletion."""

    path: str
    mode: str | None  # "100644", "100755", "120000"; None when deleted
    content: bytes | None  # None when deleted

    @property
    def deleted(self) -> bool:
        return self.content is None


def changed_files(cache: Path, base: str, patch: str) -> list[FileChange]:
    """The files `patch` changes when applied to `base`, with their full new contents (binary-safe).
    Raises PatchError if it does not apply."""
    if not patch.strip():
        return []
    with tempfile.TemporaryDirectory(prefix="rlm-files-") as tmp:
        env = git_env()
        env["GIT_INDEX_FILE"] = str(Path(tmp) / "index")
        git("read-tree", base, git_dir=cache, env=env)
        proc = git(
            "apply",
            "--cached",
            "-",
            git_dir=cache,
            env=env,
            input=patch.encode("utf-8", "surrogateescape"),
            check=False,
        )
        if proc.returncode != 0:
            raise PatchError(proc.stderr.decode("utf-8", "replace").strip() or "the patch does not apply")
        raw = git("diff-index", "--cached", "--no-renames", "-z", base, git_dir=cache, env=env).stdout
    changes: list[FileChange] = []
    fields = raw.split(b"\0")
    for meta, path in zip(fields[0::2], fields[1::2], strict=False):
        if not meta.startswith(b":"):
            continue
        _, new_mode, _, new_sha, status = meta[1:].decode().split(" ")
        name = path.decode("utf-8", "surrogateescape")
        if status == "D":
            changes.append(FileChange(name, None, None))
        else:
            blob = git("cat-file", "blob", new_sha, git_dir=cache).stdout
            changes.append(FileChange(name, new_mode, blob))
    return changes
