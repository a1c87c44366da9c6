"""The engine: a deep recursive language-model agent tree on one commit of a repository.

This module is its public surface: code outside `bot/rlm` imports from here (and sandbox
backends from `bot.rlm.sandbox`), never deeper. Where to look inside:

- engine.py      the front door: `prepare` the repository, then `run` one rollout
- rollout.py     the tree: budgets, deadline, cancellation, sub-agents, the patch
- agent.py       one agent's loop (LLM call -> code blocks -> REPL -> FINAL), limits in limits.py
- repl/          the driver inside each sandbox and the host's session with it
- sandbox/       where agents run: local (bubblewrap, copy-on-write checkouts) or daytona
- llm.py, scripted.py   the model client (litellm) and the deterministic scripted model
- trace.py, fold.py     events while it runs, the results JSON, the markdown summary
- check.py       commands on a commit + patch + files in a fresh sandbox (`rlm eval`'s judge)
- config.py      the typed configuration (config.yaml, RLM_* overrides)

Importing this package is cheap: the model client (litellm) loads when a run starts, or when one
of the lazily loaded names below (`RolloutResult`, `Rollout`, `ModelClient`, `LiteLLMClient`) is
first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .check import CommandResult, PatchCheck, check_patch
from .config import (
    SCRIPTED_PROVIDER,
    Backend,
    Config,
    ConfigError,
    ModelConfig,
    apply_overrides,
    load_config,
    validate_partial,
)
from .demo import PROMPT as DEMO_PROMPT
from .demo import materialize as materialize_demo
from .engine import prepare, run
from .errors import LLMError, RepoError, RLMError, SandboxError
from .findings import Finding, RunMode
from .fold import EventKind, agent_of, fold, fold_events, new_results, public, read_head
from .patch import FileChange, PatchError, changed_files
from .repo import PreparedRepo, git, normalize_source
from .run_id import new_run_id
from .script import ScriptError, read_script
from .status import SetupStatus, Status
from .trace import (
    COST_UNKNOWN,
    STATUS_ICONS,
    Trace,
    cost_cap_of,
    count,
    fmt_cost,
    fmt_duration,
    fmt_spend,
    fmt_spend_of_cap,
    read_events,
    summary_markdown,
    totals_line,
    write_json_atomic,
)

if TYPE_CHECKING:
    from .llm import LiteLLMClient, ModelClient, missing_provider_keys, model_provider
    from .rollout import Rollout, RolloutResult

__all__ = [
    "COST_UNKNOWN",
    "DEMO_PROMPT",
    "SCRIPTED_PROVIDER",
    "STATUS_ICONS",
    "Backend",
    "CommandResult",
    "Config",
    "ConfigError",
    "EventKind",
    "FileChange",
    "Finding",
    "LLMError",
    "LiteLLMClient",
    "ModelClient",
    "ModelConfig",
    "PatchCheck",
    "PatchError",
    "PreparedRepo",
    "RLMError",
    "RepoError",
    "RunMode",
    "Rollout",
    "RolloutResult",
    "SandboxError",
    "ScriptError",
    "SetupStatus",
    "Status",
    "Trace",
    "agent_of",
    "apply_overrides",
    "changed_files",
    "check_patch",
    "cost_cap_of",
    "count",
    "fmt_cost",
    "fmt_duration",
    "fmt_spend",
    "fmt_spend_of_cap",
    "fold",
    "fold_events",
    "git",
    "load_config",
    "materialize_demo",
    "missing_provider_keys",
    "model_provider",
    "new_results",
    "new_run_id",
    "normalize_source",
    "prepare",
    "public",
    "read_events",
    "read_head",
    "read_script",
    "run",
    "summary_markdown",
    "totals_line",
    "validate_partial",
    "write_json_atomic",
]

_LAZY = {  # name -> module: these import litellm
    "LiteLLMClient": "llm",
    "ModelClient": "llm",
    "Rollout": "rollout",
    "RolloutResult": "rollout",
    "model_provider": "llm",
    "missing_provider_keys": "llm",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
