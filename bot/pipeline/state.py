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
    words: OutcomeWords  # how this front end words the pipeline's own outcomes (and its prefix)
    results_dir: Path = Path("results")
    auth_header: str | None = None  # for git only (clone); never in a sandbox
    api_key: str | None = None  # the LLM key, read by the front end; None = no key (a local model)
    daytona_api_key: str | None = None  # the Daytona key, read by the front end
    before_fetch: Sequence[Stage] = ()  # after the target is known: .github/rlm.yml, the request's context
    model: ModelClient | None = None  # a model client instead of litellm's (tests)
    # Where a saved patch can be had, for people: a URL (the App's trace page), the artifact, a path.
    patch_link: Callable[[Path], str] | None = None

    def patch_location(self, path: Path) -> str:
        """Where the saved patch is, as the front end words it (a link, a path); else the bare path."""
        return self.patch_link(path) if self.patch_link else str(path)


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

    @property
    def partial(self) -> bool:
        """The cost cap stopped the tree: what it changed so far is still delivered, marked partial."""
        return self.result is not None and cost_cap_reached(
            self.result.status, self.result.results, self.config
        )


COST_EPSILON = 1e-6  # the trace's totals are rounded; the cap's own check used the exact sum


def cost_cap_reached(status: str, results: dict, config: Config) -> bool:
    """The run ended on its budget with its cost at the cap (not on iterations or sandboxes)."""
    cap = config.rlm.max_cost_usd
    spent = (results.get("totals") or {}).get("cost_usd", 0.0)
    return status == "budget" and cap is not None and spent >= cap - COST_EPSILON
