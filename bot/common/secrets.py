"""Secrets: where they come from, and keeping them out of everything we write.

A secret is read from the process environment (or a .env file the user names) only where it is
used. Every string that leaves the process through a trace, a comment or a log goes through
`Redactor.redact`, which knows every secret value this process has seen.
"""

from __future__ import annotations

import os
import re
import threading

# Environment variables that hold secrets. Anything ending in one of SECRET_SUFFIXES counts too.
SECRET_ENV_NAMES = (
    "LLM_API_KEY",
    "DAYTONA_API_KEY",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "GITHUB_PRIVATE_KEY",
    "GITHUB_WEBHOOK_SECRET",
    "INPUT_LLM-API-KEY",
    "INPUT_GITHUB-TOKEN",
    "INPUT_DAYTONA-API-KEY",
)
SECRET_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET", "_PASSWORD", "_PRIVATE_KEY")
MASK = "[REDACTED]"
# Token shapes worth masking even when we never saw the value (a model might echo one).
_TOKEN_PATTERNS = re.compile(
    r"(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|sk-[A-Za-z0-9_\-]{20,}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----)"
)


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return upper in SECRET_ENV_NAMES or upper.endswith(SECRET_SUFFIXES)


class Redactor:
    """Replaces every known secret value with MASK. Thread-safe; values can be added at any time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, *values: str | None) -> None:
        with self._lock:
            for value in values:
                # Very short values would mask ordinary words; they are not real secrets.
                if value and len(value) >= 8:
                    self._values.add(value)
                    # A PEM key also appears with its newlines escaped (e.g. inside JSON).
                    if "\n" in value:
                        self._values.add(value.replace("\n", "\\n"))
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None

    def add_from_environ(self, environ: dict[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.add(*(v for k, v in environ.items() if is_secret_name(k)))

    def redact(self, text: str) -> str:
        if not text:
            return text
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(MASK, text)
        return _TOKEN_PATTERNS.sub(MASK, text)

    def redact_obj(self, obj):
        """Redact every string inside a JSON-like structure."""
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, dict):
            return {k: self.redact_obj(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.redact_obj(v) for v in obj]
        return obj


# One process-wide redactor: secrets seen anywhere are masked everywhere.
REDACTOR = Redactor()
REDACTOR.add_from_environ()


def redact(text: str) -> str:
    return REDACTOR.redact(text)
