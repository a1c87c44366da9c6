"""`rlm demo`: a small bundled repository and the script that drives a scripted rollout on it."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
SCRIPT = HERE / "script.yaml"
PROMPT = "Find the TODOs in this repository, pick the easiest one and fix it."


def materialize(dest: Path | None = None) -> tuple[Path, Path]:
    """Copy the bundled repository into a fresh git repo (one commit). Returns (repo, script)."""
    dest = dest or Path(tempfile.mkdtemp(prefix="rlm-demo-")) / "inventory"
    shutil.copytree(HERE / "repo", dest, ignore=shutil.ignore_patterns("__pycache__"))
    env = {
        "GIT_AUTHOR_NAME": "rlm demo",
        "GIT_AUTHOR_EMAIL": "demo@example.invalid",
        "GIT_COMMITTER_NAME": "rlm demo",
        "GIT_COMMITTER_EMAIL": "demo@example.invalid",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
    }
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "inventory: initial"]):
        subprocess.run(["git", *args], cwd=dest, env=env, check=True, capture_output=True)
    return dest, SCRIPT
