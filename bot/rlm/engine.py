"""The engine's front door: fetch the repo, wire model, sandboxes and trace, run one rollout.

Callers (CLI, GitHub App worker, Action) use `prepare` and `run` through `bot.rlm`, nothing deeper.
"""

from __future__ import annotations

import concurrent.futures.thread  # noqa: F401  registers its exit hook now, not from the warm-up at exit
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bot.common.secrets import REDACTOR
from bot.common.text import clean_text

from .config import Config
from .findings import RunMode
from .repo import PreparedRepo, prepare_repo

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from .llm import ModelClient
    from .rollout import RolloutResult


def prepare(
    config: Config,
    repo: str,
    branch: str | None = None,
    commit: str | None = None,
    auth_header: str | None = None,
    *,
    scope: str | None = None,
    trusted: bool = True,
    trusted_commit: str | None = None,
) -> PreparedRepo:
    """Fetch the repository into the cache and pin the commit (raises RepoError). `scope` names
    the repository for shared caches; `trusted=False` marks the commit as an untrusted author's,
    whose setup and AGENTS.md then come from `trusted_commit` (see PreparedRepo)."""
    if auth_header:
        REDACTOR.add(auth_header, auth_header.split()[-1])
    start_warm_up(config)
    try:
        return prepare_repo(
            repo,
            config.cache_root(),
            branch=branch,
            commit=commit,
            auth_header=auth_header,
            scope=scope,
            trusted=trusted,
            trusted_commit=trusted_commit,
        )
    except BaseException:
        abandon_warm_up(config)  # no run follows: let the process exit soon
        raise


@dataclass(frozen=True)
class _WarmUp:
    thread: threading.Thread
    abandoned: threading.Event


_warm_ups: dict[str, _WarmUp] = {}
_warm_ups_lock = threading.Lock()


def start_warm_up(config: Config) -> None:
    """Import litellm and walk its call path in the background while git fetches (both take
    seconds). The thread is not a daemon, `run` joins it, and the interpreter joins it before it
    shuts down: a daemon thread still importing at shutdown holds a module lock that finalizers
    (litellm's client `__del__`) then wait on forever, so the process would never exit."""
    name = config.model.name
    with _warm_ups_lock:
        current = _warm_ups.get(name)
        if current is not None:
            current.abandoned.clear()  # wanted again (if it already stopped, the first call warms up)
            return
        abandoned = threading.Event()
        thread = threading.Thread(target=_warm_up, args=(config, abandoned), name=f"rlm-warm-up:{name}")
        _warm_ups[name] = _WarmUp(thread, abandoned)
    thread.start()


def abandon_warm_up(config: Config) -> None:
    """No run will follow: the warm-up stops after the import in progress (imports cannot be
    interrupted safely), so an exiting process waits for that at most."""
    with _warm_ups_lock:
        warm = _warm_ups.get(config.model.name)
    if warm is not None:
        warm.abandoned.set()


def finish_warm_up(config: Config) -> None:
    """Wait for this model's warm-up, if one is running (the first model call needs what it
    imports anyway, so this costs the rollout nothing)."""
    with _warm_ups_lock:
        warm = _warm_ups.get(config.model.name)
    if warm is not None and warm.thread is not threading.current_thread():
        warm.thread.join()


def _warm_up(config: Config, abandoned: threading.Event) -> None:
    try:
        from . import llm  # the long part: litellm's import

        if not abandoned.is_set():
            llm.warm_up(config.model)
    except Exception as e:  # best effort: the run's own first call reports what is wrong
        log.debug("warm-up of %s failed: %s", config.model.name, e)


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
    mode: RunMode | str = "change",
) -> RolloutResult:
    """Run one rollout to its end. Never leaves a sandbox behind; always writes the trace.
    `api_key`, `daytona_api_key`: the keys, read by the front end; the engine reads no environment.
    `context` is the request's context (markdown), the root agent's REPL variable `context`.
    `mode`: `review` makes a read-only run whose agents record findings with COMMENT (no patch)."""
    # Imported here: litellm takes seconds to import, and prepare() (which fails fast on a bad
    # repository) does not need it.
    from .llm import LiteLLMClient
    from .rollout import Rollout
    from .run_id import new_run_id
    from .sandbox import make_provider
    from .trace import Trace

    finish_warm_up(config)
    prompt = clean_text(prompt)  # argv, environment and payload text may hold lone surrogates
    run_id = run_id or new_run_id()
    REDACTOR.add(api_key, daytona_api_key)
    trace = Trace(run_id, results_dir if results_dir is not None else Path(config.results_dir))
    if on_event is not None:
        trace.subscribe(on_event)
    client = model or LiteLLMClient(config.model, api_key=api_key)
    rollout = Rollout(
        config,
        client,
        prepared,
        prompt,
        provider_factory=lambda rid: make_provider(config, prepared, rid, daytona_api_key),
        trace=trace,
        cancel=cancel,
        context=context,
        mode=RunMode(mode),
    )
    return rollout.run()
