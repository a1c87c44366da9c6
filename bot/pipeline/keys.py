"""The one key preflight, before a run starts: which key the run's model or sandbox needs and does
not have. Each front end says it in its own words (the CLI warns about the LLM key and refuses
without a Daytona key; the Action stops with its conclusion); the App's keys come from its settings."""

from __future__ import annotations

from bot.common.enums import StrEnum
from bot.rlm import SCRIPTED_PROVIDER, Backend, Config


class MissingKey(StrEnum):
    LLM = "llm"  # the model's provider needs LLM_API_KEY
    DAYTONA = "daytona"  # sandbox.backend is daytona and DAYTONA_API_KEY is missing


def needs_llm_key(config: Config) -> bool:
    """A provider's model needs a key; a self-hosted server (api_base) or the scripted model may not."""
    return not config.model.api_base and config.model.name.split("/")[0] != SCRIPTED_PROVIDER


def missing_keys(config: Config, llm_api_key: str | None, daytona_api_key: str | None) -> list[MissingKey]:
    """The keys this run needs and lacks, the LLM's first."""
    missing = []
    if not (llm_api_key or "").strip() and needs_llm_key(config):
        missing.append(MissingKey.LLM)
    if config.sandbox.backend == Backend.DAYTONA and not (daytona_api_key or "").strip():
        missing.append(MissingKey.DAYTONA)
    return missing
