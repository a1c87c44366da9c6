"""What the repository itself tells agents, read by the host from the run's base commit.

`AGENTS.md` files and the project's package names come from the commit's tree in the host's cache
(`git ls-tree` / `git cat-file` on the bare repository with the hardened `git` helper), never
through a sandbox's checkout: an agent cannot change what the next agent is told, and a symlink
named AGENTS.md is not followed.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .repo import PreparedRepo, git

AGENTS_FILE = "AGENTS.md"
INSTRUCTIONS_LIMIT = 8000  # characters of one AGENTS.md given to an agent
_MAX_BLOB = 1_000_000  # bytes; a larger AGENTS.md is not read at all
TRUNCATED_NOTE = "\n… [{path} is {total} characters long; only the first {shown} are shown]"


@dataclass(frozen=True)
class Instructions:
    path: str  # "AGENTS.md" or "pkg/AGENTS.md"
    text: str


@dataclass
class RepoFacts:
    """The base commit's AGENTS.md files (by directory, "" = root) and its Python packages."""

    agents_files: dict[str, str] = field(default_factory=dict)  # directory -> blob sha
    packages: tuple[tuple[str, str], ...] = ()  # (import name, directory), see python_packages
    cache: Path | None = field(default=None, repr=False)  # the bare repository holding the commit
    _texts: dict[str, Instructions | None] = field(default_factory=dict, repr=False)

    def instructions_for(self, task: str) -> list[Instructions]:
        """The root AGENTS.md, and the nearest nested one when the task clearly works in its
        directory (every directory with an AGENTS.md that the task names lies on one path)."""
        found = [self._read("")] if "" in self.agents_files else []
        named = [d for d in self.agents_files if d and _names_dir(task, d)]
        deepest = max(named, key=len) if named else None
        if deepest and all(deepest.startswith(d + "/") or d == deepest for d in named):
            found.append(self._read(deepest))
        return [i for i in found if i is not None]

    def _read(self, directory: str) -> Instructions | None:
        if directory not in self._texts:
            self._texts[directory] = _read_blob(self.cache, self.agents_files[directory], directory)
        return self._texts[directory]


def _names_dir(task: str, directory: str) -> bool:
    return re.search(r"(?<![\w./-])(?:\./)?" + re.escape(directory) + r"/", task) is not None


def _read_blob(cache: Path | None, sha: str, directory: str) -> Instructions | None:
    path = f"{directory}/{AGENTS_FILE}" if directory else AGENTS_FILE
    try:
        size = int(git("cat-file", "-s", sha, git_dir=cache).stdout.decode().strip() or 0)
        if size > _MAX_BLOB:
            return Instructions(path, f"({path} is {size} bytes, too large to include.)")
        text = git("cat-file", "blob", sha, git_dir=cache).stdout.decode("utf-8", "replace").strip()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, ValueError):
        return None
    if len(text) > INSTRUCTIONS_LIMIT:
        note = TRUNCATED_NOTE.format(path=path, total=len(text), shown=INSTRUCTIONS_LIMIT)
        text = text[:INSTRUCTIONS_LIMIT] + note
    return Instructions(path, text) if text else None


def read_repo_facts(cache: Path, commit: str) -> RepoFacts:
    """One listing of the commit's tree; AGENTS.md texts are read when an agent needs them."""
    try:
        raw = git("ls-tree", "-r", "-z", "--full-tree", commit, git_dir=cache, timeout=120).stdout
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return RepoFacts(cache=cache)
    agents: dict[str, str] = {}
    paths: list[str] = []
    for entry in raw.split(b"\0"):
        if b"\t" not in entry:
            continue
        meta, name = entry.split(b"\t", 1)
        mode, kind, sha = meta.decode().split()
        path = name.decode("utf-8", "surrogateescape")
        paths.append(path)
        # Regular files only: a symlink named AGENTS.md could point anywhere.
        if kind == "blob" and mode in ("100644", "100755") and path.rsplit("/", 1)[-1] == AGENTS_FILE:
            agents[path.rsplit("/", 1)[0] if "/" in path else ""] = sha
    return RepoFacts(agents_files=agents, packages=python_packages(paths), cache=cache)


def python_packages(paths: list[str], limit: int = 8) -> tuple[tuple[str, str], ...]:
    """The project's top-level Python packages as (import name, directory in the checkout): those
    under `src/` or `lib/`, else those at the root. Whether and how each imports is measured inside
    the sandbox (the driver's `find_spec`), not guessed from this layout."""
    for top in ("src", "lib"):
        found = sorted(
            {
                p.split("/")[1]
                for p in paths
                if p.startswith(top + "/") and p.count("/") == 2 and p.endswith("/__init__.py")
            }
        )
        if found:
            return tuple((name, f"{top}/{name}") for name in found[:limit])
    found = sorted({p.split("/")[0] for p in paths if p.count("/") == 1 and p.endswith("/__init__.py")})
    named = [name for name in found if name.isidentifier() and name not in ("tests", "test")]
    return tuple((name, name) for name in named[:limit])


def read_trusted_facts(repo: PreparedRepo) -> RepoFacts:
    """The packages of the run's commit, and AGENTS.md only from a commit the host trusts: for an
    untrusted author's commit (a fork's head) the base it targets, or none at all."""
    facts = read_repo_facts(repo.cache, repo.commit)
    if repo.trusted:
        return facts
    base = read_repo_facts(repo.cache, repo.trusted_commit) if repo.trusted_commit else RepoFacts()
    return RepoFacts(agents_files=base.agents_files, packages=facts.packages, cache=repo.cache)
