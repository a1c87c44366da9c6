"""The conversation people expect (issue 20), through the real server and the fake GitHub: a question
gets its answer in the status comment; `/rlm review` posts ONE review with inline comments on diff
lines; a label or an assignment starts a run; a check run follows each run."""

from __future__ import annotations

import subprocess

from bot.github import checks, messages, review
from bot.github.permissions import not_allowed
from bot.github.triggers import trigger_task
from tests.conftest import py
from tests.fakes.app_env import REPO, finished
from tests.fakes.github_app import comment_payload, examples, post_event, serve, wait_for

QUESTION = "/rlm why does add() return 0?"
ANSWER = "Because `add` is a stub: line 3 of calc.py returns 0 whatever the arguments."
ASK = py('REPORT("| file | line |\\n|---|---|\\n| calc.py | 3 |")\nFINAL("' + ANSWER + '")')

FEATURE = {"calc.py": "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n"}


def run_to_end(env, event: str, payload: dict, *, expect_jobs: int = 1):
    """One delivery through the real Flask app over HTTP; waits until `expect_jobs` jobs ended."""
    from webhooks import create_app

    app = create_app(env.server)
    store = app.extensions["rlm"].store
    with serve(app) as url:
        resp = post_event(url, event, payload)
        assert resp.status_code in (200, 202), resp.text
        wait_for(
            lambda: len([j for j in store.jobs() if finished(store, j.id)]) >= expect_jobs,
            what="the jobs to finish",
        )
        jobs = store.jobs()
    app.extensions["rlm"].pool.stop()
    return resp, jobs


def status_of(env, number: int) -> dict:
    (status,) = [c for c in env.fake.issue_comments(REPO, number) if c["body"].startswith("### 🤖")]
    return status


def check_runs(env) -> list[dict]:
    return list(env.fake.check_runs.values())


# ---------------------------------------------------------------- 1. answers in the thread


def test_a_question_gets_its_answer_in_the_status_comment_and_a_neutral_check(world):
    env = world([{"task": "", "responses": [ASK]}])
    _, (job,) = run_to_end(env, "issue_comment", comment_payload(QUESTION, clone_url=str(env.bare)))
    assert job.outcome == "answer", job.message
    body = status_of(env, 7)["body"]
    assert messages.OUTCOME_ANSWER in body and ANSWER in body
    assert "<details><summary>📋 Report from the agents</summary>\n\n| file | line |" in body
    assert body.index(messages.OUTCOME_ANSWER) < body.index(ANSWER) < body.index("Report from the agents")
    assert env.fake.created_pulls == [] and not [p for m, p in env.fake.write_paths() if "/git/" in p]
    (check,) = check_runs(env)
    assert check["head_sha"] == env.sha and check["status"] == "completed"
    assert check["conclusion"] == "neutral"
    assert check["output"]["title"] == messages.OUTCOME_ANSWER
    assert "**Agent tree** — 1 agent · " in check["output"]["summary"]
    assert [h.get("status") for h in check["history"]][0] == "in_progress"


def test_a_long_answer_is_cut_to_githubs_limit_with_a_link_to_the_rest(world):
    long_answer = py('FINAL("why: " + "x" * 70000)')
    env = world([{"task": "", "responses": [long_answer]}])
    _, (job,) = run_to_end(env, "issue_comment", comment_payload(QUESTION, clone_url=str(env.bare)))
    assert job.outcome == "answer"
    body = status_of(env, 7)["body"]
    assert len(body) <= messages.BODY_LIMIT
    marker = messages.CUT_MARKER.format(limit=messages.BODY_LIMIT, url="http://bot.example/runs/")
    assert marker.strip() in body.replace(body.rsplit("/runs/", 1)[1], "")


# ---------------------------------------------------------------- 2. /rlm review


def pull_request_world(world, rules, **kw):
    env = world(rules, branches={"feature": FEATURE}, **kw)
    head = env.git("rev-parse", "refs/heads/feature").strip()
    diff = env.git("diff", "main", "feature", "--", "calc.py")
    env.fake.pulls[(REPO, 9)] = {
        "number": 9,
        "head": {"sha": head, "ref": "feature", "repo": {"full_name": REPO}},
        "base": {"ref": "main"},
        "user": {"login": "octocat", "type": "User"},
    }
    env.fake.pull_files[(REPO, 9)] = [
        {
            "filename": "calc.py",
            "status": "modified",
            "additions": 5,
            "deletions": 2,
            "patch": diff[diff.index("@@") :],
        }
    ]
    return env, head


CHILD = py(
    'COMMENT("calc.py", 2, "Subtracts instead of adding.", suggestion="    return a + b")\n'
    'COMMENT("calc.py", 2, "Subtracts instead of adding.", suggestion="    return a + b")\n'
    'FINAL("calc.py: add() subtracts")'
)
ROOT = [
    py('print("diff" in context)\nprint(rlm_query("Review calc.py lines 1-6"))'),
    py(
        'COMMENT("README.md", 1, "The README says nothing about mul().")\nFINAL("add() is broken; mul() is fine.")'
    ),
]


def test_review_posts_one_review_with_inline_comments_on_diff_lines_and_nothing_else(world):
    env, head = pull_request_world(
        world, [{"task": "^Review calc", "responses": [CHILD]}, {"task": "", "responses": ROOT}]
    )
    payload = comment_payload("/rlm review correctness", clone_url=str(env.bare), number=9, pull=True)
    _, (job,) = run_to_end(env, "issue_comment", payload)
    assert job.outcome == "review", job.message
    posts = [c for c in env.fake.calls if c.method == "POST" and c.path.endswith("/reviews")]
    assert len(posts) == 1 and len(env.fake.reviews) == 1
    sent = posts[0].body
    assert sent["event"] == "COMMENT" and sent["commit_id"] == head
    assert sent["comments"] == [
        {
            "path": "calc.py",
            "line": 2,
            "side": "RIGHT",
            "body": "Subtracts instead of adding.\n\n```suggestion\n    return a + b\n```",
        }
    ]
    assert sent["body"].startswith("add() is broken; mul() is fine.")
    assert "- `README.md` line 1: The README says nothing about mul()." in sent["body"]
    assert review.REVIEW_OUTSIDE_HEADER in sent["body"]
    assert not [c for c in env.fake.calls if c.method != "GET" and "/git/" in c.path]  # nothing pushed
    assert env.fake.created_pulls == []
    status = status_of(env, 9)["body"]
    assert review.OUTCOME_REVIEW.format(url=env.fake.reviews[0]["html_url"], inline=1, outside=1) in status
    results = env.results(job)
    assert results["mode"] == "review" and "correctness" in results["prompt"]
    (check,) = check_runs(env)
    assert check["head_sha"] == head and check["conclusion"] == "neutral"
    assert [(a["path"], a["start_line"]) for a in check["annotations"]] == [("calc.py", 2), ("README.md", 1)]


def test_review_of_a_fork_pull_request_pushes_nothing(world):
    env, head = pull_request_world(
        world, [{"task": "^Review calc", "responses": [CHILD]}, {"task": "", "responses": ROOT}]
    )
    env.fake.pulls[(REPO, 9)]["head"]["repo"] = {"full_name": "stranger/demo"}
    payload = comment_payload("/rlm review", clone_url=str(env.bare), number=9, pull=True)
    _, (job,) = run_to_end(env, "issue_comment", payload)
    assert job.outcome == "review", job.message
    assert len(env.fake.reviews) == 1 and env.fake.reviews[0]["commit_id"] == head
    assert not [c for c in env.fake.calls if c.method != "GET" and "/git/" in c.path]


# ---------------------------------------------------------------- 3. triggers


RLM_YML = "triggers:\n  label: rlm\n  assign: true\n"
WORK = py('edit_file("calc.py", "return 0", "return a + b")\nFINAL("Implement add\\n\\nDone.")')


def label_payload(env, *, sender: str = "octocat", label: str = "rlm", number: int = 7) -> dict:
    """The real `issues.labeled` example, moved to this world's repository and issue."""
    (_, payload), *_ = [(e, p) for e, p in examples("issues") if p.get("action") == "labeled"]
    payload["repository"].update(full_name=REPO, clone_url=str(env.bare), default_branch="main")
    payload["issue"].update(number=number, title="Implement add", body="add() returns 0.")
    payload["label"]["name"] = label
    payload["sender"].update(login=sender, type="User")
    payload["installation"] = {"id": 42}
    return payload


def assign_payload(env, *, assignee: str = "rlm-bot[bot]", sender: str = "octocat") -> dict:
    (_, payload), *_ = [(e, p) for e, p in examples("issues") if p.get("action") == "assigned"]
    payload["repository"].update(full_name=REPO, clone_url=str(env.bare), default_branch="main")
    payload["issue"].update(number=7, title="Implement add", body="add() returns 0.")
    payload["assignee"].update(login=assignee, type="Bot" if assignee.endswith("[bot]") else "User")
    payload["sender"].update(login=sender, type="User")
    payload["installation"] = {"id": 42}
    return payload


def with_rlm_yml(env, text: str = RLM_YML) -> None:
    work = env.bare.parent / "work-yml"
    subprocess.run(["git", "clone", "-q", str(env.bare), str(work)], check=True)
    (work / ".github").mkdir()
    (work / ".github/rlm.yml").write_text(text)
    from tests.conftest import git

    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "rlm.yml")
    git(work, "push", "-q", "origin", "HEAD:main")


def test_a_label_starts_a_run_with_the_issue_as_its_task(world):
    env = world([{"task": "", "responses": [WORK]}])
    with_rlm_yml(env)
    _, jobs = run_to_end(env, "issues", label_payload(env), expect_jobs=2)
    run = next(j for j in jobs if j.kind == "run")
    assert run.outcome == "pr", run.message
    assert run.request["task"] == trigger_task("Implement add", "add() returns 0.")
    assert run.request["requester"] == "octocat" and run.request["mode"] == "change"
    assert run.request["context"].splitlines()[1] == "Started by @octocat, who labelled it `rlm`."
    assert messages.OUTCOME_PR.split("{")[0] in status_of(env, 7)["body"]


def test_assigning_the_bot_starts_a_run(world):
    env = world([{"task": "", "responses": [WORK]}])
    with_rlm_yml(env)
    _, jobs = run_to_end(env, "issues", assign_payload(env), expect_jobs=2)
    assert next(j for j in jobs if j.kind == "run").outcome == "pr"


def test_a_read_only_senders_label_or_another_label_starts_nothing(world):
    env = world([{"task": "", "responses": [WORK]}])
    with_rlm_yml(env)
    env.fake.grant(REPO, "reader", "read")
    _, jobs = run_to_end(env, "issues", label_payload(env, sender="reader"))
    assert [j.kind for j in jobs] == ["trigger"] and jobs[0].outcome == "not_allowed"
    _, jobs = run_to_end(env, "issues", label_payload(env, label="bug"), expect_jobs=2)
    assert [j.kind for j in jobs] == ["trigger", "trigger"] and jobs[-1].outcome == "ignored"
    assert [c["body"] for c in env.fake.issue_comments(REPO, 7)] == [not_allowed("reader", "/rlm")]
    assert env.fake.created_pulls == [] and not env.fake.check_runs
    # Assigning someone else is not for the bot: not even recorded as a job.
    resp, jobs = run_to_end(env, "issues", assign_payload(env, assignee="octocat"), expect_jobs=2)
    assert resp.status_code == 200 and len(jobs) == 2


# ---------------------------------------------------------------- 6. check runs


def test_the_check_run_goes_from_in_progress_to_completed_with_the_summary(world):
    env = world([{"task": "", "responses": [WORK]}])
    _, (job,) = run_to_end(
        env, "issue_comment", comment_payload("/rlm implement add", clone_url=str(env.bare))
    )
    assert job.outcome == "pr"
    (check,) = check_runs(env)
    statuses = [h.get("status") for h in check["history"] if h.get("status")]
    assert statuses[0] == "in_progress" and statuses[-1] == "completed"
    assert check["name"] == checks.CHECK_NAME and check["conclusion"] == "success"
    assert check["details_url"].startswith("http://bot.example/runs/")
    summary = check["output"]["summary"]
    assert summary.startswith(messages.OUTCOME_PR.format(url=env.fake.created_pulls[0]["html_url"]))
    assert "**Agent tree** — 1 agent · " in summary and "$" in summary  # the tree and its cost


def test_without_the_checks_permission_the_run_goes_on_and_says_so_once(world):
    env = world([{"task": "", "responses": [WORK]}])
    env.fake.fail(
        "POST", rf"/repos/{REPO}/check-runs", 403, times=99, message="Resource not accessible by integration"
    )
    _, (job,) = run_to_end(
        env, "issue_comment", comment_payload("/rlm implement add", clone_url=str(env.bare))
    )
    assert job.outcome == "pr", job.message
    body = status_of(env, 7)["body"]
    assert body.count(checks.CHECK_OFF) == 1
    assert len([c for c in env.fake.calls if "check-runs" in c.path]) == 1


def test_a_secret_in_a_finding_never_reaches_github(world):
    secret = "sk-or-v1-planted-0123456789abcdef"
    leaky = py(f'COMMENT("calc.py", 2, "the key is {secret}", suggestion="{secret}")\nFINAL("key {secret}")')
    env, _ = pull_request_world(world, [{"task": "", "responses": [leaky]}])
    env.server.worker.api_key = secret
    payload = comment_payload("/rlm review", clone_url=str(env.bare), number=9, pull=True)
    _, (job,) = run_to_end(env, "issue_comment", payload)
    assert job.outcome == "review", job.message
    (posted,) = env.fake.reviews
    assert (
        posted["comments"][0]["body"].startswith("the key is ")
        and "```suggestion" in posted["comments"][0]["body"]
    )
    sent = repr([c.body for c in env.fake.calls])
    assert secret not in sent and secret not in repr(env.fake.check_runs)


def test_a_review_that_runs_out_of_iterations_still_posts_its_findings(world):
    found = py('COMMENT("calc.py", 2, "Subtracts instead of adding.")\nprint("more to check")')
    env, _ = pull_request_world(
        world, [{"task": "", "responses": [found, py("print(1)")]}], engine={"rlm.max_iterations": 2}
    )
    payload = comment_payload("/rlm review", clone_url=str(env.bare), number=9, pull=True)
    _, (job,) = run_to_end(env, "issue_comment", payload)
    assert job.outcome == "review", job.message
    (posted,) = env.fake.reviews
    assert posted["body"].startswith(review.REVIEW_PARTIAL_NOTE.format(status="budget"))
    assert [c["line"] for c in posted["comments"]] == [2]
    assert review.OUTCOME_REVIEW_PARTIAL.split("(")[0] in status_of(env, 9)["body"]
