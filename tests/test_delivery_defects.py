"""Issue 9's delivery defects, each as it went wrong on main: the real App over HTTP, the fake GitHub
(faults injected per route), real rollouts with the scripted model. A change is never lost."""

from __future__ import annotations

import os
import sqlite3
import subprocess

import pytest
import requests

from bot.github import messages
from bot.github.api import GitHubAPI
from tests.conftest import py
from tests.fakes.app_env import REPO, finished, run_one
from tests.fakes.github_app import comment_payload, post_event, serve, wait_for
from tests.fakes.github_fake import BODY_LIMIT, FakeGitHub
from webhooks import create_app

EDIT = 'print(edit_file("calc.py", "    # TODO: implement\\n    return 0\\n", "    return a + b\\n"))'
QUICK = [{"task": ".", "responses": [py(EDIT + '\nFINAL("fixed")')]}]
WORKFLOW = "name: ci\non: push\n"
WORKFLOW_EDIT = 'open(".github/workflows/ci.yml", "a").write("# tuned\\n")'


def comment(env, **kwargs) -> dict:
    return comment_payload("/rlm fix add", clone_url=str(env.bare), **kwargs)


def status_of(env, number: int = 7) -> str:
    (status,) = [c for c in env.fake.issue_comments(REPO, number) if c["body"].startswith("### 🤖")]
    return status["body"]


def reactions(env, comment_id: int = 555) -> dict[str, bool]:
    """content -> deleted, for the reactions on the command."""
    return {r["content"]: r["deleted"] for r in env.fake.reactions.values() if r["comment"] == comment_id}


def branches(env, prefix: str = "rlm/") -> list[str]:
    out = env.git("for-each-ref", "--format=%(refname:short)", f"refs/heads/{prefix}")
    return out.split()


# ---------------------------------------------------------------- 1. acknowledgement


def test_a_transient_500_on_the_eyes_reaction_is_retried(world):
    env = world(QUICK)
    env.fake.fail("POST", rf"/repos/{REPO}/issues/comments/555/reactions", 500, times=1)
    job = run_one(env, "issue_comment", comment(env))
    assert (job.state, job.outcome) == ("done", "pr"), job.message  # main: failed, nothing posted
    assert reactions(env) == {messages.REACTION_SEEN: True, messages.REACTION_DONE: False}


def test_a_reaction_github_keeps_refusing_is_reported_on_the_issue(world):
    env = world(QUICK)
    env.fake.fail(
        "POST", rf"/repos/{REPO}/issues/comments/555/reactions", 500, times=100, message="Server Error"
    )
    job = run_one(env, "issue_comment", comment(env))
    assert job.outcome == "pr", job.message  # the run went on
    body = status_of(env)
    assert messages.ACK_REACTION_FAILED.split("(")[0] in body and "Server Error" in body


def _accepted_then_run(env, faults) -> tuple:
    """The command accepted (👀, status comment, commit) by a control-lane worker; then, GitHub
    failing as `faults(fake)` says, a run worker of a fresh process (no token cached) takes it."""
    from bot.jobs import RUN_LANE
    from webhooks.worker import start_pool

    env.server.workers = 0  # intake, and no pool: the lanes are driven by hand below
    app = create_app(env.server)
    store = app.extensions["rlm"].store
    with serve(app) as url:
        resp = post_event(url, "issue_comment", comment(env))
    control = start_pool(env.server, store, workers=0)
    job_id = resp.json()["job"]
    wait_for(lambda: (j := store.get(job_id)) and j.lane == RUN_LANE and j.state == "queued", what="accepted")
    control.stop()
    faults(env.fake)
    runner = start_pool(env.server, store, workers=1, control_workers=0)
    job = wait_for(lambda: finished(store, job_id), what="the run")
    runner.stop()
    return job


def test_a_transient_500_on_the_installation_token_at_run_start_is_retried(world):
    env = world(QUICK)
    job = _accepted_then_run(
        env, lambda fake: fake.fail("POST", r"/app/installations/\d+/access_tokens", 502)
    )
    assert (job.state, job.outcome) == ("done", "pr"), job.message  # main: failed, status left at "queued"


def test_a_token_github_keeps_refusing_at_run_start_ends_the_status(world):
    env = world(QUICK)
    tries = GitHubAPI("x").max_tries  # the worker's client: every try of the token fails, then GitHub is back
    job = _accepted_then_run(
        env, lambda fake: fake.fail("POST", r"/app/installations/\d+/access_tokens", 500, times=tries)
    )
    assert (job.state, job.outcome) == ("failed", "github_error"), job.message
    body = status_of(env)
    assert messages.STATUS_QUEUED not in body and "access_tokens" in body  # main: "queued" forever
    assert reactions(env) == {messages.REACTION_SEEN: True, messages.REACTION_FAILED: False}


def test_a_run_cancelled_while_queued_ends_its_status_comment(world):
    """No run worker ever takes a run cancelled in the queue: the cancel ends its status comment."""
    from webhooks.worker import start_pool

    env = world(QUICK)
    env.server.workers = 0
    app = create_app(env.server)
    store = app.extensions["rlm"].store
    control = start_pool(env.server, store, workers=0)  # acknowledgements and replies; no run worker
    try:
        with serve(app) as url:
            run = post_event(url, "issue_comment", comment(env)).json()["job"]
            wait_for(lambda: store.get(run).lane == "run", what="the run accepted")
            cancel = post_event(url, "issue_comment", comment_payload("/rlm cancel", comment_id=556)).json()[
                "job"
            ]
            wait_for(lambda: finished(store, cancel), what="the cancel")
    finally:
        control.stop()
    assert store.get(run).state == "cancelled"
    body = status_of(env)
    assert messages.OUTCOME_CANCELLED.format(prefix="/rlm") in body and messages.STATUS_QUEUED not in body
    assert reactions(env) == {
        messages.REACTION_SEEN: True,
        messages.REACTION_FAILED: False,
    }  # main: 👀, "Queued"


# ---------------------------------------------------------------- 2. resumed after kill -9


class _Killed(BaseException):
    """The process dying (kill -9): nothing after this point runs in the worker."""


def _kill_then_resume(env, monkeypatch, where: str, attempts: int = 1):
    """Run until `where` ("after-push": between the push and the pull request; "after-pr": right
    after GitHub opened it), die there, then start the server again on the same database."""
    real_create = GitHubAPI.create_pull

    def find_then_die(self, repo, branch):
        raise _Killed

    def create_then_die(self, *args, **kwargs):
        real_create(self, *args, **kwargs)
        raise _Killed

    with monkeypatch.context() as m:
        m.setattr("threading.excepthook", lambda args: None)  # the "dead" worker thread
        if where == "after-push":
            m.setattr(GitHubAPI, "find_open_pull", find_then_die)
        else:
            m.setattr(GitHubAPI, "create_pull", create_then_die)
        first = run_one(env, "issue_comment", comment(env))
    # What kill -9 leaves: the job still running, its request as stored so far.
    with sqlite3.connect(env.server.db_path) as db:
        db.execute(
            "UPDATE jobs SET state = 'running', outcome = NULL, attempts = ? WHERE id = ?",
            (attempts, first.id),
        )
    app = create_app(env.server)  # recovers the job and resumes it
    store = app.extensions["rlm"].store
    job = wait_for(lambda: finished(store, first.id), what="the resumed job")
    app.extensions["rlm"].pool.stop()
    return first, job


@pytest.mark.parametrize("where", ["after-push", "after-pr"])
def test_a_run_killed_after_pushing_resumes_onto_its_branch(world, monkeypatch, where):
    env = world(QUICK)
    first, job = _kill_then_resume(env, monkeypatch, where)
    assert first.request["pushed_branch"]  # stored the moment the branch existed
    assert (job.state, job.outcome) == ("done", "pr"), job.message  # main: 422 "Reference already exists"
    (pull,) = env.fake.created_pulls  # the open PR from our branch is linked, not opened twice
    assert pull["head"] == first.request["pushed_branch"] and branches(env) == [pull["head"]]
    assert messages.OUTCOME_PR.format(url=pull["html_url"]) in status_of(env)
    assert "return a + b" in env.git("show", f"{pull['head']}:calc.py")


def test_an_interrupted_run_takes_its_eyes_away(world, monkeypatch):
    env = world(QUICK)
    _, job = _kill_then_resume(env, monkeypatch, "after-push", attempts=2)  # no attempt left
    assert job.outcome == "interrupted"
    assert reactions(env) == {
        messages.REACTION_SEEN: True,
        messages.REACTION_FAILED: False,
    }  # main: 👀 stayed
    body = status_of(env)
    assert messages.OUTCOME_INTERRUPTED.format(prefix="/rlm") in body
    assert f"{job.request['run_id']}.patch" in body  # the change it had made is named


# ---------------------------------------------------------------- 3. the pull request refused


@pytest.mark.parametrize(
    ("status", "message", "errors", "shown"),
    [
        (403, "Resource not accessible by integration", None, "Resource not accessible by integration"),
        (
            422,
            "Validation Failed",
            [{"resource": "PullRequest", "code": "custom", "message": "Body is too long"}],
            "Body is too long",
        ),
    ],
)
def test_a_refused_pull_request_names_the_branch_and_githubs_reason(world, status, message, errors, shown):
    env = world(QUICK)
    env.fake.fail("POST", rf"/repos/{REPO}/pulls", status, times=100, message=message, errors=errors)
    job = run_one(env, "issue_comment", comment(env))
    assert (job.state, job.outcome) == ("failed", "branch")
    branch = job.request["pushed_branch"]
    body = status_of(env)
    assert shown in body  # main dropped GitHub's errors[]
    assert f"`{branch}`" in body and f"/{REPO}/compare/main...{branch}" in body
    patch_url = f"http://bot.example/runs/{job.trace_token}/patch"
    assert f"[{job.request['run_id']}.patch]({patch_url})" in body
    assert "return a + b" in env.git("show", f"{branch}:calc.py")


def test_a_root_answer_over_githubs_limit_is_cut_with_a_link(world):
    long = "word " * 20000  # 100,000 characters
    env = world([{"task": ".", "responses": [py(EDIT + f'\nFINAL("{long}")')]}])
    job = run_one(env, "issue_comment", comment(env))
    assert job.outcome == "pr", job.message  # main: 422 after the push, always
    (pull,) = env.fake.created_pulls
    assert len(pull["body"]) <= BODY_LIMIT
    trace = f"http://bot.example/runs/{job.trace_token}/"
    assert f"The rest is at {trace}" in pull["body"] and messages.PR_TRACE.format(url=trace) in pull["body"]


# ---------------------------------------------------------------- 4. the patch file


def _serve_patch(env, job) -> requests.Response:
    app = create_app(env.server, start_workers=False)
    with serve(app) as url:
        return requests.get(f"{url}/runs/{job.trace_token}/patch", timeout=10)


def test_the_patch_is_written_beside_the_results_and_offered_by_the_trace_page(world):
    files = {
        "calc.py": "def add(a, b):\n    # TODO: implement\n    return 0\n",
        ".github/workflows/ci.yml": WORKFLOW,
    }
    env = world([{"task": ".", "responses": [py(WORKFLOW_EDIT + '\nFINAL("tuned ci")')]}], files=files)
    job = run_one(env, "issue_comment", comment(env))
    assert job.outcome == "only_workflows"  # nothing could be pushed: the patch is the only copy
    saved = env.server.worker.results_dir / f"{job.request['run_id']}.patch"
    assert "+# tuned" in saved.read_text()  # main: results held only the patch's statistics
    served = _serve_patch(env, job)
    assert served.status_code == 200 and served.text == saved.read_text()
    assert f"http://bot.example/runs/{job.trace_token}/patch" in status_of(env)


def test_a_fork_patch_over_the_comment_limit_links_the_full_patch(world):
    big = py('open("big.txt", "w").write(("y" * 99 + "\\n") * 800)\nFINAL("big")')  # an 80 kB patch
    env = world([{"task": ".", "responses": [big]}], branches={"feature": {"more.txt": "more\n"}})
    sha = env.git("rev-parse", "refs/heads/feature").strip()
    head = {"sha": sha, "ref": "feature", "repo": {"full_name": "someone/fork"}}
    env.fake.pulls[(REPO, 9)] = {"number": 9, "head": head, "base": {"ref": "main"}}
    job = run_one(env, "issue_comment", comment(env, number=9, pull=True))
    assert job.outcome == "patch_comment", job.message
    patch_url = f"http://bot.example/runs/{job.trace_token}/patch"
    (posted,) = [c for c in env.fake.issue_comments(REPO, 9) if "```diff" in c["body"]]
    assert (
        messages.PATCH_TOO_LONG.format(url=patch_url) in posted["body"]
    )  # main: "in the trace", which it was not
    served = _serve_patch(env, job)
    assert served.status_code == 200 and served.text.count("+" + "y" * 99) == 800


# ---------------------------------------------------------------- 6. smaller


def test_status_and_pr_body_details(world):
    """The first live edit is not an empty tree; skipped workflow files are named in the PR body;
    the repository is read once per run."""
    files = {
        "calc.py": "def add(a, b):\n    # TODO: implement\n    return 0\n",
        ".github/workflows/ci.yml": WORKFLOW,
    }
    env = world(
        [{"task": ".", "responses": [py(EDIT + "\n" + WORKFLOW_EDIT + '\nFINAL("fixed")')]}], files=files
    )
    job = run_one(env, "issue_comment", comment(env))
    assert job.outcome == "pr", job.message
    (status,) = [c for c in env.fake.issue_comments(REPO, 7)]
    assert not [b for b in status["history"] if "0 agents running, 0 finished" in b]
    assert not [b for b in status["history"] if "0 running, 0 finished" in b]
    (pull,) = env.fake.created_pulls
    assert messages.WORKFLOW_FILES_SKIPPED.format(files=".github/workflows/ci.yml") in pull["body"]
    assert messages.WORKFLOW_FILES_SKIPPED.format(files=".github/workflows/ci.yml") in status["body"]
    assert len([c for c in env.fake.calls if c.method == "GET" and c.path == f"/repos/{REPO}"]) == 1


# ---------------------------------------------------------------- writes checked before a retry


def test_a_write_that_took_effect_before_a_500_is_not_repeated(tmp_path, make_repo):
    work, sha = make_repo({"README.md": "# demo\n"})
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    fake = FakeGitHub().start()
    fake.add_repo(REPO, str(bare))
    try:
        api = GitHubAPI("test-token-abcdefgh", fake.url, sleep=lambda s: None)
        fake.fail("POST", rf"/repos/{REPO}/issues/\d+/comments", 502, after=True)
        cid = api.create_comment(REPO, 3, "exactly once")
        assert [c["body"] for c in fake.issue_comments(REPO, 3)] == ["exactly once"] and cid in fake.comments
        api.create_ref(REPO, "refs/heads/topic", sha)
        fake.fail("POST", rf"/repos/{REPO}/pulls", 500, after=True)
        pull = api.create_pull(REPO, title="t", head="topic", base="main", body="b")
        assert len(fake.created_pulls) == 1 and pull["number"] == fake.created_pulls[0]["number"]
        fake.fail("POST", rf"/repos/{REPO}/git/refs", 503, after=True)
        api.create_ref(REPO, "refs/heads/other", sha)  # the ref exists: that is the answer
        assert len([c for c in fake.calls if c.method == "POST" and c.path.endswith("/git/refs")]) == 2
    finally:
        fake.stop()


def test_the_action_hands_the_daytona_key_on_without_the_process_environment(
    tmp_path, make_repo, write_script, monkeypatch
):
    """main put the key into os.environ, where every later child process (git, sandboxes) saw it."""
    from bot.rlm import SandboxError
    from tests.fakes.action_env import REPO as ACTION_REPO
    from tests.fakes.action_env import bare_remote, make_job

    planted = "dtn_planted-daytona-key-0123456789"
    seen: dict = {}

    def make_client(settings, api_key=None):  # the far side: Daytona's API
        seen.update(key=api_key, environ=os.environ.get("DAYTONA_API_KEY"))
        raise SandboxError("no Daytona in this test")

    monkeypatch.setattr("bot.rlm.sandbox.daytona.client.make_client", make_client)
    monkeypatch.delenv("DAYTONA_API_KEY", raising=False)
    src, _ = make_repo({"calc.py": "x = 1\n"}, name="src")
    remote = bare_remote(src, tmp_path)
    fake = FakeGitHub().start()
    fake.add_repo(ACTION_REPO, remote.removeprefix("file://"))
    try:
        event = {"repository": {"full_name": ACTION_REPO, "clone_url": remote}, "inputs": {}}
        script = write_script([{"task": ".", "responses": [py('FINAL("x")')]}])
        job = make_job(
            tmp_path,
            fake.url,
            script,
            "workflow_dispatch",
            event,
            prompt="look",
            sandbox="daytona",
            daytona_api_key=planted,
        )
        proc = job.run_here()
    finally:
        fake.stop()
    assert seen == {"key": planted, "environ": None}, proc.stdout
    assert "DAYTONA_API_KEY" not in os.environ and planted not in proc.stdout.replace(
        f"::add-mask::{planted}", ""
    )
