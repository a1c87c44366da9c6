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

from ..config import Backend, Config, ConfigError
from ..repo import PreparedRepo
from .base import Sandbox, SandboxProvider
from .daytona import MISSING_KEY as DAYTONA_MISSING_KEY
from .local.isolation.bwrap import bwrap_works
from .local.isolation.probe import probe_sandbox
from .reap import reap_all

DAYTONA_NOT_INSTALLED = (
    "sandbox.backend is 'daytona' but the Daytona SDK is not installed; install it with "
    "pip install 'rlm-bot[daytona]'."
)

__all__ = [
    "DAYTONA_MISSING_KEY",
    "Sandbox",
    "SandboxProvider",
    "bwrap_works",
    "make_provider",
    "probe_sandbox",
    "reap_all",
]


def make_provider(
    config: Config, repo: PreparedRepo, rollout_id: str, daytona_api_key: str | None = None
) -> SandboxProvider:
    backend = config.sandbox.backend
    if backend == Backend.LOCAL:
        from .local.provider import LocalSandboxProvider

        return LocalSandboxProvider(config, repo, rollout_id)
    if backend == Backend.DAYTONA:
        try:
            from .daytona.provider import DaytonaSandboxProvider
        except ModuleNotFoundError as e:
            if (e.name or "").split(".")[0] != "daytona":
                raise
            raise ConfigError(DAYTONA_NOT_INSTALLED) from None

        return DaytonaSandboxProvider(config, repo, rollout_id, api_key=daytona_api_key)
    raise ValueError(f"unknown sandbox backend {backend!r}")
