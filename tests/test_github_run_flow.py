"""The run flow's branches through the real app over HTTP: pull requests (same repo and fork),
review comments, repo config, busy/status/cancel, GitHub failing for good, secrets never leaking."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from bot.common.secrets import REDACTOR
from bot.github import messages
from tests.conftest import leftovers, py
from tests.fakes.app_env import REPO, collapse, finished, run_one
from tests.fakes.github_app import comment_payload, post_event, review_comment_payload, serve, wait_for
from webhooks import create_app

EDIT = py("""
print(edit_file("calc.py", "    # TODO: implement\\n    return 0\\n", "    return a + b\\n"))
FINAL("fixed")
""")
QUICK = [{"task": ".", "responses": [EDIT]}]
HEAD_CALC = "def add(a, b):\n    # TODO: implement\n    return 0\n\n\ndef sub(a, b):\n    return a - b\n"


def add_pull(env, number: int, branch: str, head_repo: str | None = REPO) -> str:
    sha = env.git("rev-parse", f"refs/heads/{branch}").strip()
    head = {"sha": sha, "ref": branch, "repo": {"full_name": head_repo} if head_repo else None}
    env.fake.pulls[(REPO, number)] = {"number": number, "head": head, "base": {"ref": "main"}}
    return sha


def test_same_repo_pull_request_targets_its_head_branch(world):
    env = world(QUICK, branches={"feature": {"calc.py": HEAD_CALC}})
    head_sha = add_pull(env, 9, "feature")
    job = run_one(
        env, "issue_comment", comment_payload("/rlm fix add", number=9, pull=True, clone_url=str(env.bare))
    )
    assert job.outcome == "pr", job.message
    assert job.request["commit"] == head_sha
    pull = env.fake.created_pulls[0]
    assert pull["base"] == "feature"
    branch = pull["head"]
    assert env.git("rev-parse", f"{branch}^").strip() == head_sha
    assert "def sub" in env.git("show", f"{branch}:calc.py") and "return a + b" in env.git(
        "show", f"{branch}:calc.py"
    )


def test_fork_pull_request_gets_the_patch_in_a_comment(world):
    env = world(QUICK, branches={"feature": {"calc.py": HEAD_CALC}})
    add_pull(env, 9, "feature", head_repo="someone/fork")
    job = run_one(
        env, "issue_comment", comment_payload("/rlm fix add", number=9, pull=True, clone_url=str(env.bare))
    )
    assert job.outcome == "patch_comment"
    paths = env.fake.write_paths()
    assert not [p for p in paths if "/git/" in p[1] or p[1].endswith("/pulls")]
    comments = env.fake.issue_comments(REPO, 9)
    patch_comment = next(
        c
        for c in comments
        if c["body"].startswith(messages.PATCH_COMMENT.format(run_id=job.request["run_id"]))
    )
    assert "+    return a + b" in patch_comment["body"]
    status = next(c for c in comments if c is not patch_comment)
    # Defect 5: the status named the patch comment with a literal `{url}`.
    assert messages.OUTCOME_PATCH_COMMENT.format(url=patch_comment["html_url"]) in status["body"]
    assert "{url}" not in status["body"]


def test_review_comment_reacts_on_the_review_comment(world):
    env = world(QUICK, branches={"feature": {"calc.py": HEAD_CALC}})
    add_pull(env, 8, "feature")
    job = run_one(
        env, "pull_request_review_comment", review_comment_payload("/rlm fix add", clone_url=str(env.bare))
    )
    assert job.outcome == "pr"
    reactions = [p for p in env.fake.write_paths() if "reactions" in p[1]]
    assert reactions and all(
        p[1].startswith(f"/repos/{REPO}/pulls/comments/777/reactions") for p in reactions
    )


def test_repo_config_is_read_from_the_default_branch(world):
    rules = [{"task": ".", "responses": [py('FINAL("nothing to do")')]}]
    env = world(
        rules,
        files={
            "calc.py": "x = 1\n",
            ".github/rlm.yml": "rlm:\n  max_depth: 0\nsandbox:\n  backend: daytona\n",
        },
        branches={"feature": {".github/rlm.yml": "rlm:\n  max_depth: 1\n"}},
    )
    add_pull(env, 9, "feature")
    job = run_one(
        env, "issue_comment", comment_payload("/rlm look", number=9, pull=True, clone_url=str(env.bare))
    )
    assert job.outcome == "answer"  # no change, and the root's answer is shown in the thread
    contents = [c for c in env.fake.calls if "/contents/" in c.path]
    assert [c.query.get("ref") for c in contents] == ["main"]
    results = env.results(job)
    assert results["config"]["rlm"]["max_depth"] == 0
    status = env.fake.issue_comments(REPO, 9)[0]["body"]
    assert "`.github/rlm.yml` was ignored" in status and "sandbox" in status
    assert messages.OUTCOME_ANSWER in status


def test_persistent_github_failure_ends_in_a_clear_status(world):
    env = world(QUICK)
    env.fake.fail("POST", rf"/repos/{REPO}/pulls", 502, times=100, message="Bad Gateway")
    job = run_one(env, "issue_comment", comment_payload("/rlm fix add", clone_url=str(env.bare)))
    # The change was pushed before GitHub failed: the outcome names the branch, not just the error.
    assert job.outcome == "branch" and job.state == "failed"
    pulls_calls = [c for c in env.fake.calls if c.method == "POST" and c.path == f"/repos/{REPO}/pulls"]
    assert len(pulls_calls) == 5  # bounded retries
    (status,) = env.fake.issue_comments(REPO, 7)
    branch = job.request["pushed_branch"]
    assert f"`{branch}`" in status["body"] and "after 5 tries" in status["body"]
    assert f"/{REPO}/compare/main...{branch}" in status["body"]
    assert (
        f"[{job.request['run_id']}.patch](http://bot.example/runs/{job.trace_token}/patch)" in status["body"]
    )
    assert "return a + b" in env.git("show", f"{branch}:calc.py")
    assert any(r["content"] == messages.REACTION_FAILED for r in env.fake.reactions.values())


def test_transient_faults_are_retried_and_the_run_succeeds(world):
    env = world(QUICK)
    env.fake.fail("POST", rf"/repos/{REPO}/git/blobs", 502, times=1)
    env.fake.fail("POST", rf"/repos/{REPO}/issues/\d+/comments", 429, times=1, headers={"Retry-After": "1"})
    env.fake.fail(
        "POST",
        rf"/repos/{REPO}/pulls",
        403,
        times=1,
        headers={"Retry-After": "2"},
        message="You have exceeded a secondary rate limit.",
    )
    job = run_one(env, "issue_comment", comment_payload("/rlm fix add", clone_url=str(env.bare)))
    assert job.outcome == "pr", job.message
    assert len(env.fake.created_pulls) == 1 and len(env.fake.issue_comments(REPO, 7)) == 1


SLOW_ROOT = [
    py("""
    answers = rlm_query_batched(["Sleep one", "Sleep two"])
    print(answers)
    """),
    py('FINAL("should not get here")'),
]
SLEEPER = [py("import time\nfor _ in range(600):\n    time.sleep(0.1)\nFINAL('woke')")]


def test_cancel_stops_the_running_tree(world, tmp_path):
    env = world(
        [{"task": "^do", "responses": SLOW_ROOT}, {"task": "^Sleep", "responses": SLEEPER}],
        engine={"rlm.exec_timeout": 120, "rlm.global_timeout": 120},
    )
    app = create_app(env.server)
    store = app.extensions["rlm"].store
    with serve(app) as url:
        run = post_event(
            url, "issue_comment", comment_payload("/rlm do the slow thing", clone_url=str(env.bare))
        )
        wait_for(
            lambda: any("3 agents running" in b for h in env.fake.comments.values() for b in h["history"]),
            timeout=30,
            what="children to be running",
        )
        busy = post_event(url, "issue_comment", comment_payload("/rlm another task", comment_id=556))
        status = post_event(url, "issue_comment", comment_payload("/rlm status", comment_id=557))
        wait_for(lambda: finished(store, busy.json()["job"]) and finished(store, status.json()["job"]))
        # The only run worker is busy, yet a run on another issue is acknowledged at once.
        other = post_event(
            url,
            "issue_comment",
            comment_payload("/rlm other", number=9, comment_id=600, clone_url=str(env.bare)),
        )
        wait_for(
            lambda: any(messages.STATUS_QUEUED in c["body"] for c in env.fake.issue_comments(REPO, 9)),
            timeout=10,
        )
        assert any(r["comment"] == 600 and r["content"] == "eyes" for r in env.fake.reactions.values())
        assert store.get(other.json()["job"]).state == "queued"
        cancel = post_event(url, "issue_comment", comment_payload("/rlm cancel", comment_id=558))
        started = time.monotonic()
        job = wait_for(lambda: finished(store, run.json()["job"]), timeout=30, what="the run to stop")
        assert time.monotonic() - started < 10  # the whole tree stops promptly
        wait_for(lambda: finished(store, cancel.json()["job"]))
        wait_for(lambda: finished(store, other.json()["job"]), timeout=30)
    app.extensions["rlm"].pool.stop()
    assert job.state == "cancelled" and job.outcome == "cancelled"
    run_id = job.request["run_id"]
    bodies = [c["body"] for c in env.fake.issue_comments(REPO, 7)]
    assert messages.BUSY.format(run_id=run_id, prefix="/rlm") in bodies
    assert any(
        b.startswith(messages.STATUS_REPLY.format(run_id=run_id, state="running", progress=""))
        for b in bodies
    )
    assert messages.CANCEL_REQUESTED.format(run_id=run_id) in bodies
    status_comment = next(c for c in env.fake.issue_comments(REPO, 7) if len(c["history"]) > 1)
    assert messages.OUTCOME_CANCELLED.format(prefix="/rlm") in status_comment["body"]
    results = env.results(job)
    assert results["status"] == "cancelled"
    assert all(a["status"] != "running" for a in results["agents"])
    assert leftovers(Path(env.server.engine.cache_root())) == []
    assert env.fake.created_pulls == []


def test_secrets_never_leak(world, tmp_path, caplog, monkeypatch):
    """Planted values: the installation token, the LLM key, the webhook secret and the private key.
    The model echoes them; none reaches a comment, the PR, the commit, the trace, a log line or git config."""
    llm_key = "planted-llm-key-5b8e1f0a7c"
    token = "planted-install-token-93c1d7e2aa"
    monkeypatch.setenv("LLM_API_KEY", llm_key)
    leak = py(f"""
    import os
    print("env", sorted(os.environ))
    print(edit_file("calc.py", "    # TODO: implement\\n    return 0\\n", "    return a + b  # {token} {llm_key}\\n"))
    FINAL("done; token {token} key {llm_key}")
    """)
    env = world([{"task": ".", "responses": [leak]}])
    env.fake.installation_token = token
    REDACTOR.add(llm_key)  # what the server does for every secret in its environment at start
    caplog.set_level(logging.DEBUG)
    job = run_one(
        env, "issue_comment", comment_payload(f"/rlm fix add, token {token}", clone_url=str(env.bare))
    )
    assert job.outcome == "pr", job.message
    planted = [token, llm_key, env.server.webhook_secret, env.server.app.private_key.strip().splitlines()[1]]
    written = json.dumps([c.body for c in env.fake.writes() if "/git/blobs" not in c.path])
    for value in planted:
        assert value not in written
        assert value not in caplog.text
        for path in Path(env.server.worker.results_dir).iterdir():
            assert value not in path.read_text()
        for path in Path(env.server.engine.cache_root()).rglob("config"):
            assert value not in path.read_text(errors="replace")
    assert "[REDACTED]" in env.fake.created_pulls[0]["body"]
    # The token reached git only as an HTTP header in its environment: never a sandbox's.
    results = (Path(env.server.worker.results_dir) / f"{job.request['run_id']}.json").read_text()
    assert "GITHUB" not in results.split("env", 1)[1].split("]", 1)[0]


def test_final_write_sequence_for_no_changes(world):
    env = world([{"task": ".", "responses": [py('FINAL("all good already")')]}])
    job = run_one(env, "issue_comment", comment_payload("/rlm check", clone_url=str(env.bare)))
    assert job.outcome == "answer" and job.state == "done"  # the answer is the result
    writes = [w for w in env.fake.write_paths() if "/check-runs" not in w[1]]  # the check run's own pace
    assert [m for m, _ in collapse(writes)] == ["POST", "POST", "PATCH", "POST", "DELETE"]


def test_a_bug_still_ends_the_status_comment(world, monkeypatch, caplog):
    env = world(QUICK)

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("bot.github.deliver.open_pull_request", broken)  # stands in for any bug in the flow
    job = run_one(env, "issue_comment", comment_payload("/rlm fix add", clone_url=str(env.bare)))
    assert (job.state, job.outcome) == ("failed", "error")
    (status,) = env.fake.issue_comments(REPO, 7)
    assert messages.OUTCOME_ERROR.format(error=messages.INTERNAL_ERROR) in status["body"]
    assert "a bug" in caplog.text  # the traceback is in the log
    assert any(r["content"] == messages.REACTION_FAILED for r in env.fake.reactions.values())
