"""The Action end to end: `python -m action` as a subprocess in a simulated Actions job, a local bare
repo as the remote, GitHub's API faked on loopback (Git Data API writing into that bare repo), the
scripted model. Each test asserts on one scenario's finished job."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import commit_files, git, py
from fakes.action_env import (
    PLANTED_KEY,
    PLANTED_TOKEN,
    REPO,
    Job,
    assert_no_secret,
    bare_remote,
    comment_event,
    example,
    finish,
    make_job,
    stand_in_python,
)
from fakes.github_fake import FakeGitHub

from action import messages as m
from bot.github import messages
from bot.github.repo_config import DEFAULT_COST_CAP_USD

CALC = "def add(a, b):\n    # TODO: implement\n    return 0\n"
FIXED = "def add(a, b):\n    return a + b\n"
TASK = "Fix the TODO in calc.py"
RUN_URL = f"https://github.com/{REPO}/actions/runs/4242"
# The root looks at its environment (it must hold no secret), asks one child, and fixes calc.py.
SCRIPT = [
    {
        "task": "^Fix",
        "responses": [
            py("""
            import os
            print(open('calc.py').read())
            print('planted? ' + str(any('planted' in v for v in os.environ.values())))
        """),
            py("""
            print(rlm_query("Explain calc.py"))
        """),
            py("""
            print(edit_file("calc.py", "    # TODO: implement\\n    return 0\\n", "    return a + b\\n"))
            FINAL("Implemented add.")
        """),
        ],
    },
    {"task": "^Explain", "responses": [py('FINAL("calc.py adds two numbers")')]},
]


@dataclass
class Scenario:
    job: Job
    fake: FakeGitHub
    remote: str  # file:// URL of the bare repository
    sha: str
    proc: subprocess.CompletedProcess | None = None

    def branch_file(self, branch: str, path: str) -> str:
        bare = self.remote.removeprefix("file://")
        return subprocess.run(
            ["git", f"--git-dir={bare}", "show", f"refs/heads/{branch}:{path}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def calls(self, method: str, pattern: str) -> list:
        return [c for c in self.fake.calls if c.method == method and re.search(pattern, c.path)]


def _setup(tmp: Path) -> Scenario:
    src = tmp / "src"
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    sha = commit_files(src, {"calc.py": CALC, "README.md": "# demo\n"}, "initial")
    remote = bare_remote(src, tmp)
    fake = FakeGitHub()
    fake.add_repo(REPO, remote.removeprefix("file://"))
    fake.grant(REPO, "Codertocat", "admin")
    fake.start()
    rules = [{**rule, "responses": [textwrap.dedent(r) for r in rule["responses"]]} for rule in SCRIPT]
    script = tmp / "script.yaml"
    script.write_text(yaml.safe_dump(rules, sort_keys=False))
    scenario = Scenario(job=None, fake=fake, remote=remote, sha=sha)  # type: ignore[arg-type]
    scenario.job = make_job(
        tmp, fake.url, script, "issue_comment", comment_event(f"/rlm {TASK}", remote), sha=sha
    )
    return scenario


def _manual(s: Scenario) -> None:
    event = example("workflow_dispatch")
    event["repository"].update(full_name=REPO, clone_url=s.remote)
    s.job.event_name, s.job.event = "workflow_dispatch", event
    s.job.inputs.update(prompt=TASK, draft="true")


def _fork(s: Scenario) -> None:
    head = {"sha": s.sha, "ref": "feature", "repo": {"full_name": "someone/Hello-World"}}
    s.fake.pulls[(REPO, 1)] = {"number": 1, "head": head}
    s.job.event = comment_event(f"/rlm {TASK}", s.remote, on_pull=True)


def _refused(s: Scenario) -> None:
    s.fake.fail("POST", r"/repos/.*/pulls", 403, message="Resource not accessible by integration")


def _scheduled(s: Scenario) -> None:
    """A schedule payload names no repository: the clone URL is <server>/<owner>/<name>.git."""
    s.job.event_name, s.job.event = (
        "schedule",
        {"schedule": "0 6 * * 1", "workflow": ".github/workflows/rlm.yml"},
    )
    s.job.extra_env["GITHUB_SERVER_URL"] = s.remote.removesuffix(f"/{REPO}.git")
    s.job.inputs["prompt"] = TASK


def _no_pr(s: Scenario) -> None:
    s.job.inputs["create-pr"] = "false"
    s.job.inputs["max-cost"] = "$0.75"


REPO_CONFIG = (
    "rlm:\n  max_depth: 0\n  max_iterations: 7\n  max_cost_usd: 3\n"
    "model:\n  api_base: http://127.0.0.1:9\ncloses_issue: false\n"
)


def _repo_config(s: Scenario) -> None:
    """`.github/rlm.yml` on the default branch, as under the App; the `max-iterations` input wins."""
    src = Path(s.job.tmp) / "src"
    commit_files(src, {".github/rlm.yml": REPO_CONFIG}, "rlm config")
    git(src, "push", "-q", s.remote.removeprefix("file://"), "main")
    s.job.inputs["max-iterations"] = "9"


def _base_branch(s: Scenario) -> None:
    """`base-branch: develop` on a comment: the run starts from develop's head, which the pipeline
    looks up once (the request names only the branch)."""
    work = Path(s.remote.removeprefix("file://")).parent / "develop-src"
    git(work.parent, "clone", "-q", s.remote, str(work))
    git(work, "checkout", "-q", "-b", "develop")
    commit_files(work, {"DEVELOP.md": "only on develop\n"}, "develop work")
    git(work, "push", "-q", "origin", "develop")
    s.job.inputs["base-branch"] = "develop"


SCENARIOS: dict[str, Callable[[Scenario], None]] = {
    "comment": lambda s: None,
    "manual": _manual,
    "fork": _fork,
    "refused": _refused,
    "no-pr": _no_pr,
    "scheduled": _scheduled,
    "repo-config": _repo_config,
    "base-branch": _base_branch,
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Iterator[dict[str, Scenario]]:
    """The comment scenario runs action.yml's own step script under bash, as the runner does; the
    variants run in this process meanwhile (each subprocess would pay seconds of imports)."""
    scenarios = {}
    for name, tweak in SCENARIOS.items():
        scenarios[name] = _setup(tmp_path_factory.mktemp(name))
        tweak(scenarios[name])
    try:
        child = scenarios["comment"].job.start_step()
        for name, scenario in scenarios.items():
            if name != "comment":
                scenario.proc = scenario.job.run_here()
        scenarios["comment"].proc = finish(child, timeout=120)
        yield scenarios
    finally:
        for s in scenarios.values():
            s.fake.stop()


def assert_masked(s: Scenario) -> None:
    assert_no_secret(s.proc, s.job)
    assert f"::add-mask::{PLANTED_KEY}" in s.proc.stdout
    assert f"::add-mask::{PLANTED_TOKEN}" in s.proc.stdout


def test_comment_opens_pull_request_with_tree_summary(runs):
    s = runs["comment"]
    assert s.proc.returncode == 0, s.proc.stdout + s.proc.stderr
    out = s.job.outputs()
    assert out["conclusion"] == m.PR_CREATED
    (pull,) = s.fake.created_pulls
    assert out["pr-url"] == pull["html_url"]
    assert out["agents"] == "2"
    assert float(out["cost"]) > 0
    assert "+    return a + b" in Path(out["patch-file"]).read_text()
    results = json.loads(Path(out["results-file"]).read_text())
    assert results["status"] == "completed" and results["commit"] == s.sha
    # the sandbox saw no secret; none is anywhere in the trace
    root_blocks = [b for it in results["agents"][0]["iterations"] for b in it["blocks"]]
    assert "planted? False" in root_blocks[0]["stdout"]
    assert PLANTED_KEY not in Path(out["results-file"]).read_text()
    # the pull request: the bot's branch holds the fix on top of the base commit
    assert pull["base"] == "main" and pull["head"].startswith("rlm/1-")
    assert s.branch_file(pull["head"], "calc.py") == FIXED
    assert pull["title"] == "Implemented add"  # the first line of the root's answer
    assert messages.PR_CLOSES.format(number=1) in pull["body"]
    # the request's context reached the root (its first message points at it)
    assert "`context` (" in results["agents"][0]["iterations"][0]["prompt"]
    assert "**Agent tree**" in pull["body"] and "`root.1`" in pull["body"] and RUN_URL in pull["body"]
    (commit,) = s.calls("POST", r"/git/commits$")
    assert commit.body["parents"] == [s.sha]
    assert "Co-authored-by: Codertocat" in commit.body["message"]
    # acknowledgement, status comment with the run's link, final reaction
    reactions = [c.body["content"] for c in s.calls("POST", r"/issues/comments/\d+/reactions$")]
    assert reactions == [messages.REACTION_SEEN, messages.REACTION_DONE]
    (status,) = s.fake.issue_comments(REPO, 1)
    assert RUN_URL in status["body"] and messages.OUTCOME_PR.format(url=pull["html_url"]) in status["body"]
    # the job log: one group per agent; the step summary with the tree
    assert s.proc.stdout.count("::group::") == 2
    assert "::group::✅ agent root.1" in s.proc.stdout
    summary = s.job.summary()
    assert m.SUMMARY_HEADER in summary and "**Agent tree**" in summary and "`root.1`" in summary
    assert pull["html_url"] in summary
    assert_masked(s)


def test_manual_run_uses_the_workflow_commit_and_prompt(runs):
    s = runs["manual"]
    assert s.proc.returncode == 0, s.proc.stdout + s.proc.stderr
    assert s.job.outputs()["conclusion"] == m.PR_CREATED
    (pull,) = s.fake.created_pulls
    assert pull["base"] == "main" and pull["head"].startswith("rlm/run-") and pull["draft"] is True
    assert s.branch_file(pull["head"], "calc.py") == FIXED
    assert RUN_URL in pull["body"]
    assert not s.fake.comments  # no issue to talk on
    assert_masked(s)


def test_base_branch_is_looked_up_once_by_the_pipeline(runs):
    s = runs["base-branch"]
    assert s.proc.returncode == 0, s.proc.stdout + s.proc.stderr
    (pull,) = s.fake.created_pulls
    assert pull["base"] == "develop"
    assert s.branch_file(pull["head"], "DEVELOP.md") == "only on develop\n"  # started from develop
    assert s.branch_file(pull["head"], "calc.py") == FIXED
    assert len(s.calls("GET", r"/branches/develop$")) == 1


def test_fork_pull_request_gets_the_patch_in_a_comment(runs):
    s = runs["fork"]
    assert s.proc.returncode == 0, s.proc.stdout + s.proc.stderr
    out = s.job.outputs()
    assert out["conclusion"] == m.PATCH_IN_COMMENT
    assert out["pr-url"] == "" and Path(out["patch-file"]).exists()
    assert not s.fake.created_pulls and not s.calls("POST", r"/git/")
    comments = s.fake.issue_comments(REPO, 1)
    patch = next(c for c in comments if "+    return a + b" in c["body"] and "```diff" in c["body"])
    said = messages.OUTCOME_PATCH_COMMENT.format(url=patch["html_url"])  # defect 5: was a literal {url}
    assert f"::notice title=rlm-bot::{said}" in s.proc.stdout
    assert said in s.job.summary() and "{url}" not in s.job.summary()
    assert_masked(s)


def test_missing_token_permission_is_named(runs):
    s = runs["refused"]
    assert s.proc.returncode == 1
    out = s.job.outputs()
    assert out["conclusion"] == m.MISSING_PERMISSIONS
    assert json.loads(Path(out["results-file"]).read_text())["status"] == "completed"
    assert "+    return a + b" in Path(out["patch-file"]).read_text()  # the work survives GitHub's refusal
    assert out["agents"] == "2"
    assert "::error title=rlm-bot::" in s.proc.stdout and "`pull-requests: write`" in s.proc.stdout
    assert "`pull-requests: write`" in s.job.summary()
    # main left the pushed rlm/… branch behind; the patch is in the artifact instead
    bare = s.remote.removeprefix("file://")
    heads = subprocess.run(
        ["git", f"--git-dir={bare}", "for-each-ref", "refs/heads/rlm/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert heads == "" and [r for r in s.fake.deleted_refs if r.startswith("refs/heads/rlm/")]
    assert_masked(s)


def test_create_pr_false_leaves_the_patch_and_replies_once(runs):
    s = runs["no-pr"]
    assert s.proc.returncode == 0, s.proc.stdout + s.proc.stderr
    out = s.job.outputs()
    assert out["conclusion"] == m.CHANGES and out["pr-url"] == ""
    assert "+    return a + b" in Path(out["patch-file"]).read_text()
    assert not s.fake.created_pulls and not s.calls("POST", r"/git/")
    (reply,) = s.fake.issue_comments(REPO, 1)
    assert m.OUTCOME_PATCH_ARTIFACT.format(url=RUN_URL) in reply["body"]
    assert "2 agents · max depth 1" in reply["body"]
    reactions = [c.body["content"] for c in s.calls("POST", r"/issues/comments/\d+/reactions$")]
    assert reactions == [messages.REACTION_SEEN, messages.REACTION_DONE]
    assert_masked(s)


def test_scheduled_run_clones_from_the_server_url_and_is_by_the_bot(runs):
    s = runs["scheduled"]
    assert s.proc.returncode == 0, s.proc.stdout + s.proc.stderr
    assert s.job.outputs()["conclusion"] == m.PR_CREATED
    results = json.loads(Path(s.job.outputs()["results-file"]).read_text())
    assert results["repo"] == s.remote and results["commit"] == s.sha
    (pull,) = s.fake.created_pulls
    assert s.branch_file(pull["head"], "calc.py") == FIXED
    assert "Requested by" not in pull["body"]
    (commit,) = s.calls("POST", r"/git/commits$")
    assert "Co-authored-by: github-actions[bot]" in commit.body["message"]
    assert not s.calls("GET", r"/collaborators/")


def test_the_repositorys_rlm_yml_applies_and_inputs_override_it(runs):
    s = runs["repo-config"]
    assert s.proc.returncode == 0, s.proc.stdout + s.proc.stderr
    out = s.job.outputs()
    assert out["conclusion"] == m.PR_CREATED
    config = json.loads(Path(out["results-file"]).read_text())["config"]
    assert config["rlm"]["max_depth"] == 0  # the file's
    assert config["rlm"]["max_cost_usd"] == 3  # the file's (the Action's default cap is 5)
    assert config["rlm"]["max_iterations"] == 9  # the input's, over the file's 7
    assert out["agents"] == "1"  # max_depth 0: the root's rlm_query was refused
    (pull,) = s.fake.created_pulls
    assert messages.PR_CLOSES.format(number=1) not in pull["body"]  # closes_issue: false
    assert s.branch_file(pull["head"], "calc.py") == FIXED
    (status,) = s.fake.issue_comments(REPO, 1)  # what the file got wrong is said, as under the App
    assert "`model.api_base` cannot be set by a repository" in status["body"]
    read = s.calls("GET", r"/contents/\.github/rlm\.yml$")
    assert read and read[0].query.get("ref") == "main"  # from the default branch


def test_without_a_cap_anywhere_the_action_caps_a_run_at_the_default(runs):
    config = json.loads(Path(runs["manual"].job.outputs()["results-file"]).read_text())["config"]
    assert config["rlm"]["max_cost_usd"] == DEFAULT_COST_CAP_USD
    config = json.loads(Path(runs["no-pr"].job.outputs()["results-file"]).read_text())["config"]
    assert config["rlm"]["max_cost_usd"] == 0.75  # the max-cost input


def test_cancelling_the_workflow_stops_the_tree(tmp_path_factory):
    """The runner cancels a step with SIGINT: the tree stops, the status comment and outputs say so."""
    s = _setup(tmp_path_factory.mktemp("cancel"))
    s.job.inputs["model"] = f"scripted/{s.job.tmp / 'slow.yaml'}"
    slow = [{"task": "", "latency": 60, "responses": [py('FINAL("too late")')]}]
    (s.job.tmp / "slow.yaml").write_text(yaml.safe_dump(slow))
    try:
        child = s.job.start()
        runs_dir = s.job.tmp / "runner" / "rlm-bot" / "runs"
        # Cancel once the rollout runs: before that the step may be importing litellm (over a minute on
        # a loaded machine), and no thread can act on the signal until the import is done.
        deadline = time.monotonic() + 240
        while not list(runs_dir.glob("*/*.events.jsonl")):
            if child.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the rollout never started:\n" + finish(child, timeout=10).stderr)
            time.sleep(0.1)
        child.send_signal(signal.SIGINT)
        started = time.monotonic()
        proc = finish(child, timeout=60)
        assert time.monotonic() - started < 7.5  # the runner sends SIGTERM after 7.5 s
    finally:
        s.fake.stop()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert s.job.outputs()["conclusion"] == m.CANCELLED
    assert f"::notice title=rlm-bot::{m.OUTCOME_RUN_CANCELLED}" in proc.stdout
    (status,) = s.fake.issue_comments(REPO, 1)
    assert "🚫" in status["body"] and not s.fake.created_pulls


def test_the_step_interpreter_is_this_one_with_its_packages(tmp_path):
    """The stand-in for the step's virtualenv imports the packages this suite imports, whether the
    suite runs from a virtualenv or from a system interpreter."""
    python = stand_in_python(tmp_path / "runner" / "rlm-bot" / "venv")
    probe = "import yaml, requests, bot; print(yaml.__file__, requests.__file__, bot.__file__)"
    proc = subprocess.run([str(python), "-P", "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    import requests

    import bot

    assert proc.stdout.split() == [yaml.__file__, requests.__file__, bot.__file__]
