"""The engine's front door: fetch the repo, wire model, sandboxes and trace, run one rollout.

Callers (CLI, GitHub App worker, Action) use `run` and nothing deeper.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .config import Config
from .repo import PreparedRepo, prepare_repo
from .secrets import REDACTOR

if TYPE_CHECKING:
    from .llm import ModelClient
    from .rollout import RolloutResult


def default_api_key() -> str | None:
    return os.environ.get("LLM_API_KEY") or None


def prepare(config: Config, repo: str, branch: str | None = None, commit: str | None = None,
            auth_header: str | None = None) -> PreparedRepo:  # fmt: skip
    """Fetch the repository into the cache and pin the commit (raises RepoError)."""
    if auth_header:
        REDACTOR.add(auth_header, auth_header.split()[-1])
    # Import litellm and warm its call path while git fetches (both take seconds).
    threading.Thread(target=_warm_up, args=(config,), daemon=True, name="rlm-warm-up").start()
    return prepare_repo(repo, config.cache_root(), branch=branch, commit=commit, auth_header=auth_header)


def _warm_up(config: Config) -> None:
    from .llm import warm_up

    warm_up(config.model)


def run(
    config: Config,
    prepared: PreparedRepo,
    prompt: str,
    *,
    run_id: str | None = None,
    results_dir: Path | None = None,
    cancel: threading.Event | None = None,
    on_event: Callable[[dict], None] | None = None,
    model: ModelClient | None = None,
    api_key: str | None = None,
    daytona_api_key: str | None = None,
    context: str | None = None,
) -> RolloutResult:
    """Run one rollout to its end. Never leaves a sandbox behind; always writes the trace.
    `daytona_api_key`: for the daytona backend, when the caller holds the key (else the environment).
    `context` is the request's context (markdown), the root agent's REPL variable `context`."""
    # Imported here: litellm takes seconds to import, and prepare() (which fails fast on a bad
    # repository) does not need it.
    from .llm import LiteLLMClient
    from .rollout import Rollout, new_run_id
    from .sandbox import make_provider
    from .trace import Trace

    run_id = run_id or new_run_id()
    api_key = api_key if api_key is not None else default_api_key()
    REDACTOR.add(api_key, daytona_api_key)
    trace = Trace(run_id, results_dir if results_dir is not None else Path(config.results_dir))
    if on_event is not None:
        trace.subscribe(on_event)
    client = model or LiteLLMClient(config.model, api_key=api_key)
    rollout = Rollout(config, client, prepared, prompt,
                      provider_factory=lambda rid: make_provider(config, prepared, rid, daytona_api_key),
                      trace=trace, cancel=cancel, context=context)  # fmt: skip
    return rollout.run()
