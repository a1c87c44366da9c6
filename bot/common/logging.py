"""The one logging set-up every command uses (`rlm run`, `rlm serve`, `rlm worker`, the Action):
every line is redacted (its message and its traceback), carries the delivery/job/run it is about,
and is one JSON object when asked (`--log-json` or RLM_LOG_FORMAT=json)."""

from __future__ import annotations

import logging

from bot.common import logcontext
from bot.common.secrets import REDACTOR

SERVER_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CLI_FORMAT = "%(levelname)s: %(message)s"


class RedactingFilter(logging.Filter):
    """Masks every known secret in a log record's final message and in its traceback (an
    exception's text, e.g. a response body, is as likely to hold one as the message)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = REDACTOR.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        if record.exc_info:  # formatters use this text as it is (another handler may have made it)
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_text = REDACTOR.redact(text)
        return True


def setup_logging(
    level: int = logging.INFO,
    *,
    fmt: str = SERVER_FORMAT,
    json_lines: bool = False,
    handler: logging.Handler | None = None,
    loud: tuple[str, ...] = (),
) -> None:
    """Configure the root logger once for this process: `level` (raised for the `loud` loggers,
    e.g. the Action's own at INFO under a WARNING root), redaction on every handler, the context
    fields, JSON lines when asked. Safe to call again (a later command narrows or widens the level)."""
    logging.basicConfig(level=level, format=fmt, handlers=[handler] if handler else None)
    root = logging.getLogger()
    root.setLevel(level)
    if handler is not None and handler not in root.handlers:
        root.addHandler(handler)
    for handler_ in root.handlers:
        if handler_.formatter is None:
            handler_.setFormatter(logging.Formatter(fmt))
        if not any(isinstance(f, RedactingFilter) for f in handler_.filters):
            handler_.addFilter(RedactingFilter())
    for name in loud:
        logging.getLogger(name).setLevel(logging.INFO)
    logcontext.install(logcontext.json_wanted(json_lines))
