"""A whole GitHub App world for one test: a bare git remote, the fake GitHub API on loopback, the
scripted model, and a ServerConfig wired to them."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bot.github.auth import AppSettings
from bot.rlm import Config
from tests.conftest import commit_files
from webhooks.settings import ServerConfig, WorkerSettings

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

    def results(self, job) -> dict:
        """The results JSON of a job's run."""
        return json.loads(
            (Path(self.server.worker.results_dir) / f"{job.request['run_id']}.json").read_text()
        )

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", f"--git-dir={self.bare}", *args], capture_output=True, text=True, check=True
        ).stdout


def build_env(
    tmp_path: Path,
    work_repo: Path,
    sha: str,
    engine: Config,
    *,
    workers: int = 1,
    status_interval: float = 0.05,
    public_url: str | None = "http://bot.example",
) -> AppEnv:
    tmp_path.mkdir(parents=True, exist_ok=True)
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work_repo), str(bare)], check=True)
    fake = FakeGitHub().start()
    fake.add_repo(REPO, str(bare))
    fake.grant(REPO, "octocat", "write")
    app = AppSettings(app_id="1", private_key=private_key_pem(), webhook_secret=SECRET, api_url=fake.url)
    worker = WorkerSettings(
        results_dir=Path(engine.results_dir),
        public_url=public_url,
        status_interval=status_interval,
        api_options={"sleep": lambda s: None},
    )
    server = ServerConfig(
        webhook_secret=SECRET,
        engine=engine,
        app=app,
        db_path=tmp_path / "jobs.sqlite3",
        workers=workers,
        worker=worker,
    )
    return AppEnv(fake, bare, sha, server)


class Worlds:
    """Builds AppEnvs for one test (from conftest's make_repo/write_script/make_config) and stops
    their fake GitHub servers at the end."""

    def __init__(self, tmp_path: Path, make_repo, write_script, make_config):
        self.tmp_path, self.make_repo, self.write_script, self.make_config = (
            tmp_path,
            make_repo,
            write_script,
            make_config,
        )
        self.envs: list[AppEnv] = []

    def __call__(
        self,
        rules: list[dict],
        files: dict | None = None,
        branches: dict | None = None,
        engine: dict | None = None,
        **kwargs,
    ) -> AppEnv:
        work, sha = self.make_repo(
            files or {"calc.py": CALC, "README.md": "# demo\n"}, name=f"work{len(self.envs)}"
        )
        for branch, branch_files in (branches or {}).items():
            subprocess.run(["git", "-C", str(work), "checkout", "-q", "-b", branch], check=True)
            commit_files(work, branch_files, f"on {branch}")
            subprocess.run(["git", "-C", str(work), "checkout", "-q", "main"], check=True)
        config = self.make_config(self.write_script(rules), **(engine or {}))
        env = build_env(self.tmp_path / f"world{len(self.envs)}", work, sha, config, **kwargs)
        self.envs.append(env)
        return env

    def close(self) -> None:
        for env in self.envs:
            env.fake.stop()


def finished(store, job_id: int):
    """The job once it reached a final state, else None (for wait_for)."""
    job = store.get(job_id)
    return job if job and job.state in ("done", "failed", "cancelled") else None


def collapse(paths: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Consecutive edits of one comment count once: how many live edits happen depends on timing."""
    out: list[tuple[str, str]] = []
    for item in paths:
        if not out or out[-1] != item or item[0] != "PATCH":
            out.append(item)
    return out


def run_one(env: AppEnv, event: str, payload: dict):
    """One delivery through the real Flask app over HTTP; returns the job once it finished."""
    from webhooks import create_app

    from .github_app import post_event, serve, wait_for

    app = create_app(env.server)
    store = app.extensions["rlm"].store
    with serve(app) as url:
        resp = post_event(url, event, payload)
        assert resp.status_code == 202, resp.text
        job = wait_for(lambda: finished(store, resp.json()["job"]), what="the job to finish")
    app.extensions["rlm"].pool.stop()
    return job
