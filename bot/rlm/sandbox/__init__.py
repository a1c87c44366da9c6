"""Sandbox backends behind one protocol (base.py): local (default) and daytona."""

from __future__ import annotations

from ..config import Config
from ..repo import PreparedRepo
from .base import Sandbox, SandboxProvider

__all__ = ["Sandbox", "SandboxProvider", "make_provider"]


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
