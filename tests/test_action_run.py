"""The Action end to end: `python -m action` as a subprocess in a simulated Actions job, a local bare
repo as the remote, GitHub's API faked on loopback, the scripted model."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from conftest import py
from fakes.action_env import (
    PLANTED_KEY,
    PLANTED_TOKEN,
    REPO,
    Job,
    assert_no_secret,
    bare_remote,
    comment_event,
    example,
    make_job,
)
from fakes.github_fake import FakeGitHub

from action import messages as m
from bot.github import report

CALC = "def add(a, b):\n    # TODO: implement\n    return 0\n"
TASK = "Fix the TODO in calc.py"


@pytest.fixture
def remote(make_repo, tmp_path: Path) -> tuple[str, str]:
    """(clone URL, head sha) of a bare repository standing in for github.com."""
    src, sha = make_repo({"calc.py": CALC, "README.md": "# demo\n"})
    return bare_remote(src, tmp_path), sha


@pytest.fixture
def fake(remote):
    """GitHub's API on loopback, with the Git Data API writing into the bare repository."""
    github = FakeGitHub()
    github.add_repo(REPO, remote[0].removeprefix("file://"))
    github.grant(REPO, "Codertocat", "admin")
    github.grant(REPO, "stranger", "read")
    github.start()
    yield github
    github.stop()


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


def assert_masked(proc: subprocess.CompletedProcess, job: Job) -> None:
    assert_no_secret(proc, job)
    assert f"::add-mask::{PLANTED_KEY}" in proc.stdout
    assert f"::add-mask::{PLANTED_TOKEN}" in proc.stdout


def calls(fake: FakeGitHub, method: str, pattern: str) -> list:
    return [c for c in fake.calls if c.method == method and re.search(pattern, c.path)]


def branch_file(remote: str, branch: str, path: str) -> str:
    bare = remote.removeprefix("file://")
    return subprocess.run(["git", f"--git-dir={bare}", "show", f"refs/heads/{branch}:{path}"],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip


def test_comment_opens_pull_request_with_tree_summary(tmp_path, remote, script, fake):
    clone_url, sha = remote
    job = make_job(
        tmp_path, fake.url, script, "issue_comment", comment_event(f"/rlm {TASK}", clone_url), sha=sha
    )
    proc = job.run()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = job.outputs()
    assert out["conclusion"] == m.PR_CREATED
    (pull,) = fake.created_pulls
    assert out["pr-url"] == pull["html_url"]
    assert out["agents"] == "2"
    assert float(out["cost"]) > 0
    assert "+    return a + b" in Path(out["patch-file"]).read_text()
    results = json.loads(Path(out["results-file"]).read_text())
    assert results["status"] == "completed" and results["commit"] == sha
    # the sandbox saw no secret: not in its environment, not anywhere in the trace
    root_blocks = [b for it in results["agents"][0]["iterations"] for b in it["blocks"]]
    assert "planted? False" in root_blocks[0]["stdout"]
    assert PLANTED_KEY not in Path(out["results-file"]).read_text()
    # the pull request: the bot's branch holds the fix on top of the base commit
    assert pull["base"] == "main" and pull["head"].startswith("rlm/1-")
    assert branch_file(clone_url, pull["head"], "calc.py") == "def add(a, b):\n    return a + b\n"
    assert pull["title"] == report.pr_title(TASK)
    assert "**Agent tree**" in pull["body"] and "`root.1`" in pull["body"]
    assert f"https://github.com/{REPO}/actions/runs/4242" in pull["body"]
    (commit,) = calls(fake, "POST", r"/git/commits$")
    assert commit.body["parents"] == [sha]
    assert "Co-authored-by: Codertocat" in commit.body["message"]
    # acknowledgement, status comment with the run's link, final reaction
    reactions = [c.body["content"] for c in calls(fake, "POST", r"/issues/comments/\d+/reactions$")]
    assert reactions == [report.REACTION_SEEN, report.REACTION_DONE]
    (status,) = fake.issue_comments(REPO, 1)
    assert f"https://github.com/{REPO}/actions/runs/4242" in status["body"]
    assert report.OUTCOME_PR.format(url=pull["html_url"]) in status["body"]
    # the job log: one group per agent; the step summary with the tree
    assert proc.stdout.count("::group::") == 2
    assert "::group::✅ agent root.1" in proc.stdout
    summary = job.summary()
    assert m.SUMMARY_HEADER in summary and "**Agent tree**" in summary and "`root.1`" in summary
    assert pull["html_url"] in summary
    assert_masked(proc, job)


def test_manual_run_uses_the_workflow_commit_and_prompt(tmp_path, remote, script, fake):
    clone_url, sha = remote
    event = example("workflow_dispatch")
    event["repository"].update(full_name=REPO, clone_url=clone_url)
    job = make_job(tmp_path, fake.url, script, "workflow_dispatch", event, sha=sha, prompt=TASK, draft="true")
    proc = job.run()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert job.outputs()["conclusion"] == m.PR_CREATED
    (pull,) = fake.created_pulls
    assert pull["base"] == "main" and pull["head"].startswith("rlm/run-") and pull["draft"] is True
    assert branch_file(clone_url, pull["head"], "calc.py").endswith("return a + b\n")
    assert not fake.comments  # no issue to talk on
    assert_masked(proc, job)


def test_fork_pull_request_gets_the_patch_in_a_comment(tmp_path, remote, script, fake):
    clone_url, sha = remote
    fake.pulls[(REPO, 1)] = {
        "number": 1,
        "head": {"sha": sha, "ref": "feature", "repo": {"full_name": "fork/Hello-World"}},
    }
    event = comment_event(f"/rlm {TASK}", clone_url, on_pull=True)
    job = make_job(tmp_path, fake.url, script, "issue_comment", event, sha=sha)
    proc = job.run()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = job.outputs()
    assert out["conclusion"] == m.PATCH_IN_COMMENT
    assert out["pr-url"] == "" and out["patch-file"]
    assert not fake.created_pulls and not calls(fake, "POST", r"/git/")
    bodies = [c["body"] for c in fake.issue_comments(REPO, 1)]
    assert any("+    return a + b" in b and "```diff" in b for b in bodies)
    assert f"::notice title=rlm-bot::{report.OUTCOME_PATCH_COMMENT}" in proc.stdout
    assert_masked(proc, job)


def test_missing_token_permission_is_named(tmp_path, remote, script, fake):
    clone_url, sha = remote
    fake.fail("POST", r"/repos/.*/pulls", 403, message="Resource not accessible by integration")
    job = make_job(
        tmp_path, fake.url, script, "issue_comment", comment_event(f"/rlm {TASK}", clone_url), sha=sha
    )
    proc = job.run()
    assert proc.returncode == 1
    assert job.outputs()["conclusion"] == m.MISSING_PERMISSIONS
    assert "::error title=rlm-bot::" in proc.stdout and "`pull-requests: write`" in proc.stdout
    assert "`pull-requests: write`" in job.summary()
