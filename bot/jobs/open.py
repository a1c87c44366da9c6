"""`open_store(target)`: a `postgresql://` URL opens the PostgreSQL store, anything else is a
SQLite file path (or `:memory:`)."""

from __future__ import annotations

from pathlib import Path

from .dsn import mask_password_params, redact_reason, safe_dsn
from .model import JobStore
from .sql import DEFAULT_LEASE

CANNOT_OPEN = (
    "cannot open the job database {target}: {reason}. Check RLM_DB (or --db) and that the database is up."
)
POSTGRES_MISSING = (
    "RLM_DB is a PostgreSQL URL but the PostgreSQL driver is not installed; "
    "install it with: pip install 'psycopg[binary]'"
)


class StoreUnavailable(Exception):
    """The job database cannot be opened; the message says which one and why (no password in it)."""


def is_postgres_url(target: str | Path) -> bool:
    return str(target).startswith(("postgresql://", "postgres://"))


def safe_target(target: str | Path) -> str:
    """The target as it may appear in a log line: a URL's password masked, whatever its form
    (a malformed URL is not shown), and a `password=` in anything else."""
    if not is_postgres_url(target):
        return mask_password_params(str(target))
    return safe_dsn(str(target))


def open_store(target: str | Path, *, lease_seconds: float = DEFAULT_LEASE) -> JobStore:
    """The store for `target`; StoreUnavailable (a sentence for the operator) when it cannot be opened."""
    if is_postgres_url(target):
        try:
            import psycopg

            from .postgres import PostgresJobStore
        except ImportError:
            raise StoreUnavailable(POSTGRES_MISSING) from None
        try:
            return PostgresJobStore(str(target), lease_seconds=lease_seconds)
        except psycopg.Error as e:
            raise StoreUnavailable(_cannot_open(target, e)) from None
    import sqlite3

    from .sqlite import SqliteJobStore

    try:
        return SqliteJobStore(target, lease_seconds=lease_seconds)
    except (OSError, sqlite3.Error) as e:
        raise StoreUnavailable(_cannot_open(target, e)) from None


def _cannot_open(target: str | Path, e: Exception) -> str:
    from bot.common.secrets import REDACTOR

    reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
    reason = redact_reason(str(target), REDACTOR.redact(reason))
    return CANNOT_OPEN.format(target=safe_target(target), reason=reason.rstrip("."))
