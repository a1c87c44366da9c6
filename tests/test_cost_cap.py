"""The cost cap: a cap of a few cents stops a real tree (the scripted model reports usage, priced
high here), and the change made until then is still delivered, marked partial — by the App (the
real server over HTTP against the fake GitHub) and by the CLI (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bot.github import messages
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
    note = messages.partial_note(results)
    assert pull["body"].startswith(messages.PR_PARTIAL.format(note=note))
    assert "$0.04" in note
    assert env.git("show", f"refs/heads/{pull['head']}:calc.py") == "def add(a, b):\n    return a + b\n"

    (status,) = [c for c in env.fake.issue_comments(REPO, 7) if c["body"].startswith("### 🤖")]
    body = status["body"]
    assert (
        messages.OUTCOME_PARTIAL.format(note=note, outcome=messages.OUTCOME_PR.format(url=pull["html_url"]))
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


def test_the_cli_caps_a_run_and_the_patch_so_far_is_written_and_marked_partial(
    make_repo, write_script, tmp_path
):
    repo, _ = make_repo({"calc.py": "def add(a, b):\n    # TODO: implement\n    return 0\n"})
    script = write_script(ENDLESS)
    config = tmp_path / "config.yaml"
    config.write_text("model:\n  input_cost_per_token: 1.0e-5\n  output_cost_per_token: 1.0e-5\n")
    out = tmp_path / "fix.patch"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "run", str(repo), "-p", "fix add", "--model", f"scripted/{script}",
         "-c", str(config), "--max-cost", "0.03", "-o", str(out), "-q", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # the run did not finish ...
    assert "+    return a + b" in out.read_text()  # ... but its change is delivered
    data = json.loads(proc.stdout)
    assert data["partial"] is True and data["status"] == "budget" and data["patch"]["files"] == 1
    assert data["message"].startswith("partial: the cost cap of $0.03 stopped the run")
    assert "partial: the cost cap of $0.03" in proc.stderr
    results = json.loads(Path(data["results"]).read_text())
    assert results["config"]["rlm"]["max_cost_usd"] == 0.03 and results["totals"]["cost_usd"] >= 0.03
