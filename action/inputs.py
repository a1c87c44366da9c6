"""The action's inputs, read from INPUT_* variables and checked into one typed object.

action.yml passes every input to the step as `INPUT_<NAME>` (upper case, dashes kept, as the
runner does for JavaScript actions): composite actions get no INPUT_* variables on their own.
An empty value means "not set": the config file's value or the engine's default applies.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bot.rlm import Backend


class InputError(Exception):
    """An input has a value the action cannot use; the message says which and what is allowed."""


def env_name(name: str) -> str:
    return "INPUT_" + name.replace(" ", "_").upper()


class InputReader:
    """Reads inputs from an environment and remembers which names were asked for."""

    def __init__(self, environ: Mapping[str, str] | None = None):
        self.environ = os.environ if environ is None else environ
        self.read: set[str] = set()

    def get(self, name: str) -> str:
        self.read.add(name)
        return self.environ.get(env_name(name), "").strip()

    def boolean(self, name: str, default: bool) -> bool:
        value = self.get(name).lower()
        if not value:
            return default
        if value in ("true", "yes", "1", "on"):
            return True
        if value in ("false", "no", "0", "off"):
            return False
        raise InputError(f"input '{name}' must be true or false (got {value!r}).")

    def _number(
        self, name: str, convert: Callable[[str], float], kind: str, rule: str, ok: Callable[[float], bool]
    ) -> float | None:
        value = self.get(name)
        if not value:
            return None
        try:
            number = convert(value)
        except ValueError:
            raise InputError(f"input '{name}' must be {kind} (got {value!r}).") from None
        if not ok(number):
            raise InputError(f"input '{name}' must be {rule} (got {value}).")
        return number

    def integer(self, name: str, minimum: int) -> int | None:
        number = self._number(name, int, "a whole number", f"at least {minimum}", lambda n: n >= minimum)
        return None if number is None else int(number)

    def seconds(self, name: str) -> float | None:
        return self._number(name, float, "a number of seconds", "more than 0 seconds", lambda n: n > 0)

    def dollars(self, name: str) -> float | None:
        return self._number(
            name,
            lambda v: float(v.lstrip("$")),
            "an amount of US dollars such as 2.50",
            "more than 0",
            lambda n: n > 0,
        )


SANDBOXES = tuple(Backend)
MODES = ("change", "review")  # bot.rlm.RunMode
NO_PREPARED_PYTHON = (
    "input 'environment' is inherit, but this job prepared no Python: add actions/setup-python "
    "(and `pip install -e '.[test]'`) before this step, set VIRTUAL_ENV, or pass the environment's path."
)
INHERIT_NOT_ON_DAYTONA = (
    "input 'environment' shares the runner's Python with local sandboxes only; with sandbox: daytona "
    "use the `setup` input instead."
)
ENVIRONMENT_VALUES = "none, inherit, or the absolute path of a Python prefix or virtualenv"


def setup_commands(text: str) -> list[str] | str | None:
    """The `setup` input: one shell command per line, or `auto`; empty: the config file's."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines == ["auto"]:
        return "auto"
    return lines or None


def prepared_python(value: str, environ: Mapping[str, str]) -> str | None:
    """The `environment` input as a prefix for sandbox.inherit: `inherit` is the job's virtualenv
    (VIRTUAL_ENV), else the Python actions/setup-python installed (pythonLocation); a path is
    itself; empty or `none` is nothing."""
    if value in ("", "none"):
        return None
    if value == "inherit":
        prefix = environ.get("VIRTUAL_ENV") or environ.get("pythonLocation") or ""
        if not prefix:
            raise InputError(NO_PREPARED_PYTHON)
        return prefix
    if not os.path.isabs(value):
        raise InputError(f"input 'environment' must be {ENVIRONMENT_VALUES} (got {value!r}).")
    return value


@dataclass(frozen=True)
class Inputs:
    prompt: str
    trigger: str
    model: str
    llm_api_key: str  # the input, else LLM_API_KEY (merged once, here)
    github_token: str
    sandbox: str
    daytona_api_key: str  # the input, else DAYTONA_API_KEY
    max_sandboxes: int | None
    max_iterations: int | None
    max_depth: int | None
    timeout: float | None
    max_cost: float | None  # rlm.max_cost_usd: US dollars one run may spend
    create_pr: bool
    draft: bool
    base_branch: str
    config: str
    mode: str = "change"  # `review`: a read-only review of the pull request (bot.rlm.RunMode)
    setup: list[str] | str | None = None  # sandbox.setup (docs/environment.md)
    inherit: str | None = None  # sandbox.inherit: the Python prefix the job prepared
    workspace: str | None = None  # where that Python's editable installs point

    @classmethod
    def read(cls, reader: InputReader) -> Inputs:
        sandbox = reader.get("sandbox").lower()
        if sandbox and sandbox not in SANDBOXES:
            raise InputError(f"input 'sandbox' must be one of {', '.join(SANDBOXES)} (got {sandbox!r}).")
        trigger = reader.get("trigger") or "/rlm"
        if any(c.isspace() for c in trigger):
            raise InputError(f"input 'trigger' must be one word such as /rlm (got {trigger!r}).")
        mode = reader.get("mode").lower() or "change"
        if mode not in MODES:
            raise InputError(f"input 'mode' must be one of {', '.join(MODES)} (got {mode!r}).")
        inherit = prepared_python(reader.get("environment"), reader.environ)
        if inherit and sandbox == Backend.DAYTONA:
            raise InputError(INHERIT_NOT_ON_DAYTONA)
        return cls(
            prompt=reader.get("prompt"),
            trigger=trigger,
            model=reader.get("model"),
            llm_api_key=reader.get("llm-api-key") or reader.environ.get("LLM_API_KEY", "").strip(),
            github_token=reader.get("github-token"),
            sandbox=sandbox,
            daytona_api_key=reader.get("daytona-api-key")
            or reader.environ.get("DAYTONA_API_KEY", "").strip(),
            max_sandboxes=reader.integer("max-sandboxes", 1),
            max_iterations=reader.integer("max-iterations", 1),
            max_depth=reader.integer("max-depth", 0),
            timeout=reader.seconds("timeout"),
            max_cost=reader.dollars("max-cost"),
            create_pr=reader.boolean("create-pr", True),
            draft=reader.boolean("draft", False),
            base_branch=reader.get("base-branch"),
            config=reader.get("config"),
            mode=mode,
            setup=setup_commands(reader.get("setup")),
            inherit=inherit,
            workspace=reader.environ.get("GITHUB_WORKSPACE") or None,
        )

    def secrets(self) -> list[str]:
        return [s for s in (self.llm_api_key, self.github_token, self.daytona_api_key) if s]

    def config_overrides(self) -> dict[str, object]:
        """Dotted engine-config keys for the inputs that were set (None = leave as configured)."""
        return {
            "model.name": self.model or None,
            "sandbox.backend": self.sandbox or None,
            "rlm.max_sandboxes": self.max_sandboxes,
            "rlm.max_iterations": self.max_iterations,
            "rlm.max_depth": self.max_depth,
            "rlm.global_timeout": self.timeout,
            "rlm.max_cost_usd": self.max_cost,
            "sandbox.setup": self.setup,
            "sandbox.inherit": self.inherit,
            "sandbox.inherit_checkout": self.workspace if self.inherit else None,
        }
