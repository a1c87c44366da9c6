"""Delivery pieces of a request: a follow-up commit on the bot's own branch (fast-forward only),
the PR title written from the outcome, `Closes #N` and the report in the body, and the
`.github/rlm.yml` keys that choose them."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pytest

from bot.github import messages
from bot.github.api import GitHubAPI, GitHubError
from bot.github.pull_request import created_by_bot, push_commit
from bot.github.repo_config import BAD_DELIVERY_VALUE, DeliveryPrefs, PullRequestMode, repo_settings
from bot.rlm import load_config
from bot.rlm.patch import diff_worktree
from bot.rlm.repo import prepare_repo
from tests.conftest import commit_files
from tests.fakes.github_fake import FakeGitHub

REPO = "octo/demo"


@pytest.fixture
def world(tmp_path, make_repo):
    work, _ = make_repo({"calc.py": "def add(a, b):\n    return 0\n"})
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    subprocess.run(["git", f"--git-dir={bare}", "branch", "rlm/7-abc123", "main"], check=True)
    fake = FakeGitHub().start()
    fake.add_repo(REPO, str(bare))
    yield SimpleNamespace(work=work, bare=bare, fake=fake, cache=tmp_path / "cache")
    fake.stop()


def rev(bare, ref: str) -> str:
    return subprocess.run(
        ["git", f"--git-dir={bare}", "rev-parse", ref], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_follow_up_commit_goes_on_top_of_the_branch(world):
    head = rev(world.bare, "rlm/7-abc123")
    prepared = prepare_repo(str(world.bare), world.cache, branch="rlm/7-abc123")
    (world.work / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    patch = diff_worktree(prepared.cache, world.work, prepared.commit)
    api = GitHubAPI("t-0123456789", world.fake.url, sleep=lambda s: None)
    pushed = push_commit(
        api,
        REPO,
        prepared=prepared,
        patch=patch,
        branch="rlm/7-abc123",
        title="Implement add",
        requester="alice",
    )
    assert pushed.sha == rev(world.bare, "rlm/7-abc123")
    assert rev(world.bare, "rlm/7-abc123^") == head  # parent = the branch's previous head
    assert world.fake.created_pulls == []

    # The branch moved meanwhile: no force push, a clear GitHub refusal instead.
    commit_files(world.work, {"other.txt": "x\n"}, "someone else")
    subprocess.run(
        ["git", "push", "-q", "-f", str(world.bare), "HEAD:refs/heads/rlm/7-abc123"],
        cwd=world.work,
        check=True,
    )
    moved = rev(world.bare, "rlm/7-abc123")
    with pytest.raises(GitHubError) as err:
        push_commit(
            api, REPO, prepared=prepared, patch=patch, branch="rlm/7-abc123", title="again", requester="a"
        )
    assert err.value.status == 422 and rev(world.bare, "rlm/7-abc123") == moved


def test_created_by_bot():
    mine = {"user": {"type": "Bot"}, "head": {"ref": "rlm/7-abc123", "repo": {"full_name": "Octo/Demo"}}}
    assert created_by_bot(mine, REPO)
    assert not created_by_bot({**mine, "user": {"type": "User"}}, REPO)  # a person's branch named rlm/…
    assert not created_by_bot({**mine, "head": {**mine["head"], "ref": "feature"}}, REPO)
    assert not created_by_bot({**mine, "head": {**mine["head"], "repo": {"full_name": "fork/demo"}}}, REPO)


def test_title_from_the_outcome():
    assert messages.pr_title_from("Fix off-by-one in calc.total\n\nIt subtracted.", "fix this") == (
        "Fix off-by-one in calc.total"
    )
    assert messages.pr_title_from("## Summary\n**Handle None in `parse`**", "x") == "Handle None in `parse`"
    assert messages.pr_title_from("", "fix this") == "rlm: fix this"
    assert messages.pr_title_from("ok", "fix this") == "rlm: fix this"  # too short to be a title
    assert len(messages.pr_title_from("A" * 200, "t")) == messages.PR_TITLE_LIMIT


def test_body_closes_the_issue_and_collapses_the_report():
    result = SimpleNamespace(
        answer="Fix total\n\nDetails.",
        report="| file | ok |\n|---|---|",
        run_id="r1",
        results={
            "agents": [],
            "totals": {
                "agents": 1,
                "max_depth": 0,
                "iterations": 1,
                "prompt_tokens": 1,
                "completion_tokens": 1,
                "cost_usd": 0.0,
            },
            "duration": 1,
        },
    )
    body = messages.pr_body(result, None, closes=12)
    assert body.startswith("## Summary\n\nDetails.\n")  # "Fix total" is the title, not said twice
    assert "Closes #12" in body
    assert "<details><summary>📋 Report from the agents</summary>\n\n| file | ok |" in body
    assert "Closes #" not in messages.pr_body(result, None)
    follow = messages.follow_up_body("new summary", body, run_id="r2", requester="bob", task="also None")
    assert follow.startswith("🔁 Updated by follow-up run `r2`, requested by @bob: also None\n\nnew summary")
    assert "<details><summary>Earlier description</summary>" in follow and "Details." in follow
    assert len(messages.follow_up_body("x", "y" * 100_000, run_id="r", requester="b", task="t")) <= 65536


def test_rlm_yml_delivery_keys(tmp_path):
    config = load_config(None, {"sandbox.cache_dir": str(tmp_path)}, environ={})
    settings = repo_settings(config, "pull_requests: push\ncloses_issue: false\nrlm:\n  max_depth: 1\n")
    assert settings.prefs == DeliveryPrefs(PullRequestMode.PUSH, closes_issue=False, request_review=True)
    assert settings.config.rlm.max_depth == 1 and settings.problems == []
    bad = repo_settings(config, "pull_requests: force\nrequest_review: maybe\n")
    assert bad.prefs == DeliveryPrefs()
    assert BAD_DELIVERY_VALUE.format(key="pull_requests", allowed="`pr` or `push`") in bad.problems
    assert BAD_DELIVERY_VALUE.format(key="request_review", allowed="`true` or `false`") in bad.problems


def test_action_step_summary_shows_the_report():
    from action import messages as m
    from action.summary import run_summary

    results = {"report": "| check | ok |\n|---|---|", "agents": []}
    text = run_summary("fix this", "r1", "✅ done", results)
    assert m.SUMMARY_REPORT + "\n\n| check | ok |" in text
    assert m.SUMMARY_REPORT not in run_summary("fix this", "r1", "✅ done", {"agents": []})
