"""Where agents run: the `Sandbox` / `SandboxProvider` protocols (base.py) and two backends.

- local/    the embedded default: a checkout per agent (checkout/: a copy-on-write overlay over one
            shared checkout per commit, or a full copy), the driver under bubblewrap with cgroup
            caps (isolation/), a pipe transport, the ready environment (env.py)
- daytona/  one Daytona sandbox per agent (provider, sandbox, client, transport, env)
- environments.py  the host's cache of ready environments; reap.py removes what killed runs left

This module is the sandboxes' public surface (with `bot.rlm`): nothing outside the engine imports
deeper. Importing it loads no backend SDK; `make_provider` loads the backend it is asked for.
"""

from __future__ import annotations

from ..config import Config
from ..repo import PreparedRepo
from .base import Sandbox, SandboxProvider
from .daytona import MISSING_KEY as DAYTONA_MISSING_KEY
from .local.isolation.bwrap import bwrap_works
from .reap import reap_all

__all__ = ["DAYTONA_MISSING_KEY", "Sandbox", "SandboxProvider", "bwrap_works", "make_provider", "reap_all"]


def make_provider(
    config: Config, repo: PreparedRepo, rollout_id: str, daytona_api_key: str | None = None
) -> SandboxProvider:
    backend = config.sandbox.backend
    if backend == "local":
        from .local.provider import LocalSandboxProvider

        return LocalSandboxProvider(config, repo, rollout_id)
    if backend == "daytona":
        from .daytona.provider import DaytonaSandboxProvider

        return DaytonaSandboxProvider(config, repo, rollout_id, api_key=daytona_api_key)
    raise ValueError(f"unknown sandbox backend {backend!r}")
