"""`rlm serve` and `rlm worker` launch one real sandbox at start. A bubblewrap that can create
namespaces but not mount the sandbox's /proc (a container's masked /proc) must stop them with the
one sentence that names the missing container option, not let them report healthy and fail every
run."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bot.rlm.sandbox import bwrap_works
from bot.rlm.sandbox.local.isolation.probe import (
    FIX_CAPABILITIES,
    FIX_INSTALL,
    FIX_NAMESPACES,
    FIX_PROC,
    launch_problem,
    refusal,
)
from tests.fakes.github_app import SECRET, private_key_pem

needs_bwrap = pytest.mark.skipif(not bwrap_works(), reason="bubblewrap cannot run here")
MASKED_PROC = "bwrap: Can't mount proc on /newroot/proc: Operation not permitted"


def fake_bwrap(bin_dir: Path, real: str) -> None:
    """A bwrap that behaves as in a container with a masked /proc: namespaces work, mounting a
    fresh /proc does not."""
    bin_dir.mkdir()
    script = bin_dir / "bwrap"
    script.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do [ "$a" = --proc ] && { echo ' + repr(MASKED_PROC) + " >&2; exit 1; }; done\n"
        f'exec {real} "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def app_env(tmp_path: Path, bin_dir: Path) -> dict:
    key = tmp_path / "app.pem"
    key.write_text(private_key_pem())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RLM_"))}
    env.update(
        GITHUB_APP_ID="1",
        GITHUB_PRIVATE_KEY_PATH=str(key),
        GITHUB_WEBHOOK_SECRET=SECRET,
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        RLM_SANDBOX__CACHE_DIR=str(tmp_path / "cache"),
    )
    return env


@needs_bwrap
def test_one_real_sandbox_launches_here():
    assert launch_problem() is None


@needs_bwrap
@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_bwrap_that_cannot_mount_proc_is_refused_with_the_missing_option(tmp_path, command):
    fake_bwrap(tmp_path / "bin", shutil.which("bwrap"))
    args = ["serve", "--workers", "1", "--port", "0"] if command == "serve" else ["worker", "--workers", "1"]
    done = subprocess.run(
        [sys.executable, "-m", "bot", *args, "--db", str(tmp_path / "jobs.sqlite3")],
        env=app_env(tmp_path, tmp_path / "bin"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = " ".join((done.stdout + done.stderr).split())  # the console wraps long lines
    assert done.returncode == 2, out
    assert " ".join(refusal(MASKED_PROC).split()) in out
    assert "--security-opt unmask=/proc/*" in out and "procMount: Unmasked" in out
    assert "Traceback" not in out and "listening on" not in out


def test_intake_only_needs_no_sandbox(tmp_path):
    """`--workers 0` runs no sandbox: a broken bubblewrap does not stop an intake replica."""
    (tmp_path / "bin").mkdir()
    broken = tmp_path / "bin" / "bwrap"
    broken.write_text(f"#!/bin/sh\necho {MASKED_PROC!r} >&2\nexit 1\n")
    broken.chmod(0o755)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot",
            "serve",
            "--workers",
            "0",
            "--port",
            "0",
            "--db",
            str(tmp_path / "j.sqlite3"),
        ],
        env=app_env(tmp_path, tmp_path / "bin"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for line in proc.stdout:
            if "listening on" in line or "error" in line.lower():
                break
        assert "listening on" in line, line
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize(
    "problem, fix",
    [
        (MASKED_PROC, FIX_PROC),
        ("bwrap: Creating new namespace failed: Operation not permitted", FIX_NAMESPACES),
        (
            "bwrap: No permissions to creating new namespace, likely because the kernel does not allow",
            FIX_NAMESPACES,
        ),
        ("bwrap: setting up uid map: Permission denied", FIX_NAMESPACES),
        ("bwrap: Unexpected capabilities but not setuid, old file caps config?", FIX_CAPABILITIES),
        ("bubblewrap (bwrap) is not installed", FIX_INSTALL),
    ],
)
def test_each_refusal_names_what_to_change(problem, fix):
    sentence = refusal(problem)
    assert sentence.startswith(f"a sandbox cannot start here ({problem}): {fix}")
    assert sentence.count(". ") == 0 and sentence.endswith(".")  # one sentence
