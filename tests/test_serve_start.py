"""`rlm serve` and `rlm worker` that cannot start say why in one sentence and exit 2: an unreachable
or unopenable job database, a port in use, a malformed number in the environment. No traceback,
and never the database password."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.fakes.github_app import SECRET, private_key_pem

PASSWORD = "pw-that-must-not-show-0123"


def rlm(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bot", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_servers_that_cannot_start_say_why_without_a_traceback(tmp_path: Path):
    key = tmp_path / "app.pem"
    key.write_text(private_key_pem())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RLM_"))}
    env.update(GITHUB_APP_ID="1", GITHUB_PRIVATE_KEY_PATH=str(key), GITHUB_WEBHOOK_SECRET=SECRET)
    with socket.socket() as busy, socket.socket() as free:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        free.bind(("127.0.0.1", 0))  # a port nothing listens on: connections are refused
        busy_port, refused_port = busy.getsockname()[1], free.getsockname()[1]
        pg_url = f"postgresql://rlm:{PASSWORD}@127.0.0.1:{refused_port}/rlm"
        sqlite = str(tmp_path / "jobs.sqlite3")
        cases = {
            "pg-serve": (["serve", "--workers", "0", "--db", pg_url], {}, "cannot open the job database"),
            "pg-worker": (["worker", "--db", pg_url], {}, "cannot open the job database"),
            "sqlite-dir": (
                ["serve", "--workers", "0", "--db", str(tmp_path / "f" / "x.db")],
                {},
                "cannot open the job database",
            ),
            "port": (
                ["serve", "--workers", "0", "--db", sqlite, "--port", str(busy_port)],
                {},
                f"cannot listen on 127.0.0.1:{busy_port}",
            ),
            "metrics-port": (
                ["worker", "--workers", "0", "--db", sqlite, "--metrics-port", str(busy_port)],
                {},
                f"cannot listen on 127.0.0.1:{busy_port}",
            ),
            "lease": (
                ["serve", "--workers", "0", "--db", sqlite],
                {"RLM_LEASE_SECONDS": "soon"},
                "RLM_LEASE_SECONDS must be a positive number of seconds",
            ),
        }
        (tmp_path / "f").write_text("a file where the database's directory should be")
        procs = {name: rlm(args, {**env, **extra}) for name, (args, extra, _) in cases.items()}
        try:
            outputs = {name: proc.communicate(timeout=120)[0] for name, proc in procs.items()}
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    for name, (_, _, expected) in cases.items():
        out = outputs[name]
        assert procs[name].returncode == 2, (name, out)
        assert expected in out and "Traceback" not in out, (name, out)
        assert PASSWORD not in out, (name, out)
    assert "postgresql://rlm:***@" in outputs["pg-serve"]
