"""What the stages of one run share: the request, the settings, and what is known so far."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bot.rlm import Config

from .outcome import Target
from .request import RunRequest

if TYPE_CHECKING:
    from bot.rlm import ModelClient, PreparedRepo, RolloutResult

    from .protocols import Stage


@dataclass
class RunSettings:
    """How to run (the same for every request an adapter handles)."""

    config: Config
    results_dir: Path = Path("results")
    prefix: str = "/rlm"  # the command prefix, for messages ("Cancelled by `/rlm cancel`")
    auth_header: str | None = None  # for git only (clone); never in a sandbox
    api_key: str | None = None  # the LLM key; None = LLM_API_KEY from the environment
    daytona_api_key: str | None = None  # None = DAYTONA_API_KEY from the environment
    before_fetch: Sequence[Stage] = ()  # after the target is known: e.g. .github/rlm.yml
    before_rollout: Sequence[Stage] = ()  # after the fetch: e.g. environment setup (issue 12)
    model: ModelClient | None = None  # a model client instead of litellm's (tests)
    # Where a saved patch can be had, for people: a URL (the App's trace page), the artifact, a path.
    patch_link: Callable[[Path], str] | None = None

    def patch_location(self, path: Path) -> str:
        return self.patch_link(path) if self.patch_link else f"`{path}`"


@dataclass
class RunState:
    request: RunRequest
    settings: RunSettings
    config: Config  # the run's config: settings.config, possibly replaced by a stage
    target: Target | None = None
    prepared: PreparedRepo | None = None
    result: RolloutResult | None = None
    patch_path: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.request.run_id or ""
