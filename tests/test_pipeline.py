"""One pipeline, three adapters: the same scenarios through the CLI, the App worker and the Action.

Each adapter runs the real pipeline (real repo, sandboxes, scripted model through litellm); the
App over HTTP through the real Flask app against the fake GitHub, the Action as its step in this
process against the fake GitHub, the CLI as `rlm run`'s function. Whatever the front end, a
change ends in `<run_id>.patch` beside the results, and the outcome kind is the same.
"""

from __future__ import annotations

import json
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.pipeline import OutcomeKind, RunRequest
from tests.conftest import git, py
from tests.fakes.action_env import PLANTED_KEY, PLANTED_TOKEN, bare_remote, comment_event, make_job
from tests.fakes.action_env import REPO as ACTION_REPO
from tests.fakes.app_env import REPO, Worlds, finished
from tests.fakes.github_app import comment_payload, post_event, serve, wait_for
from tests.fakes.github_fake import FakeGitHub
from webhooks import create_app

CALC = "def add(a, b):\n    # TODO: implement\n    return 0\n"
EDIT = 'print(edit_file("calc.py", "    # TODO: implement\\n    return 0\\n", "    return a + b\\n"))'
SCENARIOS = {
    # name: (the root's replies, the outcome kind, whether a patch file is left)
    "change": ([py(EDIT + '\nFINAL("fixed")')], OutcomeKind.PR, True),
    "no-change": ([py('FINAL("nothing to do")')], OutcomeKind.ANSWER, False),  # the answer is the result
    "fails-after-edit": ([py(EDIT)], OutcomeKind.ERROR, True),  # then the script runs out
}
# What "delivered" is for each front end when the run made a change.
DELIVERED = {"cli": OutcomeKind.PATCH, "app": OutcomeKind.PR, "action": OutcomeKind.PR}


@dataclass
class Ran:
    kind: str
    results_dir: Path
    run_id: str
    said: str  # what the requester was told last (status comment, step annotation, stderr)


def _cli(tmp_path: Path, make_repo, write_script, make_config, replies: list[str], monkeypatch) -> Ran:
    from bot import cli, cli_run

    repo, _ = make_repo({"calc.py": CALC})
    config = make_config(write_script([{"task": ".", "responses": replies}]))
    results = Path(config.results_dir)
    seen: list = []
    real_run = cli_run.run_cli

    def spy(*args, **kwargs):  # keeps the outcome `rlm run` got, to compare with the others'
        seen.append(real_run(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(cli_run, "run_cli", spy)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = cli.execute(
            config,
            str(repo),
            "fix add",
            branch=None,
            commit=None,
            output=tmp_path / "out.patch",
            results_dir=results,
            title="rlm run",
            quiet=True,
        )
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    (outcome,) = seen
    assert code == (0 if outcome.result.status == "completed" else 1)
    if outcome.kind is OutcomeKind.PATCH:
        assert "+    return a + b" in (tmp_path / "out.patch").read_text()
    return Ran(outcome.kind.value, results, outcome.run_id, outcome.message)


def _app(tmp_path: Path, make_repo, write_script, make_config, replies: list[str], monkeypatch) -> Ran:
    worlds = Worlds(tmp_path, make_repo, write_script, make_config)
    try:
        env = worlds([{"task": ".", "responses": replies}])
        app = create_app(env.server)
        store = app.extensions["rlm"].store
        with serve(app) as url:
            resp = post_event(url, "issue_comment", comment_payload("/rlm fix add", clone_url=str(env.bare)))
            job = wait_for(lambda: finished(store, resp.json()["job"]), what="the job to finish")
        app.extensions["rlm"].pool.stop()
        (status, *_) = env.fake.issue_comments(REPO, 7)
        stored = RunRequest.from_payload(job.request)  # the payload is the request, verbatim
        assert stored.to_payload() == job.request
        return Ran(job.outcome, Path(env.server.worker.results_dir), stored.run_id, status["body"])
    finally:
        worlds.close()


def _action(tmp_path: Path, make_repo, write_script, make_config, replies: list[str], monkeypatch) -> Ran:
    src, _ = make_repo({"calc.py": CALC}, name="src")
    remote = bare_remote(src, tmp_path)
    fake = FakeGitHub()
    fake.add_repo(ACTION_REPO, remote.removeprefix("file://"))
    fake.grant(ACTION_REPO, "Codertocat", "admin")
    fake.start()
    try:
        script = write_script([{"task": ".", "responses": replies}])
        job = make_job(tmp_path, fake.url, script, "issue_comment", comment_event("/rlm fix add", remote))
        proc = job.run_here()
        out = job.outputs()
        assert PLANTED_KEY not in proc.stderr and PLANTED_TOKEN not in proc.stderr
        directory = Path(out["results-file"]).parent
        run_id = Path(out["results-file"]).stem
        kinds = {"pr-created": "pr", "no-changes": "no_changes", "answered": "answer", "failed": "error"}
        return Ran(kinds.get(out["conclusion"], out["conclusion"]), directory, run_id, proc.stdout)
    finally:
        fake.stop()


ADAPTERS = {"cli": _cli, "app": _app, "action": _action}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_same_scenario_same_outcome_through_every_adapter(
    adapter, scenario, tmp_path, make_repo, write_script, make_config, monkeypatch
):
    replies, kind, leaves_patch = SCENARIOS[scenario]
    if kind is OutcomeKind.PR:
        kind = DELIVERED[adapter]
    ran = ADAPTERS[adapter](tmp_path, make_repo, write_script, make_config, list(replies), monkeypatch)
    assert ran.kind == kind.value, ran.said
    patch = ran.results_dir / f"{ran.run_id}.patch"
    assert patch.is_file() == leaves_patch
    if leaves_patch:
        assert "+    return a + b" in patch.read_text()
        # It applies to the base commit: the change can be recovered from the file alone.
        work = tmp_path / "apply"
        subprocess.run(["git", "init", "-q", str(work)], check=True)
        (work / "calc.py").write_text(CALC)
        git(work, "apply", "--check", str(patch))
    results = json.loads((ran.results_dir / f"{ran.run_id}.json").read_text())
    assert results["run_id"] == ran.run_id
    if scenario == "fails-after-edit":
        assert f"{ran.run_id}.patch" in ran.said  # the requester is told where the change is


def test_the_request_is_the_job_payload_and_keeps_what_it_does_not_know():
    intake = {
        "repo": "o/r",
        "number": 7,
        "requester": "octocat",
        "requester_id": 99,
        "task": "fix it",
        "clone_url": "https://github.example/o/r.git",
        "comment_id": 5,
        "review_comment": False,
        "is_pull": False,
        "html_url": "https://github.example/o/r/issues/7",
        "added_later": {"x": 1},
    }
    request = RunRequest.from_payload(json.loads(json.dumps(intake)))
    assert (request.repo, request.number, request.task, request.run_id) == ("o/r", 7, "fix it", None)
    request.run_id, request.pushed_branch = "20260101-000000-abcdef", "rlm/7-abcdef"
    payload = json.loads(json.dumps(request.to_payload()))
    assert payload["added_later"] == {"x": 1} and payload["pushed_branch"] == "rlm/7-abcdef"
    assert RunRequest.from_payload(payload) == request
    assert request.source == "o/r#7" and RunRequest(task="t", clone_url=".").source is None
