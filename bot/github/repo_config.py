"""A repository's own `.github/rlm.yml`, read from its DEFAULT branch (never from a PR head, so a
pull request cannot raise its own limits), applied within the bounds the server allows.

The server's config is the ceiling: a repo may lower limits, never raise them, and may pick a
model only from the server's allowed list. A repository may give its own environment `setup:`
(docs/environment.md), which the server may run offline or refuse (`RepoSetup`); its time limit is
the server's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import yaml

from bot.common.enums import StrEnum
from bot.rlm import Config, ConfigError, apply_overrides, validate_partial

from .api import GitHubAPI
from .messages import FORK_UNTRUSTED, REPO_CONFIG_PROBLEM
from .triggers import TRIGGERS_KEY

if TYPE_CHECKING:
    from bot.pipeline import Reporter, RunState

REPO_CONFIG_PATH = ".github/rlm.yml"
# Limits a repository may set; each is capped at the server's own value.
CAPPED_LIMITS = (
    "max_sandboxes",
    "max_iterations",
    "max_depth",
    "global_timeout",
    "max_concurrency",
    "max_cost_usd",
    "exec_timeout",
    "result_truncation_limit",
    "output_truncation_limit",
)
MODEL_KEYS = ("name", "temperature", "max_tokens")

NOT_A_MAPPING = "it must be a mapping with `model` and/or `rlm` sections (and `setup` and delivery keys)"
SETUP_DENIED = "`setup` is turned off on this server (RLM_REPO_SETUP=deny)"
SETUP_OFFLINE = "`setup` runs without network on this server (RLM_REPO_SETUP=offline)"
SETUP_INVALID = (
    "`setup` must be `auto` or a list of at most {n} shell commands of at most {chars} characters each"
)
MAX_SETUP_COMMANDS = 20
MAX_SETUP_CHARS = 2000


NOT_YAML = "it is not valid YAML"
SECTION_NOT_ALLOWED = "the `{section}` section is set by the server, not the repository"
KEY_NOT_ALLOWED = "`{key}` cannot be set by a repository"
MODEL_NOT_ALLOWED = "model `{name}` is not one this server allows ({allowed})"
COST_ABOVE_MAXIMUM = (
    "`rlm.max_cost_usd` asks for ${asked:.2f}, more than the ${cap:.2f} this server allows a run; "
    "runs stop at ${cap:.2f}"
)
DEFAULT_COST_CAP_USD = 5.0  # a run's cost cap when neither the operator nor the repository sets one


@dataclass(frozen=True)
class CostCap:
    """What one run may spend (docs/repo-config.md): `default_usd` when the repository's
    `rlm.max_cost_usd` says nothing, and `max_usd`, the most that key may ask (None: no ceiling,
    as in the Action, where the repository is its own operator)."""

    default_usd: float | None = DEFAULT_COST_CAP_USD
    max_usd: float | None = DEFAULT_COST_CAP_USD


class RepoSetup(StrEnum):
    """What a server lets a repository's `setup:` do (RLM_REPO_SETUP)."""

    ALLOW = "allow"  # run it, with the network when the server's sandbox.setup_network allows
    OFFLINE = "offline"  # run it without network
    DENY = "deny"  # ignore it


BAD_REPO_SETUP = "RLM_REPO_SETUP must be allow, offline or deny (got {value!r})."


def repo_setup_policy(value: str | None) -> RepoSetup:
    """RLM_REPO_SETUP as a policy; empty is `allow`. Raises ValueError with a sentence."""
    try:
        return RepoSetup((value or "allow").strip().lower())
    except ValueError:
        raise ValueError(BAD_REPO_SETUP.format(value=value)) from None


def _apply_setup(merged: dict, value: object, policy: RepoSetup, notes: list[str]) -> None:
    """`setup:` (top level): the repository's own environment setup, within the server's policy;
    the time limit stays the server's `sandbox.setup_timeout`."""
    if policy is RepoSetup.DENY:
        notes.append(SETUP_DENIED)
        return
    commands = [value] if isinstance(value, str) and value.strip() != "auto" else value
    ok = (
        commands == "auto"
        or commands is None
        or (
            isinstance(commands, list)
            and len(commands) <= MAX_SETUP_COMMANDS
            and all(isinstance(c, str) and 0 < len(c) <= MAX_SETUP_CHARS for c in commands)
        )
    )
    if not ok:
        notes.append(SETUP_INVALID.format(n=MAX_SETUP_COMMANDS, chars=MAX_SETUP_CHARS))
        return
    if isinstance(commands, str):
        commands = commands.strip()
    merged["sandbox"]["setup"] = commands or []
    if policy is RepoSetup.OFFLINE and commands:
        merged["sandbox"]["setup_network"] = False
        notes.append(SETUP_OFFLINE)


class PullRequestMode(StrEnum):
    PR = "pr"  # a command on someone's same-repo PR opens a PR into its head branch
    PUSH = "push"  # ... or pushes a commit onto its head branch


@dataclass(frozen=True)
class DeliveryPrefs:
    """How a run's change is delivered; `.github/rlm.yml` top-level keys of the same names.
    A PR whose head branch this bot created always gets a follow-up commit, whatever the mode."""

    pull_requests: PullRequestMode = PullRequestMode.PR
    closes_issue: bool = True  # "Closes #N" in the body of a PR started from an issue
    request_review: bool = True  # the requester is asked to review the PR


@dataclass
class RepoSettings:
    config: Config
    prefs: DeliveryPrefs = field(default_factory=DeliveryPrefs)
    problems: list[str] = field(default_factory=list)


DELIVERY_KEYS = ("pull_requests", "closes_issue", "request_review")
BAD_DELIVERY_VALUE = "`{key}` must be {allowed}"


def delivery_prefs(data: dict) -> tuple[DeliveryPrefs, list[str]]:
    """The delivery preferences in a parsed rlm.yml (removed from `data`), and what was wrong."""
    values: dict = {}
    notes: list[str] = []
    for key in DELIVERY_KEYS:
        if key not in data:
            continue
        value = data.pop(key)
        if key == "pull_requests":
            try:
                values[key] = PullRequestMode(str(value))
            except ValueError:
                notes.append(BAD_DELIVERY_VALUE.format(key=key, allowed="`pr` or `push`"))
        elif isinstance(value, bool):
            values[key] = value
        else:
            notes.append(BAD_DELIVERY_VALUE.format(key=key, allowed="`true` or `false`"))
    return DeliveryPrefs(**values), notes


def apply_repo_config(
    config: Config,
    text: str | None,
    allowed_models: set[str] | None = None,
    setup_policy: RepoSetup = RepoSetup.ALLOW,
    *,
    ceilings: Mapping[str, float | None] | None = None,
    any_model: bool = False,
) -> tuple[Config, list[str]]:
    """The config to run with, and the sentences explaining what was ignored. Each `rlm` limit is
    capped at the config's own value, or at `ceilings[key]` when given (None there: no ceiling);
    `any_model` lets the file choose any model (the Action: the repository is its own operator)."""
    if not text or not text.strip():
        return config, []
    ceilings = ceilings or {}
    allowed = set(allowed_models or ()) | {config.model.name}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return config, [NOT_YAML]
    if data is None:
        return config, []
    if not isinstance(data, dict):
        return config, [NOT_A_MAPPING]
    # Read elsewhere: delivery keys by delivery_prefs, `triggers` by bot/github/triggers.py.
    data = {k: v for k, v in data.items() if k not in DELIVERY_KEYS and k != TRIGGERS_KEY}
    has_setup, setup = "setup" in data, data.pop("setup", None)
    try:
        validate_partial(data, REPO_CONFIG_PATH)
    except ConfigError as e:
        return config, [str(e)]
    notes: list[str] = []
    merged = config.model_dump()
    if has_setup:
        _apply_setup(merged, setup, setup_policy, notes)
    for section in data:
        if section not in ("model", "rlm"):
            notes.append(SECTION_NOT_ALLOWED.format(section=section))
    for key, value in (data.get("model") or {}).items():
        if key not in MODEL_KEYS:
            notes.append(KEY_NOT_ALLOWED.format(key=f"model.{key}"))
        elif key == "name" and not any_model and value not in allowed:
            notes.append(MODEL_NOT_ALLOWED.format(name=value, allowed=", ".join(sorted(allowed))))
        elif key == "max_tokens" and config.model.max_tokens is not None and value is not None:
            merged["model"][key] = min(value, config.model.max_tokens)
        else:
            merged["model"][key] = value
    for key, value in (data.get("rlm") or {}).items():
        if key not in CAPPED_LIMITS:
            notes.append(KEY_NOT_ALLOWED.format(key=f"rlm.{key}"))
            continue
        ceiling = ceilings[key] if key in ceilings else getattr(config.rlm, key)
        if value is None:
            continue
        merged["rlm"][key] = value if ceiling is None else min(value, ceiling)
        if key == "max_cost_usd" and ceiling is not None and value > ceiling:
            notes.append(COST_ABOVE_MAXIMUM.format(asked=value, cap=ceiling))
    return Config.model_validate(merged), notes


@dataclass(frozen=True)
class RepoPolicy:
    """What a repository's `.github/rlm.yml` may do on this deployment. The App: a model from
    RLM_ALLOWED_MODELS, `setup:` as RLM_REPO_SETUP says, a cost up to the operator's maximum. The
    Action: the repository is its own operator (any model; no cost ceiling but its inputs')."""

    allowed_models: frozenset[str] = frozenset()
    setup: RepoSetup = RepoSetup.ALLOW
    cost: CostCap = field(default_factory=CostCap)
    any_model: bool = False


def repo_settings(
    config: Config,
    text: str | None,
    allowed_models: set[str] | None = None,
    setup_policy: RepoSetup = RepoSetup.ALLOW,
    *,
    policy: RepoPolicy | None = None,
) -> RepoSettings:
    """Engine config (capped) and delivery preferences from one rlm.yml text. With a `policy`, the
    run's cost cap is its default where the file sets none, and the file's is bounded by its maximum."""
    if policy is not None:
        config = apply_overrides(config, {"rlm.max_cost_usd": policy.cost.default_usd})
        run_config, problems = apply_repo_config(
            config,
            text,
            set(policy.allowed_models),
            policy.setup,
            ceilings={"max_cost_usd": policy.cost.max_usd},
            any_model=policy.any_model,
        )
    else:
        run_config, problems = apply_repo_config(config, text, allowed_models, setup_policy)
    prefs = DeliveryPrefs()
    try:
        data = yaml.safe_load(text or "")
    except yaml.YAMLError:
        data = None
    if isinstance(data, dict):
        prefs, notes = delivery_prefs(data)
        problems += notes
    return RepoSettings(run_config, prefs, problems)


def read_repo_config(api: GitHubAPI, repo: str, default_branch: str) -> str | None:
    """The text of `.github/rlm.yml` on the default branch (None: there is none)."""
    return api.get_file(repo, REPO_CONFIG_PATH, default_branch)


class RepoConfigStage:
    """The pipeline's `before_fetch` stage for the App and the Action: `.github/rlm.yml` from the
    default branch, within the deployment's `RepoPolicy`; what was ignored becomes a note in the
    status comment, and so does, for a fork's pull request, that setup and AGENTS.md come from the
    base commit. `overrides` (dotted keys: the Action's inputs) win over the file."""

    def __init__(
        self,
        api: GitHubAPI,
        policy: RepoPolicy | None = None,
        on_prefs: Callable[[DeliveryPrefs], None] | None = None,
        overrides: Mapping[str, object] | None = None,
    ):
        """`on_prefs` hears the file's delivery preferences (the deliverer's `use_prefs`)."""
        self.api, self.policy = api, policy or RepoPolicy()
        self.on_prefs = on_prefs or (lambda _prefs: None)
        self.overrides = dict(overrides or {})

    def __call__(self, state: RunState, reporter: Reporter) -> None:
        request = state.request
        default_branch = request.default_branch
        if default_branch is None:
            default_branch = request.default_branch = (
                self.api.get_repo(request.repo).get("default_branch") or "main"
            )
        text = read_repo_config(self.api, request.repo, default_branch)
        settings = repo_settings(state.config, text, policy=self.policy)
        state.config = apply_overrides(settings.config, self.overrides)
        self.on_prefs(settings.prefs)
        for problem in settings.problems:
            reporter.note(REPO_CONFIG_PROBLEM.format(reason=problem))
        if request.fork and request.trusted_commit:  # the pipeline runs setup there (PreparedRepo)
            reporter.note(FORK_UNTRUSTED.format(base=request.trusted_commit[:12]))
