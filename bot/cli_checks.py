"""What `rlm run` checks and decides before anything is fetched: the repository's root (from any
of its subdirectories), the uncommitted changes it will leave out, where results go, and whether
the model can be called at all (its name, the scripted file, the key).

Every problem is a `UsageError` whose text is one sentence for the user (exit 2).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import rlm
from .rlm import Config, RLMError, git, normalize_source

SCRIPTED_PREFIX = "scripted/"
NOT_IN_A_REPOSITORY = (
    "{path} is not inside a git repository (git says: {reason}); pass a repository's path or URL."
)
GIT_FAILED = "git could not read {path} (git says: {reason})."
NO_GIT = "git is not installed or not on PATH; install git to run on a local repository."
UNCOMMITTED = (
    "warning: {count} uncommitted change(s) are not part of the run, which starts from the last "
    "commit ({names}); commit or stash them to include them."
)
MAX_NAMED = 5
UNKNOWN_MODEL = (
    "{model!r} is not a model litellm knows; name it as provider/model, e.g. "
    "anthropic/claude-sonnet-4-5 or openrouter/google/gemini-3-flash-preview."
)
MISSING_KEY = (
    "no API key for {model}: set LLM_API_KEY (rlm hands it to {provider}){alt} in the environment, "
    "or put it in a file passed with --env-file."
)
LLM_KEY_VARIABLE = "LLM_API_KEY"


class UsageError(ValueError):
    """A problem with what the user asked for, found before any work; str() is one sentence."""


@dataclass(frozen=True)
class LocalRepo:
    """A local repository as the CLI runs it: its root, and whether it has a work tree."""

    root: Path
    bare: bool = False


def _git(path: Path, *args: str) -> subprocess.CompletedProcess:
    """The engine's host git (no hooks, fsmonitor or operator config), run in `path`, as text."""
    try:
        proc = git("-C", str(path), *args, timeout=60, check=False)
    except FileNotFoundError:
        raise UsageError(NO_GIT) from None
    out, err = (b.decode("utf-8", "replace") for b in (proc.stdout, proc.stderr))
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _reason(proc: subprocess.CompletedProcess) -> str:
    """git's own words: its `fatal:` line (the one that says why), else its last line."""
    lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
    reason = (fatal or lines or ["no reason given"])[0]
    return reason.rstrip(".")


def local_repo(repo: str) -> LocalRepo | None:
    """The repository holding `repo` when it is a local path (its root, found from any subdirectory);
    None for a URL. Raises UsageError with git's own reason when git cannot read it."""
    try:
        source = Path(normalize_source(repo))
    except RLMError as e:  # neither a URL nor an existing path
        raise UsageError(str(e)) from None
    if not source.is_absolute():  # a URL: normalize_source makes every local path absolute
        return None
    if not source.is_dir():
        raise UsageError(NOT_IN_A_REPOSITORY.format(path=repo, reason="it is not a directory"))
    proc = _git(source, "rev-parse", "--is-bare-repository")
    if proc.returncode != 0:
        raise UsageError(NOT_IN_A_REPOSITORY.format(path=repo, reason=_reason(proc)))
    if proc.stdout.strip() == "true":
        return LocalRepo(source, bare=True)
    proc = _git(source, "rev-parse", "--show-toplevel")
    if proc.returncode != 0:
        raise UsageError(GIT_FAILED.format(path=repo, reason=_reason(proc)))
    return LocalRepo(Path(proc.stdout.strip()))


def uncommitted_changes(root: Path) -> list[str]:
    """Paths with uncommitted changes (staged, unstaged or untracked), relative to the root."""
    proc = _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=normal", "--ignore-submodules")
    if proc.returncode != 0:
        return []  # the fetch that follows reports what is wrong with the repository
    entries = [e for e in proc.stdout.split("\0") if e]
    paths, skip = [], False
    for entry in entries:
        if skip:  # the source of a rename or copy
            skip = False
            continue
        paths.append(entry[3:])
        skip = entry[0] in "RC"
    return paths


def uncommitted_warning(paths: list[str]) -> str | None:
    """One line naming what the run leaves out, or None when the work tree is clean."""
    if not paths:
        return None
    names = ", ".join(paths[:MAX_NAMED]) + (
        f" and {len(paths) - MAX_NAMED} more" if len(paths) > MAX_NAMED else ""
    )
    return UNCOMMITTED.format(count=len(paths), names=names)


def user_results_dir() -> Path:
    """Where `rlm run` keeps traces unless told otherwise: the per-user cache, never the repository."""
    try:
        from platformdirs import user_cache_path
    except ImportError:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "rlm-bot" / "results"
    return user_cache_path("rlm-bot", appauthor=False) / "results"


def results_dir(option: Path | None, config: Config) -> Path:
    """`--results-dir`, else a `results_dir` the config file set, else the per-user cache."""
    if option is not None:
        return option
    if "results_dir" in config.model_fields_set:
        return Path(config.results_dir).expanduser()
    return user_results_dir()


def check_model(config: Config, llm_key_missing: bool) -> None:
    """The model can be called: a scripted file exists and parses; litellm knows the name; when the
    key preflight (bot.pipeline.keys) finds no LLM_API_KEY the model needs, the provider's own
    variable, which litellm reads, is there. Raises UsageError."""
    name = config.model.name
    if name.startswith(SCRIPTED_PREFIX):
        try:
            rlm.read_script(name.removeprefix(SCRIPTED_PREFIX))
        except rlm.ScriptError as e:
            raise UsageError(str(e)) from None
        return
    provider = rlm.model_provider(name, config.model.api_base)
    if provider is None:
        raise UsageError(UNKNOWN_MODEL.format(model=name))
    if not llm_key_missing:
        return
    unset = rlm.missing_provider_keys(name)
    if not unset:  # litellm finds the provider's own variable (or the provider needs no key)
        return
    missing = [k for k in unset if k != LLM_KEY_VARIABLE]
    alt = f" or {' / '.join(missing)} (which litellm reads itself)" if missing else ""
    raise UsageError(MISSING_KEY.format(model=name, provider=provider, alt=alt))
