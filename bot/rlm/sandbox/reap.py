"""`rlm sandboxes reap` and the App server's start: remove what killed runs left behind."""

from __future__ import annotations

from pathlib import Path

from ..config import Backend, Config
from .environments import envs_root, prune
from .local.checkout.shared import evict
from .local.roots import reap_leftovers


def reap_all(config: Config, daytona_api_key: str | None = None) -> dict[str, int]:
    """Everything a killed run can leave: local sandbox directories and cgroups, and Daytona
    sandboxes when the caller has a Daytona key; ready environments beyond
    sandbox.setup_cache_keep (environments.py); and idle shared checkouts."""
    work_dir = Path(config.sandbox.work_dir).expanduser() if config.sandbox.work_dir else None
    result = {
        Backend.LOCAL: len(reap_leftovers(config.cache_root(), work_dir)),
        Backend.DAYTONA: 0,
        "environments": len(prune(envs_root(config.cache_root()), config.sandbox.setup_cache_keep)),
    }
    result["checkouts"] = len(evict(config.cache_root(), keep=0))  # idle shared checkouts
    if daytona_api_key:
        from .daytona.client import reap_orphans

        result[Backend.DAYTONA] = reap_orphans(config, daytona_api_key)
    return result
