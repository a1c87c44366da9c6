"""The Action end to end: `python -m action` as a subprocess in a simulated Actions job, a local bare
repo as the remote, GitHub's API faked on loopback, the scripted model."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import git, py
from fakes.action_env import PLANTED_KEY, PLANTED_TOKEN, REPO, Job, comment_event, example
from fakes.action_github import FakeGitHub, FakeGitHubServer

from action import messages as m
from bot.github import report
from bot.github.permissions import not_allowed

CALC = "def add(a, b):\n    # TODO: implement\n    return 0\n"
TASK = "Fix the TODO in calc.py"


@pytest.fixture
def remote(make_repo, tmp_path: Path) -> tuple[str, str]:
    """(clone URL, head sha) of a bare repository standing in for github.com."""
    src, sha = make_repo({"calc.py": CALC, "README.md": "# demo\n"})
    bare = tmp_path / "server" / f"{REPO}.git"
    bare.parent.mkdir(parents=True)
    git(tmp_path, "clone", "-q", "--bare", str(src), str(bare))
    return f"file://{bare}", sha


@pytest.fixture
def script(write_script) -> Path:
    """The root reads, leaks the key it must not have into its output, asks one child, and fixes calc.py."""
    return write_script([
        {"task": "^Fix", "responses": [
            py("""
                import os
                print(open('calc.py').read())
                print('env:', sorted(os.environ))
                print('planted? ' + str(any('planted' in v for v in os.environ.values())))
            """),
            py("""
                print(rlm_query("Explain calc.py"))
            """),
            py(f"""
                print(edit_file("calc.py", "    # TODO: implement\\n    return 0\\n", "    return a + b\\n"))
                FINAL("Implemented add. Key check: {PLANTED_KEY[:3]}")
            """),
        ]},
        {"task": "^Explain", "responses": [py('FINAL("calc.py adds two numbers")')]},
    ])  # fmt: skip


@pytest.fixture
def fake(remote) -> FakeGitHub:
    _, sha = remote
    return FakeGitHub(repo=REPO, permissions={"Codertocat": "admin", "stranger": "read"}, branches={"main": sha})


def make_job(tmp_path: Path, api_url: str, script: Path, event_name: str, event: dict, sha: str = "",
             **inputs: str) -> Job:  # fmt: skip
    values = {"model": f"scripted/{script}", "llm-api-key": PLANTED_KEY, "github-token": PLANTED_TOKEN,
              "trigger": "/rlm", "create-pr": "true", "sandbox": "local", "timeout": "60"}  # fmt: skip
    values.update({k.replace("_", "-"): v for k, v in inputs.items()})
    return Job(tmp_path, api_url, event_name, event, {k: v for k, v in values.items() if v is not None}, sha=sha)


def assert_no_secret(proc: subprocess.CompletedProcess, job: Job) -> None:
    """The planted secrets appear nowhere except in the ::add-mask:: lines."""
    shown = [line for line in proc.stdout.splitlines() if not line.startswith("::add-mask::")]
    for text in ("\n".join(shown), proc.stderr, job.summary(), json.dumps(job.outputs())):
        assert PLANTED_KEY not in text
        assert PLANTED_TOKEN not in text
    assert f"::add-mask::{PLANTED_KEY}" in proc.stdout
    assert f"::add-mask::{PLANTED_TOKEN}" in proc.stdout


def test_comment_opens_pull_request_with_tree_summary(tmp_path, remote, script, fake):
    clone_url, sha = remote
    with FakeGitHubServer(fake) as url:
        job = make_job(tmp_path, url, script, "issue_comment", comment_event(f"/rlm {TASK}", clone_url), sha=sha)
        proc = job.run()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = job.outputs()
    assert out["conclusion"] == m.PR_CREATED
    assert out["pr-url"] == f"https://github.com/{REPO}/pull/100"
    assert out["agents"] == "2"
    assert float(out["cost"]) > 0
    patch = Path(out["patch-file"]).read_text()
    assert "+    return a + b" in patch
    results = json.loads(Path(out["results-file"]).read_text())
    assert results["status"] == "completed" and results["commit"] == sha
    # the sandbox saw no secret at all
    root_blocks = [b for it in results["agents"][0]["iterations"] for b in it["blocks"]]
    assert "planted? False" in root_blocks[0]["stdout"]
    # the pull request: branch from the base commit, body with the tree summary and the run link
    (pull,) = fake.created_pulls
    assert pull["base"] == "main" and pull["head"].startswith("rlm/1-")
    assert pull["title"] == report.pr_title(TASK)
    assert "**Agent tree**" in pull["body"] and "`root.1`" in pull["body"]
    assert f"https://github.com/{REPO}/actions/runs/4242" in pull["body"]
    (commit,) = fake.requests("POST", r"/git/commits$")
    assert commit.body["parents"] == [sha]
    assert "Co-authored-by: Codertocat" in commit.body["message"]
    # acknowledgement, live status comment with the run link, final reaction
    reactions = [c.body["content"] for c in fake.requests("POST", r"/issues/comments/\d+/reactions$")]
    assert reactions == [report.REACTION_SEEN, report.REACTION_DONE]
    (status,) = fake.comments.values()
    assert f"https://github.com/{REPO}/actions/runs/4242" in status["body"]
    assert report.OUTCOME_PR.format(url=out["pr-url"]) in status["body"]
    # the job log: one group per agent, the step summary with the tree
    assert proc.stdout.count("::group::") == 2
    assert "::group::✅ agent root.1" in proc.stdout
    summary = job.summary()
    assert m.SUMMARY_HEADER in summary and "**Agent tree**" in summary and "`root.1`" in summary
    assert_no_secret(proc, job)


def test_manual_run_uses_workflow_commit_and_prompt(tmp_path, remote, script, fake):
    clone_url, sha = remote
    event = example("workflow_dispatch")
    event["repository"].update(full_name=REPO, clone_url=clone_url)
    with FakeGitHubServer(fake) as url:
        job = make_job(tmp_path, url, script, "workflow_dispatch", event, sha=sha, prompt=TASK, draft="true")
        proc = job.run()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = job.outputs()
    assert out["conclusion"] == m.PR_CREATED
    (pull,) = fake.created_pulls
    assert pull["base"] == "main" and pull["head"].startswith("rlm/run-") and pull["draft"] is True
    assert not fake.comments  # no issue to talk on
    assert_no_secret(proc, job)
