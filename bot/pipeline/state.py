"""What the stages of one run share: the request, the settings, and what is known so far."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bot.rlm import Config

from .outcome import OutcomeWords, Target
from .reporter import Reporter
from .request import RunRequest

if TYPE_CHECKING:
    from bot.rlm import ModelClient, PreparedRepo, RolloutResult


class Stage(Protocol):
    """A step before the fetch (reads .github/rlm.yml, the request's context, ...). It may replace
    `state.config`, add notes through the reporter, or raise RLMError to end the run."""

    def __call__(self, state: RunState, reporter: Reporter) -> None: ...


@dataclass
class RunSettings:
    """How to run (the same for every request an adapter handles)."""

    config: Config
    results_dir: Path = Path("results")
    prefix: str = "/rlm"  # the command prefix, for messages ("Cancelled by `/rlm cancel`")
    words: OutcomeWords = OutcomeWords()  # how this front end words the pipeline's own outcomes
    auth_header: str | None = None  # for git only (clone); never in a sandbox
    api_key: str | None = None  # the LLM key; None = LLM_API_KEY from the environment
    daytona_api_key: str | None = None  # None = DAYTONA_API_KEY from the environment
    before_fetch: Sequence[Stage] = ()  # after the target is known: .github/rlm.yml, the request's context
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
