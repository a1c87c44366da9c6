"""The installed release's version, from the package metadata (pyproject.toml's `version`): shown by
`rlm --version`, sent as the User-Agent to GitHub, and in the status comment's footer."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("rlm-bot")
except PackageNotFoundError:  # run from a source tree that was never installed
    VERSION = "0+unknown"

USER_AGENT = f"rlm-bot/{VERSION}"

__all__ = ["USER_AGENT", "VERSION"]
