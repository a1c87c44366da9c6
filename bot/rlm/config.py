"""Typed configuration: defaults < config.yaml < environment < CLI overrides.

Every problem with a value becomes one `ConfigError` sentence naming the key and what is allowed.
Secrets are never part of this config: they come from the environment when needed (see bot/common/secrets.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.common.enums import StrEnum

ENV_PREFIX = "RLM_"
DAYTONA_TARGET = "DAYTONA_TARGET"  # Daytona's own variable for its region
SCRIPTED_PROVIDER = "scripted"  # the deterministic scripted model: `scripted/<script>` (scripted.py)


class ConfigError(Exception):
    """A configuration problem the user can fix; the message is one sentence."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Section):
    name: str = Field("openrouter/google/gemini-3-flash-preview", description="litellm model name")
    api_base: str | None = Field(None, description="base URL of an OpenAI-compatible server")
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, gt=0, description="cap on each response's length")
    timeout: float = Field(
        900,
        gt=0,
        description="seconds for one LLM call (also bounded by the deadline); reasoning models are slow",
    )
    max_retries: int = Field(4, ge=0, le=20, description="retries on rate limits, 5xx and timeouts")
    stream: bool = Field(
        False,
        description="stream responses: model.timeout then bounds each wait for the next chunk, so a slow "
        "model that keeps producing tokens is not cut off (OpenAI-compatible providers)",
    )
    timeout_retries: int = Field(
        1, ge=0, le=20, description="of those retries, how many may follow a timed-out call (each pays again)"
    )
    input_cost_per_token: float | None = Field(None, ge=0, description="override litellm's price table")
    output_cost_per_token: float | None = Field(None, ge=0)


class RLMConfig(_Section):
    max_sandboxes: int = Field(50, ge=1, description="sandboxes (= agents) in one rollout")
    max_iterations: int = Field(50, ge=1, description="LLM turns per agent")
    max_depth: int = Field(3, ge=0, description="deepest sub-agent level; 0 = root only")
    global_timeout: float = Field(3600, gt=0, description="seconds for the whole tree")
    result_truncation_limit: int = Field(10000, ge=100, description="characters of a child's answer")
    output_truncation_limit: int = Field(20000, ge=100, description="characters of a block's output")
    max_concurrency: int = Field(16, ge=1, description="LLM calls and sandbox creations at once")
    max_cost_usd: float | None = Field(None, gt=0, description="stop the tree past this cost")
    exec_timeout: float = Field(300, gt=0, description="seconds for one code block")
    max_patch_bytes: int = Field(
        20_000_000, ge=1024, description="largest patch the root may produce; bigger is refused"
    )


class DaytonaSettings(_Section):
    """The daytona sandbox backend (docs/daytona.md). The API key comes only from DAYTONA_API_KEY."""

    api_url: str | None = Field(None, description="default https://app.daytona.io/api")
    target: str | None = Field(None, description="region; default $DAYTONA_TARGET, else us")
    image: str | None = Field(None, description="image with git and python3 (resources apply)")
    snapshot: str | None = Field(None, description="snapshot name; default: Daytona's python snapshot")
    cpu: int | None = Field(None, ge=1, description="vCPUs per sandbox (image only)")
    memory_gb: int | None = Field(None, ge=1, description="GiB of memory per sandbox (image only)")
    disk_gb: int | None = Field(None, ge=1, description="GiB of disk per sandbox (image only)")
    ephemeral: bool = Field(True, description="delete a sandbox as soon as it stops")
    auto_delete_minutes: int = Field(
        30, ge=0, description="when not ephemeral: delete after stopped this long"
    )
    auto_stop_minutes: int | None = Field(
        None, ge=1, description="stop after this much inactivity; default rlm.global_timeout + 10 min"
    )
    network_allow_list: str | None = Field(None, description="CIDRs the sandbox may reach; default none")
    create_timeout: float = Field(180, gt=0, description="seconds for one sandbox to be created and started")
    create_retries: int = Field(5, ge=0, le=20, description="retries on rate limits, quotas and 5xx")
    retry_backoff: float = Field(2.0, ge=0, description="first retry delay in seconds, doubled each time")
    create_concurrency: int | None = Field(
        None, ge=1, description="sandbox creations at once; default rlm.max_concurrency"
    )


class Backend(StrEnum):
    """Where sandboxes run: on this host, or in Daytona's cloud."""

    LOCAL = "local"
    DAYTONA = "daytona"


class SandboxConfig(_Section):
    backend: Backend = Backend.LOCAL
    isolation: Literal["auto", "bwrap", "none"] = Field(
        "auto", description="local: bwrap when present (auto), required (bwrap), or off (none)"
    )
    cache_dir: str | None = Field(None, description="default ~/.cache/rlm-bot")
    work_dir: str | None = Field(
        None, description="where checkouts live; default /dev/shm when it has room, else cache_dir"
    )
    memory_mb: int = Field(
        4096, ge=64, description="memory of a whole sandbox (cgroup), and address space per process"
    )
    max_processes: int = Field(512, ge=8, description="processes and threads in one sandbox at once")
    disk_mb: int = Field(2048, ge=16, description="size of a sandbox's /tmp, and of any one file it writes")
    checkout_mb: int = Field(
        2048, ge=16, description="most an agent may write into its copy-on-write checkout (kept in memory)"
    )
    max_message_mb: int = Field(16, ge=1, description="largest REPL protocol message the host reads")
    setup: list[str] | Literal["auto"] = Field(
        default_factory=list,
        description="shell commands run once per rollout to build $RLM_ENV (docs/environment.md), or auto",
    )
    setup_network: bool | None = Field(None, description="network during setup; default on when setup is set")
    setup_timeout: float = Field(900, gt=0, description="seconds the setup commands may take")
    setup_cache_keep: int = Field(5, ge=1, description="built environments kept in the cache")
    setup_env: list[str] = Field(
        default_factory=list,
        description="names of host variables passed to setup only (PIP_INDEX_URL, HTTPS_PROXY, ...); values never logged",
    )
    setup_ca_bundle: str | None = Field(
        None,
        description="a CA bundle file made available to setup only, with SSL_CERT_FILE, PIP_CERT and REQUESTS_CA_BUNDLE on it",
    )
    setup_key_files: list[str] = Field(
        default_factory=list,
        description="globs of more files whose content counts in the environment's cache key",
    )
    setup_disk_mb: int = Field(
        4096, ge=16, description="disk the setup may fill: its environment, checkout and log"
    )
    inherit: str | None = Field(
        None, description="a Python prefix or venv prepared on the host, read-only to agents"
    )
    inherit_checkout: str | None = Field(
        None, description="the host path its editable installs point at; each agent's own checkout"
    )
    checkouts: Literal["auto", "overlay", "copy"] = Field(
        "auto",
        description="local: copy-on-write overlays where the kernel allows (auto), required, or full copies",
    )
    checkout_cache: int = Field(
        4, ge=0, description="local: idle shared checkouts of recent commits kept for the next rollout"
    )
    daytona: DaytonaSettings = Field(default_factory=DaytonaSettings)

    @field_validator("setup", mode="before")
    @classmethod
    def _one_command(cls, value: Any) -> Any:
        """`setup: make deps` (one string) is one command; `auto` is the detection."""
        if value is None:
            return []
        if isinstance(value, str) and value.strip() != "auto":
            return [value]
        return value.strip() if isinstance(value, str) else value

    def network_during_setup(self) -> bool:
        return bool(self.setup) if self.setup_network is None else self.setup_network


class Config(_Section):
    model: ModelConfig = Field(default_factory=ModelConfig)
    rlm: RLMConfig = Field(default_factory=RLMConfig)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    results_dir: str = "results"

    def cache_root(self) -> Path:
        if self.sandbox.cache_dir:
            return Path(self.sandbox.cache_dir).expanduser()
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "rlm-bot"


def _allowed_keys(model: type[BaseModel]) -> str:
    return ", ".join(model.model_fields)


def _section_at(loc: tuple) -> type[BaseModel]:
    cls: type[BaseModel] = Config
    for part in loc[:-1]:
        field = cls.model_fields.get(str(part))
        ann = getattr(field, "annotation", None)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            break
        cls = ann
    return cls


def _explain(err: ValidationError, source: str) -> ConfigError:
    first = err.errors()[0]
    loc = tuple(first["loc"])
    key = ".".join(str(p) for p in loc)
    if first["type"] == "extra_forbidden":
        return ConfigError(f"{source}: unknown key '{key}'; allowed here: {_allowed_keys(_section_at(loc))}.")
    got = first.get("input")
    msg = first["msg"][0].lower() + first["msg"][1:]
    return ConfigError(f"{source}: '{key}' is invalid: {msg} (got {got!r}).")


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"'{dotted}' cannot be set: '{part}' is not a section.")
        node = nxt
    node[parts[-1]] = value


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def env_overrides(environ: dict[str, str] | None = None) -> dict:
    """`RLM_RLM__MAX_DEPTH=2` sets rlm.max_depth; `RLM_MODEL__NAME=...` sets model.name; Daytona's own
    DAYTONA_TARGET sets sandbox.daytona.target (RLM_SANDBOX__DAYTONA__TARGET wins)."""
    environ = os.environ if environ is None else environ
    data: dict = {}
    if environ.get(DAYTONA_TARGET, "").strip():
        _set_dotted(data, "sandbox.daytona.target", environ[DAYTONA_TARGET].strip())
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        dotted = name[len(ENV_PREFIX) :].lower().replace("__", ".")
        _set_dotted(data, dotted, yaml.safe_load(value) if value.strip() else None)
    return data


def read_yaml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist.") from None
    except OSError as e:
        raise ConfigError(f"config file {path} cannot be read: {e.strerror}.") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must be a mapping of sections (model, rlm, sandbox).")
    return data


def load_config(
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Config:
    """Build the config. `overrides` maps dotted keys ('rlm.max_depth') to values."""
    data: dict = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        data = read_yaml(Path(path))
    try:
        Config.model_validate(data)
    except ValidationError as e:
        raise _explain(e, source) from None
    env = env_overrides(environ)
    data = _merge(data, env)
    try:
        Config.model_validate(data)
    except ValidationError as e:
        raise _explain(e, "environment (RLM_*)") from None
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(data, key, value)
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise _explain(e, "command line") from None


def apply_overrides(config: Config, overrides: dict[str, Any], source: str = "command line") -> Config:
    """`config` with dotted keys set ('rlm.max_cost_usd': 2.0); a None value leaves the key as it is."""
    if not any(value is not None for value in overrides.values()):
        return config
    data = config.model_dump()
    for key, value in overrides.items():
        if value is not None:
            _set_dotted(data, key, value)
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise _explain(e, source) from None


def validate_partial(data: dict, source: str) -> dict:
    """Check a partial config mapping (e.g. a repo's .github/rlm.yml) against the schema."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must be a mapping of sections.")
    try:
        Config.model_validate(data)
    except ValidationError as e:
        raise _explain(e, source) from None
    return data
