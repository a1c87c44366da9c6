"""Fetch a repository once per rollout into a local cache, at one exact commit.

The cache is a bare repository per source under `<cache_root>/repos/`. Credentials (an HTTP
Authorization header) are handed to git through its environment for one command only: they are
never written to a config file, never on a command line, never in a sandbox.

Every git command the host runs reads no system, global or repository-supplied configuration it
did not write: no operator ~/.gitconfig (HOME is an empty private directory), no hooks, no
fsmonitor, no attributes file, and diffs without textconv or external drivers. The only config is
that of git dirs the host made and the sandbox sees read-only, so a filter driver named by a
`.gitattributes` (the repository's or an agent's) has no command to run.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import os
import re
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import RepoError
from .owned import NotOwned, private_dir, remove_tree

FETCH_TIMEOUT = 900
_SHA = re.compile(r"^[0-9a-f]{4,40}$")
MAX_PINNED = 20  # commits kept pinned in a repository cache; older pins are dropped
# Host-side git never runs hooks, fsmonitor or external diff drivers from data it did not write.
SAFE_GIT = [
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "protocol.ext.allow=never",
    "-c",
    "core.attributesFile=/dev/null",
    "-c",
    "diff.external=",
    "-c",
    "core.pager=cat",
]


@dataclass(frozen=True)
class PreparedRepo:
    source: str  # URL or absolute path as given
    cache: Path  # bare git dir holding the commit
    commit: str  # full 40-hex SHA every sandbox checks out
    branch: str | None = None
    # A bare git dir holding only the commit's history and the tags on it (commit_store): what
    # sandboxes see. None: made by hand in a test; checkouts then borrow the whole cache.
    store: Path | None = None

    @property
    def objects(self) -> Path:
        """The object store checkouts borrow from (alternates) and sandboxes may read."""
        return (self.store or self.cache) / "objects"

    # Whose repository this is, for every cache shared between runs (environments): the GitHub
    # repository id for the App and the Action, else the canonical URL or resolved path.
    scope: str = ""
    # False: `commit` was written by someone the host does not trust (a fork pull request's head).
    # Then nothing of it runs with trust: setup and AGENTS.md come from `trusted_commit` (the
    # base the pull request targets) or, without one, setup builds a private environment and
    # the agents get no AGENTS.md.
    trusted: bool = True
    trusted_commit: str | None = None

    @property
    def setup_commit(self) -> str:
        """The commit setup runs on and AGENTS.md comes from."""
        return self.commit if self.trusted else self.trusted_commit or self.commit

    @property
    def setup_trusted(self) -> bool:
        """Whether what setup runs is trusted content (and its environment may be shared)."""
        return self.trusted or self.trusted_commit is not None

    def at(self, commit: str) -> PreparedRepo:
        """The same repository at another commit already in the cache (with that commit's own
        store when prepare_repo made one: setup on a trusted base sees the base's history only)."""
        store = store_path(self.cache, commit) if self.store is not None else None
        ready = store is not None and (store / "rlm-ready").exists()
        return dataclasses.replace(self, commit=commit, store=store if ready else None)


@lru_cache(maxsize=1)
def empty_home() -> str:
    """An empty private directory used as HOME (and XDG_CONFIG_HOME) for host git."""
    return tempfile.mkdtemp(prefix="rlm-git-home-")


def git_env(auth_header: str | None = None) -> dict[str, str]:
    """The environment of every host git command: the operator's git config, the system's and any
    GIT_* variable are left out (see the module docstring)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "XDG_CONFIG"))}
    env["HOME"] = env["XDG_CONFIG_HOME"] = empty_home()
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env["GIT_CONFIG_GLOBAL"] = "/dev/null"
    env["GIT_ATTR_NOSYSTEM"] = "1"
    if auth_header:
        env["GIT_CONFIG_COUNT"] = "1"
        env["GIT_CONFIG_KEY_0"] = "http.extraHeader"
        env["GIT_CONFIG_VALUE_0"] = auth_header
    return env


def git(
    *args: str,
    git_dir: Path | None = None,
    env: dict | None = None,
    input: bytes | None = None,
    timeout: float = 120,
    check: bool = True,
) -> subprocess.CompletedProcess:
    cmd = ["git", *SAFE_GIT]
    if git_dir is not None:
        cmd.append(f"--git-dir={git_dir}")
    proc = subprocess.run(
        [*cmd, *args], capture_output=True, input=input, env=env or git_env(), timeout=timeout
    )
    if check and proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, [*cmd, *args], proc.stdout, proc.stderr)
    return proc


def normalize_source(repo: str) -> str:
    """A local path becomes absolute; a URL (or scp-like git@host:path) is kept as given."""
    if "://" in repo or re.match(r"^[\w.-]+@[\w.-]+:", repo):
        return repo
    path = Path(repo).expanduser().resolve()
    if not path.exists():
        raise RepoError(f"{repo} is neither a URL nor an existing directory; pass a git URL or a local path.")
    return str(path)


def canonical_source(source: str) -> str:
    """One name per repository whatever its spelling: a resolved path, or a URL without
    credentials, `.git` or a trailing slash, its scheme and host in lower case."""
    if "://" not in source:
        return source if re.match(r"^[\w.-]+@[\w.-]+:", source) is None else _scp_url(source)
    scheme, _, rest = source.partition("://")
    host, _, path = rest.partition("/")
    host = host.rsplit("@", 1)[-1].lower()
    path = re.sub(r"(\.git)?/*$", "", path)
    return f"{scheme.lower()}://{host}/{path}"


def _scp_url(source: str) -> str:
    host, _, path = source.split("@", 1)[1].partition(":")
    return canonical_source(f"ssh://{host}/{path.lstrip('/')}")


def _cache_dir(cache_root: Path, source: str) -> Path:
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", source.rstrip("/").rsplit("/", 1)[-1])[:40] or "repo"
    return cache_root / "repos" / f"{name}-{digest}.git"


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(str(path) + ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _last_line(err: bytes) -> str:
    lines = [ln.strip() for ln in err.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "git gave no reason"


TAGS = "+refs/tags/*:refs/tags/*"  # fetched with every ref: version-from-git tools need them
TAGS_FETCHED = "rlm-tags"  # a marker: this cache has fetched the source's tags at least once


def _fetch(cache: Path, source: str, refspec: str, env: dict) -> subprocess.CompletedProcess:
    try:
        return git(
            "fetch",
            "--quiet",
            "--no-tags",
            source,
            refspec,
            TAGS,
            git_dir=cache,
            env=env,
            timeout=FETCH_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RepoError(
            f"fetching the repository took longer than {FETCH_TIMEOUT}s; try again later."
        ) from None


def _fetch_tags(cache: Path, source: str, env: dict) -> bool:
    try:
        proc = git(
            "fetch",
            "--quiet",
            "--no-tags",
            source,
            TAGS,
            git_dir=cache,
            env=env,
            timeout=FETCH_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


def _resolve(cache: Path, rev: str) -> str | None:
    proc = git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", git_dir=cache, check=False)
    if proc.returncode != 0:
        return None
    return proc.stdout.decode().strip() or None


def prepare_repo(
    repo: str,
    cache_root: Path,
    branch: str | None = None,
    commit: str | None = None,
    auth_header: str | None = None,
    *,
    scope: str | None = None,
    trusted: bool = True,
    trusted_commit: str | None = None,
) -> PreparedRepo:
    """Fetch `repo` into the cache and pin the commit: `commit` if given, else `branch`'s head,
    else the remote's default branch head. `scope`: the repository's identity for shared caches
    (default: its canonical source); `trusted`/`trusted_commit`: see PreparedRepo (the trusted
    commit is fetched and pinned too)."""
    source = normalize_source(repo)
    try:
        private_dir(cache_root)
    except NotOwned as e:
        raise RepoError(str(e)) from None
    cache = _cache_dir(cache_root, source)
    env = git_env(auth_header)
    shown = re.sub(r"//[^/@]+@", "//", source)  # never echo credentials embedded in a URL
    if commit and not _SHA.match(commit.lower()):
        raise RepoError(f"--commit {commit!r} is not a commit SHA (4 to 40 hex digits).")
    with _locked(cache):
        if not (cache / "HEAD").exists():
            cache.mkdir(parents=True, exist_ok=True)
            git("init", "--bare", "--quiet", str(cache))
        sha = None
        if not (cache / TAGS_FETCHED).exists():  # a cache made before tags were fetched
            if _fetch_tags(cache, source, env):
                (cache / TAGS_FETCHED).touch()
        if commit:
            sha = _fetch_commit(cache, source, commit, env, shown)
        else:
            ref = f"refs/heads/{branch}" if branch else "HEAD"
            proc = _fetch(cache, source, ref, env)
            if proc.returncode != 0:
                reason = _last_line(proc.stderr)
                if branch and "couldn't find remote ref" in reason:
                    raise RepoError(f"branch {branch!r} does not exist in {shown}.")
                raise RepoError(f"could not fetch {shown}: {reason}. Check the URL or path and your access.")
            sha = _resolve(cache, "FETCH_HEAD")
            if sha is None:
                raise RepoError(f"{shown} has no commits to check out.")
        base = None
        if not trusted and trusted_commit:
            if not _SHA.match(trusted_commit.lower()):
                raise RepoError(f"the trusted commit {trusted_commit!r} is not a commit SHA.")
            base = _fetch_commit(cache, source, trusted_commit, env, shown)
        # Keep the commits reachable so no maintenance ever drops them while sandboxes use them.
        for pin in {sha, base} - {None}:
            git("update-ref", f"refs/rlm/pinned/{pin}", pin, git_dir=cache)
            try:
                os.utime(cache / "refs" / "rlm" / "pinned" / pin)  # when it was last pinned
            except OSError:
                pass
        for stale in prune_pins(cache):
            remove_tree(store_path(cache, stale.rsplit("/", 1)[-1]))
        store = commit_store(cache, sha)
        if base is not None:
            commit_store(cache, base)  # setup runs there (PreparedRepo.at)
    return PreparedRepo(
        source=source,
        cache=cache,
        commit=sha,
        branch=branch,
        store=store,
        scope=scope or canonical_source(source),
        trusted=trusted,
        trusted_commit=base,
    )


def _fetch_commit(cache: Path, source: str, commit: str, env: dict, shown: str) -> str:
    """The full SHA of `commit`, fetched into the cache when it is not there yet."""
    sha = _resolve(cache, commit) if len(commit) == 40 else None
    if sha is None and len(commit) == 40:
        _fetch(cache, source, commit, env)  # servers that allow fetching a SHA
        sha = _resolve(cache, commit)
    if sha is None:
        proc = _fetch(cache, source, "+refs/heads/*:refs/remotes/source/*", env)
        if proc.returncode != 0:
            raise RepoError(
                f"could not fetch {shown}: {_last_line(proc.stderr)}. Check the URL or path and your access."
            )
        sha = _resolve(cache, commit)
    if sha is None:
        raise RepoError(f"commit {commit} was not found in {shown}.")
    return sha


def store_path(cache: Path, commit: str) -> Path:
    return cache.parent.parent / "commits" / f"{cache.name.removesuffix('.git')}-{commit}.git"


def commit_store(cache: Path, commit: str) -> Path:
    """A bare git dir holding only `commit`, its ancestors and the tags on them (packed from the
    cache, kept per commit): sandboxes read history through it, so nothing after the commit
    (later commits, other branches, tags on them) is there to find by any git command or by
    reading object files. Tags fetched since it was made are added (never removed in place: a
    running rollout may be reading it). The caller holds the cache's lock."""
    store = store_path(cache, commit)
    tags = _tags_on(cache, commit)
    if (store / "rlm-ready").exists():
        if _packed_refs(tags, commit) != (store / "packed-refs").read_text():
            _add_tags(cache, store, tags, commit)
        return store
    building = store.with_name(f".{store.name}.{os.getpid()}")
    remove_tree(building)
    building.parent.mkdir(parents=True, exist_ok=True)
    try:
        git("init", "--bare", "--quiet", "--template=", str(building))
        (building / "objects" / "pack").mkdir(parents=True, exist_ok=True)
        revs = "".join(f"{rev}\n" for rev in [commit, *(sha for sha, _ in tags)])
        _pack(cache, building, revs, "--revs", "--include-tag")
        (building / "packed-refs").write_text(_packed_refs(tags, commit))
        (building / "HEAD").write_text(commit + "\n")
        (building / "rlm-ready").write_text(commit + "\n")
        os.chmod(building, 0o755)
        remove_tree(store)
        building.rename(store)
    finally:
        remove_tree(building)
    return store


def _tags_on(cache: Path, commit: str) -> list[tuple[str, str]]:
    """(object, ref) of every tag whose commit is `commit` or one of its ancestors."""
    out = git(
        "for-each-ref", f"--merged={commit}", "--format=%(objectname) %(refname)", "refs/tags/", git_dir=cache
    ).stdout.decode()
    return [(sha, ref) for sha, _, ref in (line.partition(" ") for line in out.splitlines()) if ref]


def _packed_refs(tags: list[tuple[str, str]], commit: str) -> str:
    refs = "".join(f"{sha} {ref}\n" for sha, ref in tags)
    return "# pack-refs with: peeled\n" + refs + f"{commit} refs/rlm/commit\n"


def _pack(cache: Path, store: Path, objects: str, *flags: str) -> None:
    git(
        "pack-objects",
        *flags,
        "--quiet",
        str(store / "objects" / "pack" / "pack"),
        git_dir=cache,
        input=objects.encode(),
        timeout=FETCH_TIMEOUT,
    )


def _add_tags(cache: Path, store: Path, tags: list[tuple[str, str]], commit: str) -> None:
    """The annotated tag objects in a new pack (their targets are already there), then the refs."""
    if tags:
        _pack(cache, store, "".join(f"{sha}\n" for sha, _ in tags))
    tmp = store / f"packed-refs.{os.getpid()}"
    tmp.write_text(_packed_refs(tags, commit))
    tmp.replace(store / "packed-refs")


def tag_refs(repo: PreparedRepo) -> str:
    """The store's tags as packed-refs lines, for a checkout's own git dir (`git describe`)."""
    if repo.store is None:
        return ""
    try:
        text = (repo.store / "packed-refs").read_text()
    except OSError:
        return ""
    return "".join(line + "\n" for line in text.splitlines() if " refs/tags/" in line)


def prune_pins(cache: Path, keep: int = MAX_PINNED) -> list[str]:
    """Drop all but the `keep` most recently pinned commits' refs (a long-running server pins one
    per run). A dropped pin only makes its objects collectable by a later `git gc`; no rollout
    of this process still uses a commit pinned `keep` runs ago. Returns the dropped refs."""
    out = git("for-each-ref", "--format=%(refname)", "refs/rlm/pinned/", git_dir=cache).stdout.decode()

    def pinned_at(ref: str) -> float:  # a loose ref's mtime; a packed one is older than any
        try:
            return os.lstat(cache / ref).st_mtime
        except OSError:
            return 0.0

    refs = sorted((line for line in out.splitlines() if line), key=pinned_at, reverse=True)
    stale = refs[keep:]
    if stale:
        script = "".join(f"delete {ref}\n" for ref in stale)
        git("update-ref", "--stdin", git_dir=cache, input=script.encode())
    return stale


def bundle_commit(prepared: PreparedRepo, dest: Path) -> Path:
    """A git bundle holding exactly the pinned commit's history and the tags on it (for remote
    sandboxes)."""
    ref = f"refs/rlm/bundle/{prepared.commit}"
    git("update-ref", ref, prepared.commit, git_dir=prepared.cache)
    tags = [tag for _, tag in _tags_on(prepared.cache, prepared.commit)]  # only those on its history
    git("bundle", "create", "--quiet", str(dest), ref, *tags, git_dir=prepared.cache, timeout=FETCH_TIMEOUT)
    return dest
