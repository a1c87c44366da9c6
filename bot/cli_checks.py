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

from .rlm.config import Config
from .rlm.errors import RLMError
from .rlm.repo import SAFE_GIT, git_env, normalize_source

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
SCRIPT_MISSING = (
    "the scripted model's file {path} does not exist; pass --model scripted/PATH.yaml with an existing file."
)
SCRIPT_INVALID = "the scripted model's file is not usable: {reason}"
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
    try:
        return subprocess.run(
            ["git", *SAFE_GIT, "-C", str(path), *args],
            capture_output=True,
            text=True,
            errors="replace",
            env=git_env(),
            timeout=60,
        )
    except FileNotFoundError:
        raise UsageError(NO_GIT) from None


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


def check_model(config: Config, api_key: str | None = None) -> None:
    """The model can be called: a scripted file exists and parses; litellm knows the name; a key is
    there (LLM_API_KEY, the provider's own variable, or none needed). Raises UsageError."""
    name = config.model.name
    if name.startswith(SCRIPTED_PREFIX):
        return _check_script(name.removeprefix(SCRIPTED_PREFIX))
    from .rlm.llm import litellm  # with litellm's remote price fetch and console hints off

    try:
        _, provider, _, _ = litellm.get_llm_provider(name, api_base=config.model.api_base)
    except Exception:  # litellm's BadRequestError and friends: the name names no provider
        raise UsageError(UNKNOWN_MODEL.format(model=name)) from None
    if config.model.api_base or api_key or os.environ.get(LLM_KEY_VARIABLE, "").strip():
        return
    try:
        found = litellm.validate_environment(model=name)
    except Exception:
        found = {"keys_in_environment": False, "missing_keys": []}
    if found.get("keys_in_environment"):
        return
    missing = [k for k in found.get("missing_keys") or [] if k != LLM_KEY_VARIABLE]
    alt = f" or {' / '.join(missing)} (which litellm reads itself)" if missing else ""
    raise UsageError(MISSING_KEY.format(model=name, provider=provider, alt=alt))


def _check_script(path: str) -> None:
    from .rlm import llm  # noqa: F401  (first: it keeps litellm from fetching its price table at import)
    from .rlm.scripted import ScriptError, parse_script

    script = Path(path).expanduser()
    try:
        text = script.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(SCRIPT_MISSING.format(path=path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(
            SCRIPT_INVALID.format(reason=f"{path}: {getattr(e, 'strerror', None) or e}.")
        ) from None
    try:
        parse_script(text, source=path)
    except ScriptError as e:
        raise UsageError(SCRIPT_INVALID.format(reason=e)) from None
