"""Structured logs: which delivery, job, run, repository and issue a log line is about.

`bind(...)` / `job_context(job)` set context variables for the code they wrap; `ContextFilter`
copies them onto every record; `JsonFormatter` writes one JSON object per line. JSON output is
opt-in: `--log-json` or `RLM_LOG_FORMAT=json`. Messages are redacted before they are formatted
(the server's RedactingFilter runs on the same handlers).
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

FIELDS = ("delivery_id", "job_id", "run_id", "repo", "issue")

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "rlm_log_context", default=None
)


def _fields() -> dict[str, Any]:
    return _context.get() or {}


@contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add fields (None values are skipped) to every log line written inside the block."""
    token = _context.set({**_fields(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def bind_more(**fields: Any) -> None:
    """Add fields for the rest of the current context (e.g. a run id learnt half way)."""
    _context.set({**_fields(), **{k: v for k, v in fields.items() if v is not None}})


def current() -> dict[str, Any]:
    return dict(_fields())


def job_context(job: Any) -> AbstractContextManager[None]:
    request = job.request if isinstance(job.request, dict) else {}
    return bind(
        job_id=job.id,
        delivery_id=job.delivery_id,
        repo=job.repo,
        issue=job.number,
        run_id=request.get("run_id"),
    )


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _fields().items():
            setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:  # the text a filter (the server's RedactingFilter) already made, if any
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def json_wanted(flag: bool = False, environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return flag or env.get("RLM_LOG_FORMAT", "").lower() == "json"


def install(json_lines: bool) -> None:
    """Put the context filter (and, when asked, the JSON formatter) on the root logger's handlers."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter())
        if json_lines:
            handler.setFormatter(JsonFormatter())
