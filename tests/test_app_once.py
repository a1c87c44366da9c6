"""One App run acknowledges once and resolves its commit once (issue 17): the control lane accepts
(👀, status comment, commit), the run lane runs what was accepted without asking GitHub again."""

from __future__ import annotations

from tests.conftest import py
from tests.fakes.app_env import REPO, run_one
from tests.fakes.github_app import comment_payload

EDIT = py("""
print(edit_file("calc.py", "    # TODO: implement\\n    return 0\\n", "    return a + b\\n"))
FINAL("fixed")
""")


def test_an_app_run_acknowledges_and_resolves_its_commit_once(world):
    env = world([{"task": ".", "responses": [EDIT]}])
    job = run_one(env, "issue_comment", comment_payload("/rlm fix add", clone_url=str(env.bare)))
    assert job.outcome == "pr", job.message
    calls = env.fake.calls
    eyes = [
        c
        for c in calls
        if c.method == "POST" and c.path.endswith("/reactions") and c.body == {"content": "eyes"}
    ]
    assert len(eyes) == 1  # at acceptance only; the run lane does not acknowledge again
    branch_reads = [c for c in calls if c.method == "GET" and c.path.startswith(f"/repos/{REPO}/branches/")]
    assert len(branch_reads) == 1, [c.path for c in branch_reads]  # the default branch's head, once
    assert job.request["acknowledged"] and job.request["commit"] and job.request["default_branch"] == "main"
