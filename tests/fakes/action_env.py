"""A simulated GitHub Actions job for the Action's tests: event file, runner files, env, subprocess.

The event payloads are the real examples from @octokit/webhooks-examples; the remote is a local
bare repository served as `file://`; the API is tests/fakes/action_github.py.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import re
import signal
import site
import subprocess
import sys
import venv as venv_module
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "tests/js/node_modules/@octokit/webhooks-examples/api.github.com/index.json"
REPO = "Codertocat/Hello-World"
PLANTED_KEY = "sk-planted-llm-key-0123456789abcdefXYZ"
PLANTED_TOKEN = "ghs_plantedGitHubToken0123456789abcdefXY"


@lru_cache(maxsize=1)
def _examples() -> dict[str, list[dict]]:
    if not EXAMPLES.exists():
        subprocess.run(
            ["npm", "ci", "--prefix", str(ROOT / "tests/js"), "--no-audit", "--no-fund"],
            check=True,
            capture_output=True,
        )
    data = json.loads(EXAMPLES.read_text(encoding="utf-8"))
    return {entry["name"]: entry["examples"] for entry in data}


def example(event: str, action: str | None = None) -> dict:
    """A deep copy of the first example of `event` (with `action`, when given)."""
    for payload in _examples()[event]:
        if action is None or payload.get("action") == action:
            return copy.deepcopy(payload)
    raise LookupError(f"no {event}.{action} example")


def comment_event(
    body: str, clone_url: str, *, login: str = "Codertocat", user_type: str = "User", on_pull: bool = False
) -> dict:
    payload = example("issue_comment", "created")
    payload["comment"]["body"] = body
    payload["comment"]["user"].update(login=login, type=user_type)
    payload["sender"].update(login=login, type=user_type)
    payload["repository"]["clone_url"] = clone_url
    if on_pull:
        payload["issue"]["pull_request"] = {"url": f"https://api.github.com/repos/{REPO}/pulls/1"}
    return payload


@dataclass
class Job:
    """One simulated job: a temp layout, the step's environment, and what the step left behind."""

    tmp: Path
    api_url: str
    event_name: str
    event: dict
    inputs: dict[str, str]
    sha: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        for name in ("runner", "workspace", "home"):
            (self.tmp / name).mkdir(exist_ok=True)
        event_path = self.tmp / "event.json"
        event_path.write_text(json.dumps(self.event), encoding="utf-8")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.tmp / "home"),
            "PYTHONPATH": str(ROOT),
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": self.event_name,
            "GITHUB_EVENT_PATH": str(event_path),
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_SHA": self.sha,
            "GITHUB_REF": "refs/heads/main",
            "GITHUB_API_URL": self.api_url,
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_RUN_ID": "4242",
            "GITHUB_WORKSPACE": str(self.tmp / "workspace"),
            "RUNNER_TEMP": str(self.tmp / "runner"),
            "GITHUB_OUTPUT": str(self.tmp / "output.txt"),
            "GITHUB_STEP_SUMMARY": str(self.tmp / "summary.md"),
        }
        env.update({"INPUT_" + k.upper(): v for k, v in self.inputs.items()})
        env.update(self.extra_env)
        return env

    def start(self) -> subprocess.Popen:
        """The step as a child process, the way the runner starts it (cwd = the workspace)."""
        return subprocess.Popen(
            [sys.executable, "-P", "-m", "action"],
            cwd=self.tmp / "workspace",
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def start_step(self) -> subprocess.Popen:
        """The `run` step of action.yml itself: its `env:` mapping filled in from the inputs (or
        their declared defaults) and its script run by bash as the runner does, with this
        interpreter standing in for the step's virtualenv."""
        action = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
        (step,) = [s for s in action["runs"]["steps"] if s.get("id") == "run"]
        env = {k: v for k, v in self.env().items() if not k.startswith("INPUT_")}
        for name, template in step["env"].items():
            match = re.fullmatch(r"\$\{\{ inputs\.([a-z-]+) \}\}", template)
            assert match, f"{name} is not passed straight from an input"
            default = action["inputs"][match[1]].get("default", "")
            env[name] = self.inputs.get(match[1], "" if "${{" in default else default)
        stand_in_python(self.tmp / "runner" / "rlm-bot" / "venv")
        return subprocess.Popen(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=self.tmp / "workspace",
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, timeout: float = 90) -> subprocess.CompletedProcess:
        return finish(self.start(), timeout)

    def run_here(self) -> subprocess.CompletedProcess:
        """The same step in this process (no interpreter start, no second litellm import); the
        signal handlers the step installs are put back afterwards."""
        from action.main import main

        out, err = io.StringIO(), io.StringIO()
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(self.env())
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        return subprocess.CompletedProcess(["action.main"], code, out.getvalue(), err.getvalue())

    def outputs(self) -> dict[str, str]:
        return parse_outputs((self.tmp / "output.txt").read_text(encoding="utf-8"))

    def summary(self) -> str:
        path = self.tmp / "summary.md"
        return path.read_text(encoding="utf-8") if path.exists() else ""


def stand_in_python(venv: Path) -> Path:
    """A real virtualenv at `venv` (as the Action's install step makes) that sees this interpreter's
    packages, so the step imports exactly what the tests import. A symlink to sys.executable would
    not do: Python finds its environment (`pyvenv.cfg`) next to the path it was started by, so a
    symlinked virtualenv interpreter starts as the bare base interpreter, without the packages."""
    venv_module.create(venv, with_pip=False, symlinks=True)
    python = venv / "bin" / "python"
    probe = "import sysconfig; print(sysconfig.get_path('purelib'))"
    purelib = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    dirs = [d for d in (*site.getsitepackages(), site.getusersitepackages()) if Path(d).is_dir()]
    lines = "".join(f"import site; site.addsitedir({d!r})\n" for d in dirs)
    (Path(purelib) / "_outer_environment.pth").write_text(lines, encoding="utf-8")
    return python


def finish(proc: subprocess.Popen, timeout: float = 90) -> subprocess.CompletedProcess:
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def parse_outputs(text: str) -> dict[str, str]:
    """GITHUB_OUTPUT's `name<<DELIMITER` blocks (and plain `name=value` lines), later ones winning."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line:
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, i + 1)
            values[name] = "\n".join(lines[i + 1 : end])
            i = end + 1
        elif "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
            i += 1
        else:
            i += 1
    return values


def bare_remote(source: Path, tmp: Path) -> str:
    """Clone `source` as the bare repository standing in for github.com; returns its file:// URL."""
    bare = tmp / "server" / f"{REPO}.git"
    bare.parent.mkdir(parents=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(source), str(bare)], check=True, capture_output=True)
    return f"file://{bare}"


def make_job(
    tmp: Path, api_url: str, script: Path, event_name: str, event: dict, sha: str = "", **inputs: str | None
) -> Job:
    """A job with the usual inputs (scripted model, planted key and token); `None` drops an input."""
    values: dict[str, str | None] = {
        "model": f"scripted/{script}",
        "llm-api-key": PLANTED_KEY,
        "github-token": PLANTED_TOKEN,
        "trigger": "/rlm",
        "create-pr": "true",
        "sandbox": "local",
        "timeout": "60",
    }
    values.update({k.replace("_", "-"): v for k, v in inputs.items()})
    return Job(tmp, api_url, event_name, event, {k: v for k, v in values.items() if v is not None}, sha=sha)


def assert_no_secret(proc: subprocess.CompletedProcess, job: Job) -> None:
    """The planted secrets appear nowhere except in the ::add-mask:: lines."""
    shown = [line for line in proc.stdout.splitlines() if not line.startswith("::add-mask::")]
    outputs = json.dumps(job.outputs()) if (job.tmp / "output.txt").exists() else ""
    for text in ("\n".join(shown), proc.stderr, job.summary(), outputs):
        assert PLANTED_KEY not in text
        assert PLANTED_TOKEN not in text
