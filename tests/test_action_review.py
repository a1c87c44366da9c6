"""The Action's `mode: review` (issue 20): a `pull_request` event's pull request gets ONE review with
inline comments on its diff lines, nothing is pushed; a `/rlm review` comment on a pull request does
the same whatever the input. The real payload examples, the fake GitHub, the scripted model."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import commit_files, git, py
from fakes.action_env import REPO, bare_remote, comment_event, example, make_job
from fakes.github_fake import FakeGitHub

from action import messages as m
from bot.github import review

BASE = "def add(a, b):\n    return a + b\n"
HEAD = "def add(a, b):\n    return a - b\n"
SCRIPT = [
    {
        "task": "",
        "responses": [
            py(
                'COMMENT("calc.py", 2, "Subtracts.", suggestion="    return a + b")\n'
                'COMMENT("README.md", 1, "Not part of the change.")\n'
                'FINAL("add() now subtracts.")'
            )
        ],
    }
]


def world(tmp: Path, event_name: str, event: dict, **inputs):
    src = tmp / "src"
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    commit_files(src, {"calc.py": BASE, "README.md": "# demo\n"}, "initial")
    git(src, "checkout", "-q", "-b", "feature")
    head = commit_files(src, {"calc.py": HEAD}, "subtract")
    remote = bare_remote(src, tmp)
    diff = git(src, "diff", "main", "feature", "--", "calc.py")
    fake = FakeGitHub().start()
    fake.add_repo(REPO, remote.removeprefix("file://"))
    fake.grant(REPO, "Codertocat", "admin")
    fake.pulls[(REPO, 2)] = {
        "number": 2,
        "head": {"sha": head, "ref": "feature", "repo": {"full_name": REPO}},
        "base": {"ref": "main"},
        "user": {"login": "Codertocat", "type": "User"},
    }
    fake.pull_files[(REPO, 2)] = [
        {"filename": "calc.py", "status": "modified", "patch": diff[diff.index("@@") :]}
    ]
    script = tmp / "script.yaml"
    rules = [{**r, "responses": [textwrap.dedent(x) for x in r["responses"]]} for r in SCRIPT]
    script.write_text(yaml.safe_dump(rules, sort_keys=False))
    if "repository" in event:
        event["repository"]["clone_url"] = remote
    job = make_job(tmp, fake.url, script, event_name, event, sha=head, **inputs)
    return job, fake, head


@pytest.fixture
def fakes():
    made: list[FakeGitHub] = []
    yield made
    for fake in made:
        fake.stop()


def assert_one_review(job, fake, head, proc) -> None:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert job.outputs()["conclusion"] == m.REVIEWED
    (sent,) = [
        c.body for c in fake.calls if c.method == "POST" and c.path == f"/repos/{REPO}/pulls/2/reviews"
    ]
    assert sent["event"] == "COMMENT" and sent["commit_id"] == head
    assert sent["comments"] == [
        {
            "path": "calc.py",
            "line": 2,
            "side": "RIGHT",
            "body": "Subtracts.\n\n```suggestion\n    return a + b\n```",
        }
    ]
    assert (
        sent["body"].startswith("add() now subtracts.")
        and "- `README.md` line 1: Not part of the change." in sent["body"]
    )
    assert not [
        c for c in fake.calls if c.method != "GET" and ("/git/" in c.path or c.path.endswith("/pulls"))
    ]


def test_mode_review_on_a_pull_request_event_posts_one_review(tmp_path, fakes):
    event = example("pull_request", "opened")
    job, fake, head = world(tmp_path, "pull_request", event, mode="review")
    fakes.append(fake)
    proc = job.run_here()
    assert_one_review(job, fake, head, proc)
    status = [c for c in fake.comments.values() if c["issue"] == 2]
    assert status and review.OUTCOME_REVIEW.split("{")[0] in status[0]["body"]


def test_a_review_comment_on_a_pull_request_reviews_whatever_the_mode_input(tmp_path, fakes):
    event = comment_event("/rlm review the arithmetic", "", on_pull=True)
    event["issue"]["number"] = 2
    event["issue"]["pull_request"] = {"url": f"https://api.github.com/repos/{REPO}/pulls/2"}
    job, fake, head = world(tmp_path, "issue_comment", event)
    fakes.append(fake)
    assert_one_review(job, fake, head, job.run_here())


def test_mode_review_without_a_pull_request_stops_with_a_clear_reason(tmp_path, fakes):
    job, fake, _ = world(tmp_path, "workflow_dispatch", example("workflow_dispatch"), mode="review")
    fakes.append(fake)
    proc = job.run_here()
    assert job.outputs()["conclusion"] == m.INVALID_INPUT
    assert m.REVIEW_NEEDS_A_PULL_REQUEST.format(event="workflow_dispatch", prefix="/rlm") in proc.stdout
