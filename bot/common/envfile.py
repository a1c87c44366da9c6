"""The one `.env` reader (python-dotenv): `--env-file` of every command. Values already in the
environment win; every secret-looking value it brings is registered for redaction at once."""

from __future__ import annotations

import io
import os
from pathlib import Path

from dotenv import dotenv_values

from bot.common.secrets import REDACTOR

UNREADABLE = "cannot read the env file {path}: {reason}."


class EnvFileError(Exception):
    """The file cannot be read; the message says which and why."""


def read_env_file(path: str | Path) -> dict[str, str]:
    """KEY=VALUE pairs (comments, `export`, quotes, `KEY=value # comment`); does not touch os.environ."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise EnvFileError(UNREADABLE.format(path=path, reason=e.strerror or type(e).__name__)) from None
    return {k: v for k, v in dotenv_values(stream=io.StringIO(text)).items() if v is not None}


def load_env_file(path: str | Path | None) -> dict[str, str]:
    """Put the file's values into os.environ (without replacing one that is set) and mask its
    secrets in every log, comment and trace. Returns what the file holds."""
    if path is None:
        return {}
    values = read_env_file(path)
    for key, value in values.items():
        os.environ.setdefault(key, value)
    REDACTOR.add_from_environ(values)
    return values
