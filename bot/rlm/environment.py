"""The rollout's ready environment: the repository's dependencies installed once, shared by all.

`sandbox.setup` commands (or `auto`) run once per rollout, before any model call, in a setup
sandbox on a private checkout of the run's commit, with a writable `$RLM_ENV`. Every agent then
sees `$RLM_ENV` read-only at the same path (`ENV_IN_SANDBOX`), its `venv/bin` and `bin` first on
PATH. The result is cached by `SetupSpec.key`: the commands, the network choice, the dependency
manifests at the commit (`is_manifest`) and the backend's base (interpreter or image).

Backends build it (`EnvironmentBuilder`): local (sandbox/local/env.py), daytona
(sandbox/daytona/env.py). This module decides what to run, keys it, reports it as events and
turns a failure into an ending that costs no model call.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Protocol

from bot.common.secrets import REDACTOR

from .errors import RLMError
from .fold import EventKind
from .repo import PreparedRepo, git
from .status import SetupStatus

if TYPE_CHECKING:
    from .config import Config
    from .trace import Trace

ENV_IN_SANDBOX = "/rlm/env"  # $RLM_ENV, the same path in the setup sandbox and every agent's
CHECKOUT_IN_SANDBOX = "/rlm/checkout"  # where setup ran; in an agent, its own checkout
KEY_VERSION = 2
TAIL_LINES = 20
LOG_KEPT = 64 * 1024  # characters of the setup log kept in the trace
PYTHON_OK = "rlm-setup: the venv interpreter runs"

# Files whose content decides what setup installs: a change to any of them builds anew.
MANIFEST_NAMES = frozenset(
    {
        "pyproject.toml",
        "setup.py",
        "setup.cfg",
        "poetry.lock",
        "uv.lock",
        "pdm.lock",
        "Pipfile",
        "Pipfile.lock",
        "environment.yml",
        "tox.ini",
        "package.json",
        "package-lock.json",
        "npm-shrinkwrap.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "Gemfile",
        "Gemfile.lock",
        "go.mod",
        "go.sum",
        "Cargo.toml",
        "Cargo.lock",
    }
)
_REQUIREMENTS = re.compile(r"^(.*[-_])?(requirements|constraints)([-_.].*)?\.(txt|in)$")
_SKIPPED_DIRS = frozenset({"node_modules", ".venv", "venv", ".tox", "site-packages", "__pycache__"})

SETUP_FAILED = (
    "The environment setup failed (exit code {code}) in `{command}`: {cause}; no model was called. "
    "Last lines of the setup log:\n{tail}"
)
CAUSE_COMMAND = (
    "the command failed; fix the setup commands (sandbox.setup, --setup, or setup: in .github/rlm.yml) "
    "or the repository's dependency files"
)
CAUSE_NETWORK = (
    "the network failed ({evidence}), not the command; behind a proxy or a private index, pass what "
    "setup needs with sandbox.setup_env and sandbox.setup_ca_bundle (docs/environment.md)"
)
CAUSE_OFFLINE = (
    "it needed the network ({evidence}), which setup does not have here (sandbox.setup_network, "
    "RLM_REPO_SETUP=offline)"
)
# What a failed download says, in the words of pip, curl, git, npm and Python's ssl and socket.
NETWORK_SIGNS = (
    "certificate verify failed",
    "certificate_verify_failed",
    "ssl certificate problem",
    "self signed certificate",
    "self-signed certificate",
    "could not resolve host",
    "temporary failure in name resolution",
    "name or service not known",
    "failed to establish a new connection",
    "network is unreachable",
    "connection refused",
    "connection timed out",
    "proxyerror",
    "could not fetch url",
    "no matching distribution found",
    "enotfound",
    "eai_again",
    "unable to get local issuer certificate",
)
SETUP_TIMED_OUT = (
    "The environment setup took longer than {timeout:g}s and was stopped; raise sandbox.setup_timeout "
    "or make the setup faster. No model was called. Last lines of the setup log:\n{tail}"
)
SETUP_CANCELLED = "The run was cancelled during the environment setup."
CA_BUNDLE_MISSING = "sandbox.setup_ca_bundle is {path}, which is not a file; point it at a PEM CA bundle."
# Pointed at sandbox.setup_ca_bundle inside setup: OpenSSL/Python, pip, requests, curl, git, node.
CA_VARIABLES = (
    "SSL_CERT_FILE",
    "PIP_CERT",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "NODE_EXTRA_CA_CERTS",
)
CA_IN_SANDBOX = "/run/rlm/ca-bundle.pem"
AUTO_CHOSE = "setup auto installs: "
SETUP_MEMORY_CAP = "The setup reached its memory cap of {mb} MB (sandbox.memory_mb)."
SETUP_DISK_FULL = (
    "The environment setup wrote more than {mb} MB (its environment, checkout and log) and was "
    "stopped; raise sandbox.setup_disk_mb or install less. No model was called. Last lines of the "
    "setup log:\n{tail}"
)
AUTO_NOTHING = "setup: auto found no pyproject.toml, setup.py, requirements file or package-lock.json"


class SetupFailed(RLMError):
    """The setup did not produce an environment; str() says why and what to do."""

    def __init__(self, message: str, status: SetupStatus, log_tail: str = "", duration: float = 0.0):
        super().__init__(message)
        self.status = status
        self.log_tail = log_tail
        self.duration = duration


@dataclass(frozen=True)
class SetupSpec:
    commands: tuple[str, ...]
    network: bool
    timeout: float
    manifests: tuple[tuple[str, str], ...]  # (path, blob sha) at the commit
    auto: bool = False
    chosen: tuple[str, ...] = ()  # `auto`: what it chose to install, said first in the setup log
    scope: str = ""  # whose repository (PreparedRepo.scope): no entry is ever shared across scopes
    key_files: tuple[tuple[str, str], ...] = ()  # sandbox.setup_key_files matches: (path, blob sha)
    commit: str = ""  # the commit setup runs on ("" = the run's); never an untrusted author's...
    shared: bool = True  # ...unless False: then the environment is this run's alone, never cached
    disk_bytes: int | None = None  # what setup may write (sandbox.setup_disk_mb)
    # sandbox.setup_env: (name, value) of host variables passed to setup alone; never in a repr,
    # a log line or the cache key (every value is registered with the redactor).
    env: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    ca_bundle: str | None = None  # sandbox.setup_ca_bundle: a host file, read-only in setup

    def variables(self, ca_path: str | None) -> dict[str, str]:
        """What setup's environment gets on top of its own: the passed variables, and every
        common CA-bundle variable on `ca_path` (where the bundle is, as setup sees it)."""
        passed = dict(self.env)
        if ca_path:
            passed.update({name: ca_path for name in CA_VARIABLES})
        return passed

    def key(self, base: str) -> str:
        """The cache key: whose repository, what was run, with or without network, on which
        dependency files and named key files, on which interpreter or image (`base`, from the
        backend)."""
        data = {
            "v": KEY_VERSION,
            "scope": self.scope,
            "commands": self.commands,
            "network": self.network,
            "manifests": self.manifests,
            "key_files": self.key_files,
            "base": base,
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def script(self) -> str:
        """One `sh` script: each command in its own `sh -e` (so `a && b` fails when `b` does, as
        in CI steps; shell state such as `cd` does not carry over), echoed first so the log shows
        which one failed; the first failure ends the script with its exit code. Everything it
        leaves in $RLM_ENV is readable by every agent."""
        lines = ["umask 022"]
        lines += [f"printf '%s\\n' {shlex.quote(AUTO_CHOSE + what)}" for what in self.chosen]
        for command in self.commands:
            lines += [
                f"printf '%s\\n' {shlex.quote('$ ' + command)}",
                f"sh -ec {shlex.quote(command)} || exit $?",
            ]
        lines.append('chmod -R a+rX "$RLM_ENV"')
        # The REPL runs on the venv's interpreter only if it starts: checked here, in the sandbox.
        venv = '"$RLM_ENV/venv/bin/python"'
        lines.append(f"if [ -x {venv} ] && {venv} -I -c 'import json, os, sys'; then echo {PYTHON_OK}; fi")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Environment:
    """What setup left, as every agent sees it."""

    key: str
    path: str  # $RLM_ENV inside a sandbox
    path_dirs: tuple[str, ...]  # prepended to PATH, in order
    python: str | None  # the environment's interpreter (it runs the REPL), when setup made a venv
    node_path: str | None
    cached: bool
    duration: float
    log_tail: str
    commands: tuple[str, ...]

    def variables(self) -> dict[str, str]:
        """Environment variables an agent gets on top of its sandbox's own (PATH is prepended)."""
        out = {"RLM_ENV": self.path}
        if self.node_path:
            out["NODE_PATH"] = self.node_path
        return out

    def path_value(self, base: str) -> str:
        return ":".join([*self.path_dirs, base])


class EnvironmentBuilder(Protocol):
    def setup_environment(self, spec: SetupSpec, cancel: threading.Event) -> Environment:
        """Build (or reuse) the environment; raises SetupFailed. Later sandboxes then use it."""
        ...


def layout(
    env_root: str, exists: Callable[[str], bool], python_ok: bool
) -> tuple[tuple[str, ...], str | None, str | None]:
    """(PATH dirs, venv interpreter, NODE_PATH) of a built environment as paths under `env_root`;
    `exists(relative)` tells whether a path is there, `python_ok` whether the venv's interpreter ran."""
    dirs = tuple(f"{env_root}/{d}" for d in ("venv/bin", "bin") if exists(d))
    python = f"{env_root}/venv/bin/python" if python_ok and exists("venv/bin/python") else None
    node = f"{env_root}/node/node_modules" if exists("node/node_modules") else None
    return dirs, python, node


def tail(text: str, lines: int = TAIL_LINES) -> str:
    kept = [line for line in text.rstrip().splitlines() if line != PYTHON_OK]
    return "\n".join(kept[-lines:])


def python_ok(log: str) -> bool:
    return bool(log.strip()) and log.rstrip().splitlines()[-1] == PYTHON_OK


def failure_cause(log: str, network: bool) -> str:
    """Whether the network or the command failed, from the log's own words."""
    lowered = log.lower()
    evidence = next((sign for sign in NETWORK_SIGNS if sign in lowered), None)
    if evidence is None:
        return CAUSE_COMMAND
    return (CAUSE_NETWORK if network else CAUSE_OFFLINE).format(evidence=evidence)


def failed_command(log: str) -> str:
    """The last command the setup script announced (see SetupSpec.script)."""
    for line in reversed(log.splitlines()):
        if line.startswith("$ "):
            return line[2:]
    return "?"


# ---------------------------------------------------------------------------------- what to run


def is_manifest(path: str) -> bool:
    p = PurePosixPath(path)
    if any(part in _SKIPPED_DIRS for part in p.parts[:-1]):
        return False
    if p.name in MANIFEST_NAMES or _REQUIREMENTS.match(p.name):
        return True
    return p.suffix in (".txt", ".in") and "requirements" in p.parts[:-1]


def _tree(repo: PreparedRepo) -> list[tuple[str, str]]:
    """(path, blob sha) of every file at the commit."""
    out = git("ls-tree", "-r", "-z", "--full-tree", repo.commit, git_dir=repo.cache).stdout
    found = []
    for entry in out.split(b"\0"):
        meta, _, path = entry.partition(b"\t")
        if path:
            found.append((path.decode("utf-8", "surrogateescape"), meta.split()[2].decode()))
    return found


def manifests(repo: PreparedRepo) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((path, sha) for path, sha in _tree(repo) if is_manifest(path)))


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob as Actions' `hashFiles` reads it: `*` and `?` within one path segment, `**` across
    segments, `[...]` a character class; matched against the whole path from the tree's root."""
    out, i = [], 0
    pattern = pattern.lstrip("/").removeprefix("./")
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end].replace("\\", "\\\\")
            out.append("[^" + body[1:] + "]" if body.startswith("!") else "[" + body + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.S)


def key_files(repo: PreparedRepo, globs: list[str] | tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """The files at the commit that `sandbox.setup_key_files` names, with their blob shas."""
    if not globs:
        return ()
    patterns = [glob_regex(g) for g in globs]
    return tuple(sorted((p, sha) for p, sha in _tree(repo) if any(r.match(p) for r in patterns)))


def _read(repo: PreparedRepo, path: str) -> str:
    proc = git("cat-file", "blob", f"{repo.commit}:{path}", git_dir=repo.cache, check=False)
    return proc.stdout.decode("utf-8", "replace") if proc.returncode == 0 else ""


TEST_NAMES = ("test", "tests", "testing", "dev")  # extras and dependency groups `auto` installs
# Requirement files for tests that `auto` installs, beside the top-level requirements*.txt.
TEST_REQUIREMENTS = tuple(f"requirements/{n}.txt" for n in TEST_NAMES) + ("requirements/requirements.txt",)


def _pyproject(text: str) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10: no parser, no extras or groups
        return {}
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _test_extras(pyproject: str) -> list[str]:
    extras = (_pyproject(pyproject).get("project") or {}).get("optional-dependencies") or {}
    return [name for name in TEST_NAMES if isinstance(extras, dict) and name in extras]


def dependency_groups(pyproject: str) -> tuple[list[str], list[str]]:
    """PEP 735: the requirements of the test/tests/testing/dev groups the project declares
    (`{include-group = ...}` expanded), and the groups' names. Passed to pip as requirements, so
    any pip version installs them (`pip install --group` needs pip 25.1)."""
    groups = _pyproject(pyproject).get("dependency-groups") or {}
    if not isinstance(groups, dict):
        return [], []

    def expand(name: str, seen: tuple[str, ...]) -> list[str]:
        out: list[str] = []
        for item in groups.get(name) or []:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, dict) and isinstance(item.get("include-group"), str):
                inner = item["include-group"]
                if inner not in seen:
                    out += expand(inner, (*seen, inner))
        return out

    names = [name for name in TEST_NAMES if isinstance(groups.get(name), list)]
    requirements: list[str] = []
    for name in names:
        requirements += [r for r in expand(name, (name,)) if r not in requirements]
    return requirements, names


def auto_commands(repo: PreparedRepo, found: tuple[tuple[str, str], ...]) -> list[str]:
    return auto_plan(repo, found)[0]


def auto_plan(repo: PreparedRepo, found: tuple[tuple[str, str], ...]) -> tuple[list[str], list[str]]:
    """`setup: auto`: (commands, why each part was chosen). A Python project: a venv with the
    project in editable mode with its test extras, its test dependency groups and its requirement
    files; a Node project with a lock file: `npm ci` into $RLM_ENV/node. docs/environment.md lists
    the rules."""
    paths = {path for path, _ in found}
    top = {path for path in paths if "/" not in path}
    commands: list[str] = []
    notes: list[str] = []
    requirements = sorted(
        p for p in top if _REQUIREMENTS.match(p) and p.startswith(("requirements", "test", "dev"))
    )
    requirements += [p for p in TEST_REQUIREMENTS if p in paths]
    pyproject = _read(repo, "pyproject.toml") if "pyproject.toml" in top else ""
    project = top & {"pyproject.toml", "setup.py"}
    if project or requirements:
        pip = '"$RLM_ENV/venv/bin/python" -m pip install --disable-pip-version-check'
        commands.append('python3 -m venv "$RLM_ENV/venv"')
        if project:
            extras = _test_extras(pyproject)
            target = f".[{','.join(extras)}]" if extras else "."
            commands.append(f"{pip} -e {shlex.quote(target)}")
            notes.append(
                f"the project ({' and '.join(sorted(project))}) in editable mode"
                + (f" with its extras {', '.join(extras)}" if extras else " (no test extras declared)")
            )
        groups, names = dependency_groups(pyproject)
        if groups:
            commands.append(f"{pip} " + " ".join(shlex.quote(r) for r in groups))
            notes.append(f"the dependency group(s) {', '.join(names)} of pyproject.toml")
        commands += [f"{pip} -r {shlex.quote(r)}" for r in requirements]
        if requirements:
            notes.append(f"the requirement file(s) {', '.join(requirements)}")
    lock = next((name for name in ("package-lock.json", "npm-shrinkwrap.json") if name in top), None)
    if lock and "package.json" in top:
        commands.append(f'mkdir -p "$RLM_ENV/node" && cp package.json {lock} "$RLM_ENV/node/"')
        commands.append('npm ci --prefix "$RLM_ENV/node" --no-audit --no-fund')
        commands.append('[ -e "$RLM_ENV/bin" ] || ln -s node/node_modules/.bin "$RLM_ENV/bin"')
        notes.append(f"the Node packages of package.json and {lock}")
    return commands, notes


def setup_spec(config: Config, repo: PreparedRepo) -> SetupSpec | None:
    """What this rollout's setup runs, or None when there is nothing to run. It runs on the
    repository's trusted commit (PreparedRepo.setup_commit: a fork's pull request runs setup on
    the base it targets) and is keyed by that commit's files."""
    sandbox = config.sandbox
    if not sandbox.setup:
        return None
    at = repo.at(repo.setup_commit)
    found = manifests(at)
    auto = sandbox.setup == "auto"
    commands, notes = auto_plan(at, found) if auto else (list(sandbox.setup), [])
    if not commands:
        return None
    passed = []
    for name in sandbox.setup_env:
        value = os.environ.get(name)
        if value:
            REDACTOR.add(value)
            passed.append((name, value))
    ca = os.path.realpath(sandbox.setup_ca_bundle) if sandbox.setup_ca_bundle else None
    if ca and not os.path.isfile(ca):
        raise SetupFailed(CA_BUNDLE_MISSING.format(path=sandbox.setup_ca_bundle), SetupStatus.FAILED)
    return SetupSpec(
        tuple(commands),
        sandbox.network_during_setup(),
        sandbox.setup_timeout,
        found,
        auto,
        chosen=tuple(notes),
        scope=repo.scope or repo.source,
        key_files=key_files(at, sandbox.setup_key_files),
        commit=at.commit,
        shared=repo.setup_trusted,
        disk_bytes=sandbox.setup_disk_mb * 1024 * 1024,
        env=tuple(passed),
        ca_bundle=ca,
    )


# ---------------------------------------------------------------------------------- the run


def prepare_environment(
    config: Config, repo: PreparedRepo, builder: EnvironmentBuilder, trace: Trace, cancel: threading.Event
) -> Environment | None:
    """Run (or reuse) the setup and report it; raises SetupFailed, after reporting it."""
    spec = setup_spec(config, repo)
    if spec is None:
        if config.sandbox.setup == "auto":
            trace.emit(EventKind.SETUP_SKIPPED, reason=AUTO_NOTHING)
        return None
    trace.emit(
        EventKind.SETUP_STARTED,
        commands=list(spec.commands),
        network=spec.network,
        auto=spec.auto,
        chosen=list(spec.chosen),
        timeout=spec.timeout,
        manifests=[path for path, _ in spec.manifests],
        key_files=[path for path, _ in spec.key_files],
        commit=spec.commit,
        shared=spec.shared,
    )
    started = time.monotonic()
    try:
        env = builder.setup_environment(spec, cancel)
    except SetupFailed as e:
        trace.emit(
            EventKind.SETUP_FINISHED,
            status=e.status.value,
            cached=False,
            error=str(e),
            duration=round(time.monotonic() - started, 3),
            log_tail=e.log_tail,
        )
        raise
    trace.emit(
        EventKind.SETUP_FINISHED,
        status=SetupStatus.OK.value,
        cached=env.cached,
        key=env.key[:16],
        duration=round(time.monotonic() - started, 3),
        build_duration=round(env.duration, 3),
        log_tail=env.log_tail,
        path=env.path,
        path_dirs=list(env.path_dirs),
        python=env.python,
    )
    return env


def prompt_note(env: Environment | None) -> str:
    """What setup produced, for the sandbox facts of every agent's system prompt."""
    if env is None:
        return ""
    ran = "; ".join(f"`{c}`" for c in env.commands)
    ran = ran if len(ran) <= 400 else ran[:399] + "…"
    lines = [
        f"Before you started, setup ran once for the whole tree ({ran}) and left a ready, "
        f"read-only environment in `$RLM_ENV` ({env.path})."
    ]
    if env.python:
        lines.append(
            "Its virtualenv is first on PATH and runs this REPL, so what setup installed imports "
            "here and in `sys.executable` subprocesses (which test tools it holds, and how the "
            "project's own packages import, are measured and said with the sandbox's facts)."
        )
    elif env.path_dirs:
        lines.append(f"Its tools are first on PATH ({', '.join(env.path_dirs)}).")
    if env.node_path:
        lines.append(f"Node packages are in {env.node_path} (NODE_PATH).")
    return " ".join(lines)
