"""Shared fixtures: real git repositories in tmp dirs, scripted-model configs, leftover checks."""

from __future__ import annotations

import os

# Before anything imports litellm: its price table comes from the package, not the network.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from bot.rlm import Config, load_config

pytest_plugins = ["tests.postgres"]  # the postgres_server / postgres_url fixtures

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "HOME": "/tmp",
}


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def commit_files(repo: Path, files: dict[str, str | bytes], message: str = "change") -> str:
    for name, content in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def make_repo(tmp_path: Path):
    """make_repo(files) -> (path, sha): a real git repository with one commit on `main`."""

    def make(files: dict[str, str | bytes] | None = None, name: str = "repo") -> tuple[Path, str]:
        repo = tmp_path / name
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        sha = commit_files(repo, files or {"README.md": "# demo\n"}, "initial")
        return repo, sha

    return make


@pytest.fixture
def write_script(tmp_path: Path):
    """write_script(rules) -> path of a scripted-model YAML (DESIGN.md format)."""
    counter = iter(range(1000))

    def write(rules: list[dict]) -> Path:
        for rule in rules:
            rule["responses"] = [textwrap.dedent(r) for r in rule["responses"]]
        path = tmp_path / f"script{next(counter)}.yaml"
        path.write_text(yaml.safe_dump(rules, sort_keys=False))
        return path

    return write


@pytest.fixture
def make_config(tmp_path: Path):
    """make_config(script, **dotted overrides) -> Config with a private cache and results dir."""

    def make(script: Path, **overrides) -> Config:
        values = {
            "model.name": f"scripted/{script}",
            "sandbox.cache_dir": str(tmp_path / "cache"),
            "results_dir": str(tmp_path / "results"),
            "rlm.global_timeout": 60,
        }
        values.update({k.replace("__", "."): v for k, v in overrides.items()})
        return load_config(None, values, environ={})

    return make


@pytest.fixture
def world(tmp_path: Path, make_repo, write_script, make_config):
    """world(rules, ...) -> a GitHub App world (fake GitHub, bare remote, ServerConfig); see fakes/app_env.py."""
    from tests.fakes.app_env import Worlds

    worlds = Worlds(tmp_path, make_repo, write_script, make_config)
    yield worlds
    worlds.close()


def py(code: str) -> str:
    """A model reply holding one python block."""
    return f"```python\n{textwrap.dedent(code).strip()}\n```\n"


def leftovers(cache_root: Path) -> list[str]:
    """What a finished rollout must not leave: sandbox directories (on disk or in /dev/shm) and
    processes whose command line or working directory mentions them or the cache."""
    from bot.rlm.sandbox.local.roots import sandbox_roots

    found: list[str] = []
    for root in sandbox_roots(cache_root):
        if root.is_dir():
            found += [str(p) for p in root.iterdir()]
        found += _processes_mentioning(root)
    return found + _processes_mentioning(cache_root)


def run_dirs(cache_root: Path) -> list[Path]:
    """The rollout directories currently holding sandboxes for this cache."""
    from bot.rlm.sandbox.local.roots import sandbox_roots

    return [p for root in sandbox_roots(cache_root) if root.is_dir() for p in root.iterdir()]


def _processes_mentioning(root: Path) -> list[str]:
    found = []
    needle = str(root)
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if needle in cmdline or cwd.startswith(needle):
            found.append(f"{pid}: {cmdline[:200]}")
    return found
