"""`rlm sandboxes reap` and the App server's start: remove what killed runs left behind."""

from __future__ import annotations

import os
from pathlib import Path

from ..config import Config
from .environments import envs_root, prune
from .local.checkout.shared import evict
from .local.roots import reap_leftovers


def reap_all(config: Config, environ: dict[str, str] | None = None) -> dict[str, int]:
    """Everything a killed run can leave: local sandbox directories and cgroups, and Daytona
    sandboxes when a DAYTONA_API_KEY is available; ready environments beyond
    sandbox.setup_cache_keep (environments.py); and idle shared checkouts."""
    environ = os.environ if environ is None else environ
    work_dir = Path(config.sandbox.work_dir).expanduser() if config.sandbox.work_dir else None
    result = {
        "local": len(reap_leftovers(config.cache_root(), work_dir)),
        "daytona": 0,
        "environments": len(prune(envs_root(config.cache_root()), config.sandbox.setup_cache_keep)),
    }
    result["checkouts"] = len(evict(config.cache_root(), keep=0))  # idle shared checkouts
    if environ.get("DAYTONA_API_KEY"):
        from .daytona.client import reap_orphans

        result["daytona"] = reap_orphans(config)
    return result
