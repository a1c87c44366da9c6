"""The tree passes the project's linter and formatter (ruff, configured in pyproject.toml), so the
README's test command is also the style check (.ci/run runs exactly that command)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _ruff() -> list[str]:
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    if found := shutil.which("ruff"):
        return [found]
    pytest.skip("ruff is not installed (pip install -e '.[test]' installs it)")


@pytest.mark.parametrize("args", [("check", "."), ("format", "--check", ".")], ids=["lint", "format"])
def test_ruff(args):
    proc = subprocess.run([*_ruff(), *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (
        f"ruff {' '.join(args)} found problems (run `ruff check --fix . && ruff format .`):\n{proc.stdout}{proc.stderr}"
    )
