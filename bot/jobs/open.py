"""`open_store(target)`: a `postgresql://` URL opens the PostgreSQL store, anything else is a
SQLite file path (or `:memory:`)."""

from __future__ import annotations

from pathlib import Path

from .model import JobStore
from .sql import DEFAULT_LEASE

POSTGRES_MISSING = (
    "RLM_DB is a PostgreSQL URL but the PostgreSQL driver is not installed; "
    "install it with: pip install 'psycopg[binary]'"
)


def is_postgres_url(target: str | Path) -> bool:
    return str(target).startswith(("postgresql://", "postgres://"))


def safe_target(target: str | Path) -> str:
    """The target as it may appear in a log line: a URL's password masked."""
    if not is_postgres_url(target):
        return str(target)
    from .postgres import safe_url

    return safe_url(str(target))


def open_store(target: str | Path, *, lease_seconds: float = DEFAULT_LEASE) -> JobStore:
    if is_postgres_url(target):
        try:
            from .postgres import PostgresJobStore
        except ImportError as e:
            raise RuntimeError(POSTGRES_MISSING) from e
        return PostgresJobStore(str(target), lease_seconds=lease_seconds)
    from .sqlite import SqliteJobStore

    return SqliteJobStore(target, lease_seconds=lease_seconds)
