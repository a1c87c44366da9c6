"""Real `rlm serve` / `rlm worker` processes for the production tests, wired to one AppEnv world and
one job database; each is stopped (SIGKILL of its process group) at the end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import requests
import yaml

from tests.postgres import free_port

from .app_env import AppEnv
from .github_app import SECRET, private_key_pem, wait_for


class Processes:
    def __init__(self, env: AppEnv, db: str, tmp_path: Path, lease: float = 2.0):
        self.env, self.db, self.tmp_path, self.lease = env, db, tmp_path, lease
        self.procs: list[subprocess.Popen] = []
        self.starting: list[tuple[subprocess.Popen, str, str]] = []
        self.config_file = tmp_path / "engine.yaml"
        self.config_file.write_text(
            yaml.safe_dump(env.server.engine.model_dump(mode="json", exclude_none=True))
        )

    def environ(self) -> dict[str, str]:
        return {
            **os.environ,
            "GITHUB_APP_ID": "1",
            "GITHUB_PRIVATE_KEY": private_key_pem(),
            "GITHUB_WEBHOOK_SECRET": SECRET,
            "GITHUB_API_URL": self.env.fake.url,
            "RLM_STATUS_INTERVAL": "0.05",
            "RLM_PUBLIC_URL": "http://bot.example",
            "RLM_LEASE_SECONDS": str(self.lease),
            "RLM_DB": self.db,
            "RLM_LOG_FORMAT": "json",
        }

    def _start(self, args: list[str], log_name: str) -> subprocess.Popen:
        log = open(self.tmp_path / log_name, "w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", *args, "--config", str(self.config_file)],
            env=self.environ(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def _wait_up(self, proc: subprocess.Popen, url: str, log_name: str) -> None:
        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError((self.tmp_path / log_name).read_text())
            try:
                return requests.get(f"{url}/readyz", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_for(up, timeout=60, what=f"{log_name} to be ready")

    def intake(self, name: str) -> str:
        """`rlm serve --workers 0`; returns its base URL (ready once `ready()` returned)."""
        port = free_port()
        proc = self._start(["serve", "--port", str(port), "--workers", "0"], f"{name}.log")
        url = f"http://127.0.0.1:{port}"
        self.starting.append((proc, url, f"{name}.log"))
        return url

    def worker(
        self, name: str, *, workers: int = 1, control_workers: int = 1
    ) -> tuple[subprocess.Popen, str]:
        """`rlm worker` with its probes on a port; returns (process, probes base URL)."""
        port = free_port()
        proc = self._start(
            [
                "worker",
                "--workers",
                str(workers),
                "--control-workers",
                str(control_workers),
                "--metrics-port",
                str(port),
                "--drain",
                "1",
            ],
            f"{name}.log",
        )
        url = f"http://127.0.0.1:{port}"
        self.starting.append((proc, url, f"{name}.log"))
        return proc, url

    def ready(self) -> None:
        """Wait for every process started so far (they start in parallel)."""
        while self.starting:
            self._wait_up(*self.starting.pop(0))

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text()

    def kill(self, proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                self.kill(proc)
