"""open_pull_request through the Git Data API of the fake GitHub, which builds real git objects:
binary files, deletions, modes and workflow files end up exactly as the patch says."""

from __future__ import annotations

import subprocess

import pytest

from bot.github.api import GitHubAPI
from bot.github.pull_request import REASON_NO_CHANGES, REASON_ONLY_WORKFLOWS, co_author, open_pull_request
from bot.rlm.patch import diff_worktree
from bot.rlm.repo import prepare_repo
from tests.fakes.github_fake import FakeGitHub

REPO = "octo/demo"
PNG = bytes(range(256)) * 4
FILES = {
    "src/app.py": "print('hi')\n",
    "old.txt": "remove me\n",
    "run.sh": "echo run\n",
    "logo.png": PNG,
    ".github/workflows/ci.yml": "on: push\n",
}


@pytest.fixture
def setup(tmp_path, make_repo):
    work, sha = make_repo(FILES)
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    fake = FakeGitHub().start()
    fake.add_repo(REPO, str(bare))
    prepared = prepare_repo(str(bare), tmp_path / "cache")

    def patch_from(edit) -> str:
        edit(work)
        return diff_worktree(prepared.cache, work, prepared.commit)

    yield fake, bare, prepared, patch_from, work
    fake.stop()


def show(bare, rev: str) -> bytes:
    return subprocess.run(["git", f"--git-dir={bare}", "show", rev], capture_output=True, check=True).stdout


def ls_tree(bare, rev: str) -> dict[str, str]:
    out = subprocess.run(
        ["git", f"--git-dir={bare}", "ls-tree", "-r", rev], capture_output=True, text=True, check=True
    ).stdout
    return {line.split("\t")[1]: line.split()[0] for line in out.splitlines()}


def edits(work):
    (work / "src/app.py").write_text("print('hello')\n")
    (work / "old.txt").unlink()
    (work / "run.sh").chmod(0o755)
    (work / "logo.png").write_bytes(PNG[::-1])
    (work / "new dir").mkdir()
    (work / "new dir/ünïcode.txt").write_text("new\n")
    (work / ".github/workflows/ci.yml").write_text("on: [push, pull_request]\n")


def test_binary_deletion_mode_and_workflows(setup):
    fake, bare, prepared, patch_from, _ = setup
    patch = patch_from(edits)
    api = GitHubAPI("t-0123456789", fake.url, sleep=lambda s: None)
    out = open_pull_request(
        api,
        REPO,
        prepared=prepared,
        patch=patch,
        base_branch="main",
        title="rlm: tidy",
        body="body",
        requester="alice",
        branch_name="rlm/3-abc123",
        draft=True,
    )
    assert out.url and out.number and out.branch == "rlm/3-abc123" and out.reason is None
    assert out.skipped_workflow_files == [".github/workflows/ci.yml"]
    tree = ls_tree(bare, "rlm/3-abc123")
    assert "old.txt" not in tree
    assert tree["run.sh"] == "100755"
    assert show(bare, "rlm/3-abc123:logo.png") == PNG[::-1]
    assert show(bare, "rlm/3-abc123:src/app.py") == b"print('hello')\n"
    assert show(bare, "rlm/3-abc123:new dir/ünïcode.txt") == b"new\n"
    assert show(bare, "rlm/3-abc123:.github/workflows/ci.yml") == b"on: push\n"  # not pushed
    log = ["git", f"--git-dir={bare}", "log", "-1", "--format=%B%n%P", "rlm/3-abc123"]
    message = subprocess.run(log, capture_output=True, text=True, check=True).stdout
    assert "Co-authored-by: alice <alice@users.noreply.github.com>" in message
    assert prepared.commit in message
    pull = fake.created_pulls[0]
    assert (pull["head"], pull["base"], pull["draft"], pull["title"]) == (
        "rlm/3-abc123",
        "main",
        True,
        "rlm: tidy",
    )


def test_workflows_pushed_with_permission(setup):
    fake, bare, prepared, patch_from, _ = setup
    patch = patch_from(lambda w: (w / ".github/workflows/ci.yml").write_text("on: [push]\n"))
    api = GitHubAPI("t-0123456789", fake.url, sleep=lambda s: None)
    only = open_pull_request(
        api,
        REPO,
        prepared=prepared,
        patch=patch,
        base_branch="main",
        title="t",
        body="b",
        requester="alice",
        branch_name="rlm/1-a",
    )
    assert only.url is None and only.reason == REASON_ONLY_WORKFLOWS
    assert fake.created_pulls == []
    out = open_pull_request(
        api,
        REPO,
        prepared=prepared,
        patch=patch,
        base_branch="main",
        title="t",
        body="b",
        requester="alice",
        branch_name="rlm/1-b",
        can_push_workflows=True,
    )
    assert out.url and out.skipped_workflow_files == []
    assert show(bare, "rlm/1-b:.github/workflows/ci.yml") == b"on: [push]\n"


def test_empty_patch(setup):
    fake, _, prepared, _, _ = setup
    api = GitHubAPI("t-0123456789", fake.url)
    out = open_pull_request(
        api,
        REPO,
        prepared=prepared,
        patch="",
        base_branch="main",
        title="t",
        body="b",
        requester="alice",
        branch_name="rlm/1-c",
    )
    assert out.url is None and out.reason == REASON_NO_CHANGES and fake.calls == []


def test_draft_falls_back_when_unsupported(setup):
    fake, _, prepared, patch_from, _ = setup
    patch = patch_from(lambda w: (w / "src/app.py").write_text("x = 1\n"))
    fake.fail(
        "POST",
        r"/repos/octo/demo/pulls",
        422,
        message="Draft pull requests are not supported in this repository.",
    )
    api = GitHubAPI("t-0123456789", fake.url)
    out = open_pull_request(
        api,
        REPO,
        prepared=prepared,
        patch=patch,
        base_branch="main",
        title="t",
        body="b",
        requester="alice",
        branch_name="rlm/1-d",
        draft=True,
    )
    assert out.url and fake.created_pulls[0]["draft"] is False


def test_co_author():
    assert co_author("bob") == "bob <bob@users.noreply.github.com>"
    assert co_author("Bob B <1+bob@users.noreply.github.com>") == "Bob B <1+bob@users.noreply.github.com>"
