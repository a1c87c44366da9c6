"""The engine's public surface (issue 17 completes it): code outside bot/rlm imports from here."""

from .check import CommandResult, PatchCheck, check_patch
from .config import Config, ConfigError, load_config
from .engine import prepare
from .errors import RLMError
from .repo import PreparedRepo

__all__ = [
    "CommandResult",
    "Config",
    "ConfigError",
    "PatchCheck",
    "PreparedRepo",
    "RLMError",
    "check_patch",
    "load_config",
    "prepare",
]
