"""Launch one real sandbox, and say in one sentence what to change when it cannot start.

A server holds other people's secrets, so it does not trust "bwrap is installed": `probe_sandbox()`
runs the base interpreter under the very command line every sandbox gets (`bwrap_argv`: its own
user, PID, mount and network namespaces, a fresh /proc, read-only binds, the generated /etc).
Containers forbid parts of that by default, each in its own words; `refusal()` turns bubblewrap's
words into the container option that is missing (docs/github-app.md, "Sandboxes in a container").
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

from .bwrap import BwrapOptions, bwrap_argv, python_exe, user_namespaces, write_etc

PROBE_TIMEOUT = 30.0
PROBE_OUTPUT = "rlm-sandbox-ok"

SANDBOX_REFUSED = (
    "a sandbox cannot start here ({problem}): {fix}, or set sandbox.backend: daytona, or set "
    "sandbox.isolation: none to accept unisolated sandboxes (docs/github-app.md, 'Sandboxes in a container')."
)
FIX_PROC = (
    "run the container with an unmasked /proc (Docker: --security-opt systempaths=unconfined; "
    "Podman: --security-opt unmask=/proc/*; Kubernetes: securityContext.procMount: Unmasked)"
)
FIX_NAMESPACES = (
    "allow the namespace system calls bubblewrap needs (Docker: --security-opt seccomp= the profile "
    "deploy/seccomp.py writes; Kubernetes: that profile as a Localhost seccompProfile) and unprivileged "
    "user namespaces on the host (Ubuntu: sysctl kernel.apparmor_restrict_unprivileged_userns=0)"
)
FIX_CAPABILITIES = "drop the capabilities added to the container (--cap-drop ALL; never --cap-add SYS_ADMIN)"
FIX_INSTALL = "install bubblewrap (apt-get install bubblewrap)"
FIX_OTHER = "make bubblewrap work for this user"
NOT_INSTALLED = "bubblewrap (bwrap) is not installed"

# bubblewrap's words -> what to change. Checked in order; the first match wins.
_FIXES = (
    ("can't mount proc", FIX_PROC),
    ("unexpected capabilities", FIX_CAPABILITIES),
    ("creating new namespace failed", FIX_NAMESPACES),
    ("no permissions to creat", FIX_NAMESPACES),
    ("setting up uid map", FIX_NAMESPACES),
    ("uid map", FIX_NAMESPACES),
    ("unshare", FIX_NAMESPACES),
    (NOT_INSTALLED.lower(), FIX_INSTALL),
)


def launch_problem() -> str | None:
    """None when a sandbox starts here; else what went wrong, in bubblewrap's words (one line)."""
    if not shutil.which("bwrap"):
        return NOT_INSTALLED
    with tempfile.TemporaryDirectory(prefix="rlm-probe-") as tmp:
        etc = write_etc(Path(tmp) / "etc")
        options = BwrapOptions(workdir="/tmp", etc_dir=etc, user_namespace=user_namespaces() is not False)
        argv = bwrap_argv(options, [python_exe(), "-I", "-S", "-c", f"print({PROBE_OUTPUT!r})"])
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, errors="replace", timeout=PROBE_TIMEOUT
            )
        except subprocess.TimeoutExpired:
            return f"the sandbox did not answer within {PROBE_TIMEOUT:.0f} s"
        except OSError as e:
            return f"bwrap could not be run: {e.strerror or e}"
    if done.returncode == 0 and PROBE_OUTPUT in done.stdout:
        return None
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    return lines[-1][:300] if lines else f"the sandbox exited with status {done.returncode}"


def refusal(problem: str) -> str:
    """The one sentence that names what to change for `problem` (launch_problem's words)."""
    lowered = problem.lower()
    fix = next((fix for words, fix in _FIXES if words in lowered), FIX_OTHER)
    return SANDBOX_REFUSED.format(problem=problem, fix=fix)


@lru_cache(maxsize=1)
def probe_sandbox() -> str | None:
    """None when one real sandbox launches here; else the sentence that says what to change.
    Once per process (a start-up check)."""
    problem = launch_problem()
    return None if problem is None else refusal(problem)
