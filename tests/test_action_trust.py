"""Steps that must end before any model call: each gives its message, its conclusion, and runs nothing.

The model is a scripted model whose script file does not exist, so any model call would fail the
run; the tests also check that no run directory (results, events) was ever created. The three
cases the issue names run the step as a subprocess; the other refusals run it in this process.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from fakes.action_env import PLANTED_KEY, REPO, Job, assert_no_secret, comment_event, example, make_job
from fakes.github_fake import FakeGitHub

from action import messages as m
from bot.github.commands import help_text
from bot.github.permissions import not_allowed

CLONE_URL = "file:///nonexistent/never-fetched.git"


@pytest.fixture
def fake():
    github = FakeGitHub()
    github.add_repo(REPO, "/nonexistent/never-fetched.git")
    github.grant(REPO, "Codertocat", "admin")
    github.grant(REPO, "stranger", "read")
    github.start()
    yield github
    github.stop()


@pytest.fixture
def absent_script(tmp_path: Path) -> Path:
    return tmp_path / "never-written-script.yaml"


def nothing_ran(job: Job, proc: subprocess.CompletedProcess) -> None:
    assert not (job.tmp / "runner" / "rlm-bot" / "runs").exists()
    assert "llm_call" not in proc.stdout and "rollout" not in proc.stdout
    assert job.outputs()["agents"] == "0" and job.outputs()["pr-url"] == ""
    assert_no_secret(proc, job)


def comment_job(tmp_path: Path, fake: FakeGitHub, script: Path, body: str, **kwargs) -> Job:
    login = kwargs.pop("login", "Codertocat")
    user_type = kwargs.pop("user_type", "User")
    event = comment_event(body, CLONE_URL, login=login, user_type=user_type)
    return make_job(tmp_path, fake.url, script, "issue_comment", event, **kwargs)


def test_commenter_without_write_permission_is_refused(tmp_path, fake, absent_script):
    job = comment_job(tmp_path, fake, absent_script, "/rlm fix everything", login="stranger")
    proc = job.run()
    assert proc.returncode == 0
    message = m.NOT_PERMITTED.format(user="stranger", permission="read", repo=REPO)
    assert f"::warning title=rlm-bot::{message}" in proc.stdout
    assert job.outputs()["conclusion"] == m.NOT_ALLOWED
    assert message in job.summary()
    (reply,) = fake.issue_comments(REPO, 1)
    assert reply["body"] == not_allowed("stranger", "/rlm")
    assert not fake.reactions
    nothing_ran(job, proc)


def test_comment_without_command_does_nothing(tmp_path, fake, absent_script):
    job = comment_job(tmp_path, fake, absent_script, "You are totally right! I'll get this fixed right away.")
    proc = job.run()
    assert proc.returncode == 0
    assert job.outputs()["conclusion"] == m.SKIPPED
    assert f"::notice title=rlm-bot::{m.NO_COMMAND.format(prefix='/rlm')}" in proc.stdout
    assert fake.calls == []  # not even a permission check
    nothing_ran(job, proc)


def test_custom_trigger_word(tmp_path, fake, absent_script):
    job = comment_job(tmp_path, fake, absent_script, "/rlm fix it", trigger="/agent")
    proc = job.run_here()
    assert job.outputs()["conclusion"] == m.SKIPPED
    assert m.NO_COMMAND.format(prefix="/agent") in job.summary()
    nothing_ran(job, proc)


def test_missing_llm_key_stops_before_any_model_call(tmp_path, fake, absent_script):
    model = "openrouter/google/gemini-3-flash-preview"
    job = comment_job(tmp_path, fake, absent_script, "/rlm fix everything", llm_api_key=None, model=model)
    proc = job.run()
    assert proc.returncode == 1
    assert job.outputs()["conclusion"] == m.MISSING_KEY
    message = m.MISSING_LLM_KEY.format(model=model)
    assert f"::error title=rlm-bot::{message}" in proc.stdout
    assert message in job.summary()
    (reply,) = fake.issue_comments(REPO, 1)
    assert message in reply["body"] and f"https://github.com/{REPO}/actions/runs/4242" in reply["body"]
    nothing_ran(job, proc)


def test_missing_daytona_key(tmp_path, fake, absent_script):
    event = example("workflow_dispatch")
    job = make_job(
        tmp_path, fake.url, absent_script, "workflow_dispatch", event, prompt="do it", sandbox="daytona"
    )
    proc = job.run_here()
    assert proc.returncode == 1
    assert job.outputs()["conclusion"] == m.MISSING_KEY
    assert m.MISSING_DAYTONA_KEY in job.summary()
    nothing_ran(job, proc)


def test_bot_comments_are_ignored(tmp_path, fake, absent_script):
    job = comment_job(
        tmp_path, fake, absent_script, "/rlm fix it", login="github-actions[bot]", user_type="Bot"
    )
    proc = job.run_here()
    assert job.outputs()["conclusion"] == m.SKIPPED
    assert m.IGNORED_BOT.format(user="github-actions[bot]") in job.summary()
    assert fake.calls == []
    nothing_ran(job, proc)


def test_help_is_answered_without_a_run(tmp_path, fake, absent_script):
    job = comment_job(tmp_path, fake, absent_script, "/rlm help")
    proc = job.run_here()
    assert job.outputs()["conclusion"] == m.SKIPPED
    (reply,) = fake.issue_comments(REPO, 1)
    assert reply["body"] == help_text("/rlm")
    nothing_ran(job, proc)


def test_manual_run_without_prompt_is_an_input_error(tmp_path, fake, absent_script):
    job = make_job(tmp_path, fake.url, absent_script, "workflow_dispatch", example("workflow_dispatch"))
    proc = job.run_here()
    assert proc.returncode == 1
    assert job.outputs()["conclusion"] == m.INVALID_INPUT
    assert m.NO_PROMPT.format(event="workflow_dispatch", prefix="/rlm") in job.summary()
    nothing_ran(job, proc)


def test_bad_input_value_names_the_input(tmp_path, fake, absent_script):
    job = comment_job(tmp_path, fake, absent_script, "/rlm fix it", max_depth="deep")
    proc = job.run_here()
    assert proc.returncode == 1
    assert job.outputs()["conclusion"] == m.INVALID_INPUT
    assert "input 'max-depth' must be a whole number (got 'deep')." in proc.stdout
    nothing_ran(job, proc)


def test_key_from_job_environment_is_masked_too(tmp_path, fake, absent_script):
    job = comment_job(tmp_path, fake, absent_script, "/rlm fix it", login="stranger", llm_api_key=None)
    job.extra_env["LLM_API_KEY"] = PLANTED_KEY
    proc = job.run_here()
    assert f"::add-mask::{PLANTED_KEY}" in proc.stdout
    assert job.outputs()["conclusion"] == m.NOT_ALLOWED
    nothing_ran(job, proc)


def test_review_comment_by_a_reader_is_refused_on_its_pull_request(tmp_path, fake, absent_script):
    event = example("pull_request_review_comment", "created")
    event["comment"]["body"] = "/rlm use more emoji"
    event["comment"]["user"]["login"] = event["sender"]["login"] = "stranger"
    job = make_job(tmp_path, fake.url, absent_script, "pull_request_review_comment", event)
    proc = job.run_here()
    assert job.outputs()["conclusion"] == m.NOT_ALLOWED
    (reply,) = fake.issue_comments(REPO, 2)  # the pull request's conversation
    assert reply["body"] == not_allowed("stranger", "/rlm")
    nothing_ran(job, proc)


@pytest.mark.parametrize("action", ["edited", "deleted"])
def test_edited_and_deleted_comments_start_nothing(tmp_path, fake, absent_script, action):
    event = example("issue_comment", action)
    event["comment"]["body"] = "/rlm fix everything"
    job = make_job(tmp_path, fake.url, absent_script, "issue_comment", event)
    proc = job.run_here()
    assert job.outputs()["conclusion"] == m.SKIPPED
    assert m.NOT_CREATED.format(action=action) in job.summary()
    assert fake.calls == []
    nothing_ran(job, proc)


def test_invalid_config_file_is_an_input_error(tmp_path, fake, absent_script):
    job = comment_job(tmp_path, fake, absent_script, "/rlm fix it", config="rlm.yml")
    (tmp_path / "workspace").mkdir()
    (tmp_path / "workspace" / "rlm.yml").write_text("rlm:\n  max_depht: 2\n")
    proc = job.run_here()
    assert proc.returncode == 1
    assert job.outputs()["conclusion"] == m.INVALID_INPUT
    assert "unknown key 'rlm.max_depht'" in job.summary()
    nothing_ran(job, proc)
