"""End to end on loopback: the real Flask app over HTTP, the fake GitHub API over HTTP, a bare git
repository as the remote, the scripted model through the real engine. A signed `/rlm` comment must
produce exactly the expected GitHub writes and a pull request whose tree holds the patched file."""

from __future__ import annotations

import base64
import re

import pytest
import requests

from bot.github import messages
from bot.github.commands import help_text
from bot.github.permissions import not_allowed
from bot.rlm import summary_markdown
from tests.conftest import py
from tests.fakes.app_env import REPO, Worlds, collapse, finished
from tests.fakes.github_app import comment_payload, post_event, serve, wait_for
from webhooks import create_app

TASK = "fix the TODO in calc.py"
ANSWER = "Implemented add(); a child agent checked the file."

ROOT = [
    py("""
    note = rlm_query("Check calc.py for TODOs")
    print(note)
    """),
    py(
        f"""
    print(edit_file("calc.py", "    # TODO: implement\\n    return 0\\n", "    return a + b\\n"))
    FINAL("{ANSWER}")
    """
    ),
]
CHILD = [py('FINAL("calc.py has one TODO in add()")')]


RULES = [{"task": "^fix", "responses": ROOT}, {"task": "^Check", "responses": CHILD}]


@pytest.fixture
def world(tmp_path, make_repo, write_script, make_config):
    worlds = Worlds(tmp_path, make_repo, write_script, make_config)
    yield lambda rules=None, **kw: worlds(rules or RULES, **kw)
    worlds.close()


def test_comment_to_pull_request(world):
    env = world()
    app = create_app(env.server)
    store = app.extensions["rlm"].store
    with serve(app) as url:
        resp = post_event(url, "issue_comment", comment_payload(f"/rlm {TASK}", clone_url=str(env.bare)))
        assert resp.status_code == 202, resp.text
        assert resp.json()["kind"] == "run"
        job = wait_for(lambda: finished(store, resp.json()["job"]), what="the run to finish")
        # The trace link in the PR serves this run's trace (the viewer's blueprint), and only it.
        page = requests.get(f"{url}/runs/{job.trace_token}/", timeout=5)
        run = requests.get(f"{url}/runs/{job.trace_token}/api/runs/{job.request['run_id']}", timeout=5)
        unknown = requests.get(f"{url}/runs/{'x' * 32}/", timeout=5)
    assert page.status_code == 200 and run.status_code == 200 and unknown.status_code == 404
    assert run.json()["answer"] == ANSWER
    assert job.state == "done", job.message
    assert job.outcome == "pr"

    fake = env.fake
    status_id = next(iter(c for c in fake.comments))
    writes = collapse([w for w in fake.write_paths() if "/check-runs" not in w[1]])
    check_writes = [w for w in fake.write_paths() if "/check-runs" in w[1]]  # their pace is the live tree's
    (check_id,) = fake.check_runs
    assert check_writes[0] == ("POST", f"/repos/{REPO}/check-runs")
    assert set(check_writes[1:]) == {("PATCH", f"/repos/{REPO}/check-runs/{check_id}")}
    assert fake.check_runs[check_id]["conclusion"] == "success"
    reaction = [r for r in fake.reactions if fake.reactions[r]["content"] == "eyes"][0]
    assert writes == [
        ("POST", f"/repos/{REPO}/issues/comments/555/reactions"),
        ("POST", f"/repos/{REPO}/issues/7/comments"),
        ("PATCH", f"/repos/{REPO}/issues/comments/{status_id}"),
        ("POST", f"/repos/{REPO}/git/blobs"),
        ("POST", f"/repos/{REPO}/git/trees"),
        ("POST", f"/repos/{REPO}/git/commits"),
        ("POST", f"/repos/{REPO}/git/refs"),
        ("POST", f"/repos/{REPO}/pulls"),
        ("POST", f"/repos/{REPO}/pulls/101/requested_reviewers"),  # the requester reviews the PR
        ("PATCH", f"/repos/{REPO}/issues/comments/{status_id}"),
        ("POST", f"/repos/{REPO}/issues/comments/555/reactions"),
        ("DELETE", f"/repos/{REPO}/issues/comments/555/reactions/{reaction}"),
    ]
    bodies = [c.body for c in fake.writes() if "/access_tokens" not in c.path]
    assert bodies[0] == {"content": messages.REACTION_SEEN}
    assert bodies[-2] == {"content": messages.REACTION_DONE}
    assert fake.reactions[reaction]["deleted"]

    # The status comment: created queued, edited through preparing and running, ends with the PR link.
    history = fake.comments[status_id]["history"]
    assert messages.STATUS_QUEUED in history[0]
    assert any(messages.STATUS_PREPARING.format(commit=env.sha[:12]) in h for h in history)
    assert any(re.search(r"\d+ agents? running", h) for h in history)
    assert any(messages.STATUS_OPENING_PR in h for h in history)
    pull = fake.created_pulls[0]
    final = history[-1]
    assert messages.OUTCOME_PR.format(url=pull["html_url"]) in final
    assert "3 iterations" in final or "iterations" in final
    assert f"{messages.STATUS_HEADER.format(run_id=job.request['run_id'])}" in final
    assert "cancel" not in final  # the footer is gone once the run is over

    # Git Data: blob content, tree on the base, commit with the co-author, ref name.
    blob_call = next(c for c in fake.writes() if c.path.endswith("/git/blobs"))
    assert base64.b64decode(blob_call.body["content"]).decode() == "def add(a, b):\n    return a + b\n"
    tree_call = next(c for c in fake.writes() if c.path.endswith("/git/trees"))
    assert tree_call.body["base_tree"] == env.git("rev-parse", f"{env.sha}^{{tree}}").strip()
    assert tree_call.body["tree"] == [
        {"path": "calc.py", "mode": "100644", "type": "blob", "sha": tree_call.body["tree"][0]["sha"]}
    ]
    commit_call = next(c for c in fake.writes() if c.path.endswith("/git/commits"))
    assert commit_call.body["parents"] == [env.sha]
    assert "Co-authored-by: octocat <99+octocat@users.noreply.github.com>" in commit_call.body["message"]
    branch = f"rlm/7-{job.request['run_id'][-6:]}"
    ref_call = next(c for c in fake.writes() if c.path.endswith("/git/refs"))
    assert ref_call.body["ref"] == f"refs/heads/{branch}"

    # The PR: title from the answer's first line, body = answer + Closes + tree summary + totals + trace link.
    assert pull["title"] == "Implemented add(); a child agent checked the file"
    assert messages.PR_CLOSES.format(number=7) in pull["body"]
    assert (pull["head"], pull["base"], pull["draft"]) == (branch, "main", False)
    assert ANSWER in pull["body"]
    results = env.results(job)
    assert summary_markdown(results) in pull["body"]
    assert f"http://bot.example/runs/{job.trace_token}/" in pull["body"]

    # The PR's tree really holds the patched file, and nothing else changed.
    assert env.git("show", f"{branch}:calc.py") == "def add(a, b):\n    return a + b\n"
    assert env.git("show", f"{branch}:README.md") == "# demo\n"
    assert env.git("rev-parse", f"{branch}^").strip() == env.sha


def test_non_collaborator_runs_nothing(world):
    env = world()
    env.fake.grant(REPO, "mallory", "read")
    app = create_app(env.server)
    store = app.extensions["rlm"].store
    with serve(app) as url:
        resp = post_event(
            url, "issue_comment", comment_payload(f"/rlm {TASK}", user="mallory", clone_url=str(env.bare))
        )
        assert resp.status_code == 202
        job = wait_for(lambda: finished(store, resp.json()["job"]))
    assert job.outcome == "not_allowed"
    assert env.fake.write_paths() == [("POST", f"/repos/{REPO}/issues/7/comments")]
    (comment,) = env.fake.comments.values()
    assert comment["body"] == not_allowed("mallory")
    assert not (env.server.worker.results_dir).exists() or not list(env.server.worker.results_dir.iterdir())


def test_bot_comment_is_ignored(world):
    env = world()
    app = create_app(env.server)
    with serve(app) as url:
        resp = post_event(
            url, "issue_comment", comment_payload(f"/rlm {TASK}", user="rlm-bot[bot]", user_type="Bot")
        )
        assert resp.status_code == 200
        assert resp.json()["decision"] == "ignored"
    assert app.extensions["rlm"].store.jobs() == []
    assert [c for c in env.fake.calls if c.path != "/app"] == []  # only the readiness check's GET /app


def test_replies_without_a_run(world):
    env = world()
    env.fake.grant(REPO, "mallory", "triage")
    app = create_app(env.server)
    store = app.extensions["rlm"].store
    with serve(app) as url:
        jobs = [
            post_event(url, "issue_comment", comment_payload(body, comment_id=900 + i, user=user)).json()[
                "job"
            ]
            for i, (body, user) in enumerate(
                [
                    ("/rlm help", "octocat"),
                    ("/rlm cancel", "octocat"),
                    ("/rlm status", "octocat"),
                    ("/rlm --fast go", "octocat"),
                    ("/rlm cancel", "mallory"),
                ]
            )
        ]
        for job_id in jobs:
            wait_for(lambda job_id=job_id: finished(store, job_id))
    bodies = [c["body"] for c in env.fake.issue_comments(REPO, 7)]
    assert bodies == [
        help_text("/rlm"),
        messages.NOTHING_TO_CANCEL,
        messages.NOTHING_RUNNING.format(prefix="/rlm"),
        f"{messages.INVALID_COMMAND}\n\n{help_text('/rlm')}",
        not_allowed("mallory"),
    ]
    assert env.fake.reactions == {}  # replies carry no reactions; nothing ran
