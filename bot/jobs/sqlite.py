"""The embedded default: one SQLite file in WAL mode (or `:memory:` for a single process).

One connection per thread for a file (WAL lets readers run beside the writer); writes are serialised
in-process by a lock so threads queue on it (woken at once) rather than in SQLite's busy handler.
`:memory:` is one shared connection, every statement under the lock (each connection to
`:memory:` would otherwise be a different, empty database).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .sql import DEFAULT_LEASE, SqlJobStore, Tx, migrate

log = logging.getLogger(__name__)

MEMORY = ":memory:"

MIGRATIONS: list[list[str]] = [
    [  # 1: the schema of the first release (a database made before versions existed has it already)
        """CREATE TABLE IF NOT EXISTS deliveries (
            id TEXT PRIMARY KEY, event TEXT NOT NULL, received REAL NOT NULL, decision TEXT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT, delivery_id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
            lane TEXT NOT NULL, repo TEXT NOT NULL, number INTEGER NOT NULL, installation_id INTEGER,
            request TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'queued', attempts INTEGER NOT NULL DEFAULT 0,
            cancel_requested INTEGER NOT NULL DEFAULT 0, outcome TEXT, message TEXT, trace_token TEXT UNIQUE,
            created REAL NOT NULL, updated REAL NOT NULL)""",
        "CREATE UNIQUE INDEX IF NOT EXISTS one_active_run ON jobs(repo, number) WHERE state = 'running'",
        "CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(lane, state, id)",
    ],
    [  # 2: leases
        "ALTER TABLE jobs ADD COLUMN lease_owner TEXT",
        "ALTER TABLE jobs ADD COLUMN lease_until REAL",
        "CREATE INDEX IF NOT EXISTS jobs_by_lease ON jobs(state, lease_until)",
    ],
]


class SqliteJobStore(SqlJobStore):
    errors = (sqlite3.Error,)
    integrity_errors = (sqlite3.IntegrityError,)

    def __init__(
        self,
        path: str | Path,
        *,
        lease_seconds: float = DEFAULT_LEASE,
        checkpoint_every: float = 5.0,
        clock: Callable[[], float] | None = None,
    ):
        super().__init__(lease_seconds, **({"clock": clock} if clock else {}))
        self.path = str(path)
        self.memory = self.path == MEMORY
        if not self.memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._shared = self._connect() if self.memory else None
        self._closed = threading.Event()
        with self._tx() as tx:
            self.schema_version = migrate(tx, MIGRATIONS)
        self._checkpointer = None
        if not self.memory:
            # SQLite checkpoints the WAL inside whichever commit crosses the threshold, stalling that
            # writer (a webhook answer) on disk I/O; a background thread checkpoints instead.
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop,
                args=(checkpoint_every,),
                name="rlm-jobs-checkpoint",
                daemon=True,
            )
            self._checkpointer.start()

    def describe(self) -> str:
        return f"SQLite {self.path}"

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        if not self.memory:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("PRAGMA wal_autocheckpoint=0")
        with self._lock:
            self._connections.append(db)
        return db

    def _db(self) -> sqlite3.Connection:
        if self._shared is not None:
            return self._shared
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
        return db

    def _checkpoint_loop(self, every: float) -> None:
        while not self._closed.wait(every):
            try:
                self._db().execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as e:  # busy or closed: the next round tries again
                log.debug("WAL checkpoint skipped: %s", e)

    @contextmanager
    def _tx(self) -> Iterator[Tx]:
        """BEGIN IMMEDIATE ... COMMIT under the in-process write lock."""
        db = self._db()
        with self._lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(db.execute)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _rows(self, sql: str, params: tuple = ()) -> list[Any]:
        if self._shared is not None:
            with self._lock:
                return self._shared.execute(sql, params).fetchall()
        return self._db().execute(sql, params).fetchall()

    def close(self) -> None:
        self._closed.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=5)
        with self._lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()
