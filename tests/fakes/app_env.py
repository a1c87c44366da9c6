"""A whole GitHub App world for one test: a bare git remote, the fake GitHub API on loopback, the
scripted model, and a ServerConfig wired to them."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from bot.github.app_worker import WorkerSettings
from bot.github.auth import AppSettings
from bot.rlm.config import Config
from webhooks.config import ServerConfig

from .github_app import SECRET, private_key_pem
from .github_fake import FakeGitHub

REPO = "octo/demo"
CALC = "def add(a, b):\n    # TODO: implement\n    return 0\n"


@dataclass
class AppEnv:
    fake: FakeGitHub
    bare: Path
    sha: str
    server: ServerConfig

    def git(self, *args: str) -> str:
        return subprocess.run(["git", f"--git-dir={self.bare}", *args], capture_output=True, text=True,
                              check=True).stdout  # fmt: skip


def build_env(tmp_path: Path, work_repo: Path, sha: str, engine: Config, *, workers: int = 1,
              status_interval: float = 0.05, public_url: str | None = "http://bot.example") -> AppEnv:  # fmt: skip
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work_repo), str(bare)], check=True)
    fake = FakeGitHub().start()
    fake.add_repo(REPO, str(bare))
    fake.grant(REPO, "octocat", "write")
    app = AppSettings(app_id="1", private_key=private_key_pem(), webhook_secret=SECRET, api_url=fake.url)
    worker = WorkerSettings(results_dir=Path(engine.results_dir), public_url=public_url,
                            status_interval=status_interval, api_options={"sleep": lambda s: None})  # fmt: skip
    server = ServerConfig(webhook_secret=SECRET, engine=engine, app=app, db_path=tmp_path / "jobs.sqlite3",
                          workers=workers, worker=worker)  # fmt: skip
    return AppEnv(fake, bare, sha, server)
