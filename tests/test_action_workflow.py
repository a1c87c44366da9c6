"""The runner protocol pieces in-process: outputs, masks, groups, annotations, events, context."""

from __future__ import annotations

import io
import json

from fakes.action_env import parse_outputs

from action import messages as m
from action.agent_logs import AgentLogs
from action.context import ActionContext
from action.token_permissions import missing_permission
from action.workflow import Runner


def test_outputs_survive_newlines_and_delimiter_lookalikes(tmp_path):
    path = tmp_path / "out"
    runner = Runner(str(path), None, out=io.StringIO())
    tricky = "line one\nEOF\nconclusion<<EOF\nlast"
    runner.set_outputs({"pr-url": "", "results-file": tricky, "conclusion": "pr-created"})
    assert parse_outputs(path.read_text()) == {
        "pr-url": "",
        "results-file": tricky,
        "conclusion": "pr-created",
    }


def test_masks_every_line_of_a_multiline_secret():
    out = io.StringIO()
    Runner(None, None, out=out).add_mask("first-line-secret\nsecond-line-secret", "", None)
    assert out.getvalue() == "::add-mask::first-line-secret\n::add-mask::second-line-secret\n"


def test_annotations_cannot_smuggle_a_second_command():
    out = io.StringIO()
    Runner(None, None, out=out).error("bad\n::add-mask::x%", title="a:b,c")
    assert out.getvalue() == "::error title=a%3Ab%2Cc::bad%0A::add-mask::x%25\n"


def test_agent_log_group_pauses_command_processing():
    out = io.StringIO()
    Runner(None, None, out=out).group_block("agent root", "model says\n::set-output name=x::y\n::endgroup::")
    lines = out.getvalue().splitlines()
    assert lines[0] == "::group::agent root"
    assert lines[1].startswith("::stop-commands::")
    token = lines[1].split("::")[-1]
    assert lines[2:5] == ["model says", "::set-output name=x::y", "::endgroup::"]
    assert lines[5] == f"::{token}::" and lines[6] == "::endgroup::"
    assert len(token) > 20


def test_missing_permission_names_the_entry():
    text = "GitHub answered POST /repos/o/r/git/refs with 403 Resource not accessible by integration."
    assert "`contents: write`" in missing_permission(text)
    text = (
        "GitHub answered POST /repos/o/r/issues/3/comments with 403 Resource not accessible by integration."
    )
    assert "`issues: write`" in missing_permission(text)
    text = "GitHub answered POST /repos/o/r/pulls with 403 GitHub Actions is not permitted to create or approve pull requests."
    assert missing_permission(text) == m.ACTIONS_MAY_NOT_CREATE_PRS
    assert missing_permission("GitHub answered GET /repos/o/r/pulls/9 with 404 Not Found.") is None
    assert missing_permission("could not fetch the repository") is None


def test_clone_url_from_payload_for_this_repo_else_server_url(tmp_path):
    event = tmp_path / "event.json"
    env = {
        "GITHUB_EVENT_NAME": "schedule",
        "GITHUB_REPOSITORY": "o/r",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_SERVER_URL": "https://ghe.example",
        "GITHUB_RUN_ID": "7",
    }
    event.write_text(
        json.dumps({"repository": {"full_name": "O/R", "clone_url": "https://ghe.example/O/R.git"}})
    )
    ctx = ActionContext.from_env(env)
    assert ctx.clone_url == "https://ghe.example/O/R.git"
    assert ctx.run_url == "https://ghe.example/o/r/actions/runs/7"
    event.write_text(
        json.dumps({"repository": {"full_name": "other/repo", "clone_url": "https://x/other.git"}})
    )
    assert ActionContext.from_env(env).clone_url == "https://ghe.example/o/r.git"
    event.write_text("{}")
    assert ActionContext.from_env(env).clone_url == "https://ghe.example/o/r.git"


def test_agent_logs_keep_untrusted_text_out_of_command_position():
    out = io.StringIO()
    logs = AgentLogs(Runner(None, None, out=out))
    evil = "x\n::add-mask::oops\n::error::forged"
    for event in (
        {"type": "agent_started", "agent": "root", "depth": 0, "task": evil},
        {"type": "llm_call", "agent": "root", "iteration": 1, "response": evil, "usage": {"cost_usd": 0.5}},
        {"type": "code_executed", "agent": "root", "iteration": 1, "block": 0, "stdout": evil},
        {"type": "agent_finished", "agent": "root", "status": "error", "error": evil},
        {"type": "rollout_finished", "status": "error", "error": evil},
    ):
        logs.event(event)
    lines = out.getvalue().splitlines()
    resume = None
    for line in lines:
        if resume:  # inside ::stop-commands:: nothing is obeyed until the resume token
            resume = None if line == resume else resume
            continue
        if line.startswith("::stop-commands::"):
            resume = f"::{line.split('::')[-1]}::"
            continue
        assert not line.startswith(("::add-mask::", "::error::")), line
    assert any(line.startswith("::group::❌ agent root · depth 0 · error · 1 iterations") for line in lines)


def test_agent_logs_group_title_counts_come_from_the_fold():
    out = io.StringIO()
    logs = AgentLogs(Runner(None, None, out=out))
    for event in (
        {"type": "agent_started", "agent": "root.1", "depth": 1, "task": "t"},
        {"type": "llm_call", "agent": "root.1", "iteration": 1, "usage": {"cost_usd": 0.25}},
        {"type": "llm_call", "agent": "root.1", "iteration": 2, "usage": {"cost_usd": 0.5}},
        {"type": "agent_finished", "agent": "root.1", "status": "completed", "result": "done"},
    ):
        logs.event(event)
    folded = logs.results["agents"][0]
    assert folded["depth"] == 1 and len(folded["iterations"]) == 2 and folded["usage"]["cost_usd"] == 0.75
    title = next(line for line in out.getvalue().splitlines() if line.startswith("::group::"))
    assert "agent root.1 · depth 1 · completed · 2 iterations · $0.75" in title, title
