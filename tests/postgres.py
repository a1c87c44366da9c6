"""A PostgreSQL server for the tests: `RLM_TEST_POSTGRES_DSN` when set (`.ci/run` starts one), else a
throwaway cluster this session starts on loopback from Debian's server binaries, else a skip that
says why. Each test gets its own schema, so tests never see each other's rows."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

NO_SERVER = (
    "PostgreSQL tests skipped: RLM_TEST_POSTGRES_DSN is not set and no PostgreSQL server could be "
    "started here ({why}); install Debian's postgresql package or point RLM_TEST_POSTGRES_DSN at a server"
)


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(cmd: list[str]) -> list[str]:
    """The server refuses to run as root: run it as the `postgres` user then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def start_throwaway(bindir: Path) -> tuple[str, Path]:
    """initdb + pg_ctl start in a temp dir; returns (dsn, data dir)."""
    root = Path(tempfile.mkdtemp(prefix="rlm-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    run = lambda cmd: subprocess.run(_as_server_user(cmd), capture_output=True, text=True, timeout=120)  # noqa: E731
    init = run(
        [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]
    )
    if init.returncode != 0:
        raise RuntimeError(f"initdb failed: {init.stderr.strip()[-300:]}")
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root} -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    start = run(
        [
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        ]
    )
    if start.returncode != 0:
        raise RuntimeError(f"pg_ctl start failed: {(start.stderr or start.stdout).strip()[-300:]}")
    return f"postgresql://postgres@127.0.0.1:{port}/postgres", data


def stop_throwaway(bindir: Path, data: Path) -> None:
    subprocess.run(
        _as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
        capture_output=True,
        timeout=60,
    )
    shutil.rmtree(data.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The DSN of a PostgreSQL server (see the module's docstring)."""
    dsn = os.environ.get("RLM_TEST_POSTGRES_DSN")
    if dsn:
        yield dsn
        return
    bindir = _bindir()
    if bindir is None:
        pytest.skip(NO_SERVER.format(why="no initdb binary"))
    try:
        dsn, data = start_throwaway(bindir)
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        pytest.skip(NO_SERVER.format(why=e))
    try:
        yield dsn
    finally:
        stop_throwaway(bindir, data)


def schema_url(server_dsn: str, schema: str) -> str:
    sep = "&" if "?" in server_dsn else "?"
    return f"{server_dsn}{sep}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A DSN whose tables live in a fresh schema of their own (dropped afterwards)."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield schema_url(postgres_server, schema)
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
