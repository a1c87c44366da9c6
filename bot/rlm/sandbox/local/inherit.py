"""A Python environment prepared on the host before the run, shown read-only to every agent.

In a CI job, `actions/setup-python` and `pip install -e '.[test]'` prepare the project's Python
before rlm-bot starts. `sandbox.inherit` names that prefix (a venv or an installation): it is
bound read-only at its own path (with a venv's base installation), its `bin` goes first on PATH
(after `$RLM_ENV`'s, when a setup ran too), and when its interpreter can run the REPL, the REPL
runs on it. `sandbox.inherit_checkout` is the directory its editable installs point at (the
job's checkout, `$GITHUB_WORKSPACE`): in every agent's sandbox that path is the agent's OWN
checkout, so the agent's edits are what `import` sees. Under bubblewrap only; without it the PATH
still applies and the prefix is simply the host's.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ...config import Config
from ...errors import SandboxError

INHERIT_MISSING = (
    "sandbox.inherit is {path}, which is not a Python prefix or virtualenv (no bin/python3 there); "
    "point it at the environment the job prepared (for example $pythonLocation or a venv)."
)
INHERIT_CHECKOUT_RELATIVE = "sandbox.inherit_checkout must be an absolute path (got {path})."
MIN_REPL_PYTHON = (3, 8)  # the driver's standard-library needs


@dataclass(frozen=True)
class Inherited:
    prefix: str
    binds: tuple[str, ...]  # host directories bound read-only at their own path
    checkout: str | None  # host path that is, in each sandbox, the agent's own checkout
    python: str | None  # its interpreter, when the REPL can run on it

    @property
    def bin(self) -> str:
        return f"{self.prefix}/bin"


def _version(prefix: Path) -> tuple[int, int] | None:
    found = []
    for entry in (prefix / "lib").glob("python3.*"):
        m = re.fullmatch(r"python3\.(\d+)", entry.name)
        if m:
            found.append((3, int(m.group(1))))
    return max(found) if found else None


def inherited(config: Config) -> Inherited | None:
    """The inherited environment configured for this run, or None; raises SandboxError."""
    sandbox = config.sandbox
    if not sandbox.inherit:
        return None
    prefix = Path(os.path.abspath(Path(sandbox.inherit).expanduser()))
    python = prefix / "bin" / "python3"
    if not python.exists():
        raise SandboxError(INHERIT_MISSING.format(path=prefix))
    checkout = sandbox.inherit_checkout
    if checkout and not os.path.isabs(checkout):
        raise SandboxError(INHERIT_CHECKOUT_RELATIVE.format(path=checkout))
    base = Path(os.path.realpath(python)).parent.parent  # a venv's interpreter lives in its base
    binds = [str(prefix)] + ([str(base)] if base != prefix and not str(base).startswith("/usr/") else [])
    version = _version(prefix) or _version(base)
    runs_repl = version is not None and version >= MIN_REPL_PYTHON
    return Inherited(
        prefix=str(prefix),
        binds=tuple(binds),
        checkout=checkout or None,
        python=str(python) if runs_repl else None,
    )


def inherit_note(env: Inherited | None) -> str:
    """What the prepared environment is, for the sandbox facts of the system prompt."""
    if env is None:
        return ""
    note = (
        f"The Python environment prepared before the run ({env.prefix}) is read-only and first on "
        "PATH, so `python -m pytest` runs the tests with the project's dependencies"
    )
    note += "; this REPL runs on it" if env.python else ""
    note += "; an editable install of the project resolves to YOUR checkout." if env.checkout else "."
    return note
