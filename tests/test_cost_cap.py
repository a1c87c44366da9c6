"""The cost cap: a cap of a few cents stops a real tree (the scripted model reports usage, priced
high here), and the change made until then is still delivered, marked partial — by the App (the
real server over HTTP against the fake GitHub) and by the CLI (a subprocess)."""

from __future__ import annotations

from bot.github import report
from bot.github.repo_config import COST_ABOVE_MAXIMUM, CostCap
from tests.conftest import py
from tests.fakes.app_env import REPO, run_one
from tests.fakes.github_app import comment_payload

EDIT = 'print(edit_file("calc.py", "    # TODO: implement\\n    return 0\\n", "    return a + b\\n"))'
# The root fixes calc.py at once, then keeps looking without ever calling FINAL: only a limit ends it.
ENDLESS = [
    {
        "task": ".",
        "latency": 0.2,
        "responses": [py(EDIT)] + [py(f"print('still looking {i}')") for i in range(40)],
    }
]
PRICE = {"model.input_cost_per_token": 1e-5, "model.output_cost_per_token": 1e-5}  # ~1 cent a call


def test_the_app_caps_a_run_delivers_its_partial_change_as_a_draft_and_says_so(world):
    env = world(
        ENDLESS,
        files={
            "calc.py": "def add(a, b):\n    # TODO: implement\n    return 0\n",
            ".github/rlm.yml": "rlm:\n  max_cost_usd: 100\n",  # asks more than the operator allows
        },
        engine=PRICE,
    )
    env.server.worker.cost_cap = CostCap(default_usd=0.02, max_usd=0.04)
    job = run_one(env, "issue_comment", comment_payload("/rlm fix add", clone_url=str(env.bare)))
    assert (job.state, job.outcome) == ("done", "pr"), job.message

    results = env.results(job)
    assert results["config"]["rlm"]["max_cost_usd"] == 0.04  # bounded by the operator's maximum
    assert results["status"] == "budget" and results["totals"]["cost_usd"] >= 0.04
    assert results["totals"]["iterations"] < 41  # the cap, not the script, ended it

    (pull,) = env.fake.created_pulls
    assert pull["draft"] is True  # a partial change is a draft although drafts are off
    note = report.partial_note(results)
    assert pull["body"].startswith(report.PR_PARTIAL.format(note=note))
    assert "$0.04" in note
    assert env.git("show", f"refs/heads/{pull['head']}:calc.py") == "def add(a, b):\n    return a + b\n"

    (status,) = [c for c in env.fake.issue_comments(REPO, 7) if c["body"].startswith("### 🤖")]
    body = status["body"]
    assert (
        report.OUTCOME_PARTIAL.format(note=note, outcome=report.OUTCOME_PR.format(url=pull["html_url"]))
        in body
    )
    assert COST_ABOVE_MAXIMUM.format(asked=100, cap=0.04) in body  # the repository hears its cap
    edits = [
        c.body.get("body", "")
        for c in env.fake.calls
        if c.method == "PATCH" and "/issues/comments/" in c.path
    ]
    assert any(" of $0.04" in text for text in edits)  # the live line: spend against the cap


def test_a_run_within_its_cap_is_not_partial(world):
    env = world([{"task": ".", "responses": [py(EDIT + '\nFINAL("Fix add")')]}], engine=PRICE)
    env.server.worker.cost_cap = CostCap(default_usd=1.0, max_usd=1.0)
    job = run_one(env, "issue_comment", comment_payload("/rlm fix add", clone_url=str(env.bare)))
    assert (job.state, job.outcome) == ("done", "pr"), job.message
    (pull,) = env.fake.created_pulls
    assert pull["draft"] is False and "Partial" not in pull["body"]
    assert env.results(job)["config"]["rlm"]["max_cost_usd"] == 1.0  # the operator's default cap
