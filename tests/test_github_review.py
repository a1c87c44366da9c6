"""One review from the agents' findings (bot/github/review.py) and the check run client
(bot/github/checks.py), against the fake GitHub, which refuses a comment off the diff with 422."""

from __future__ import annotations

import pytest

from bot.github import checks, review
from bot.github.api import GitHubAPI
from bot.rlm.findings import Finding
from tests.fakes.github_fake import FakeGitHub

REPO = "octo/demo"
# calc.py: lines 1-3 context/added on the right side (hunk +1,4), then a second hunk at 20-22.
PATCH = (
    "@@ -1,3 +1,4 @@\n"
    " def add(a, b):\n"
    "-    return a - b\n"
    "+    return a + b\n"
    "+\n"
    " \n"
    "@@ -20,2 +21,2 @@ def mul(a, b):\n"
    "-    x = 1\n"
    "+    x = 2\n"
    "     return x\n"
    "\\ No newline at end of file"
)
FILES = [
    {"filename": "calc.py", "status": "modified", "patch": PATCH},
    {"filename": "logo.png", "status": "added"},  # binary: no patch, no commentable line
]


@pytest.fixture
def fake(tmp_path):
    fake = FakeGitHub().start()
    fake.add_repo(REPO, str(tmp_path))
    fake.pulls[(REPO, 7)] = {"number": 7, "head": {"sha": "c" * 40}}
    fake.pull_files[(REPO, 7)] = list(FILES)
    yield fake
    fake.stop()


def api_of(fake: FakeGitHub) -> GitHubAPI:
    return GitHubAPI("t-0123456789", fake.url, sleep=lambda s: None, max_tries=2)


def test_hunk_lines_are_the_right_side_of_each_hunk():
    assert review.hunk_lines(PATCH) == {1, 2, 3, 4, 21, 22}
    assert review.diff_lines(FILES) == {"calc.py": {1, 2, 3, 4, 21, 22}, "logo.png": set()}


def test_plan_keeps_diff_lines_inline_moves_the_rest_and_drops_duplicates():
    findings = [
        Finding("calc.py", 2, "Good catch, but `b` may be None.", "    return a + (b or 0)"),
        Finding("calc.py", 2, "good catch,  but `b` may be None.", "    return a + (b or 0)", agent="root.2"),
        Finding("calc.py", 10, "Unchanged helper is now wrong."),
        Finding("logo.png", 1, "Huge image."),
        Finding("calc.py", 21, "Why 2?"),
    ]
    plan = review.plan_review(findings, FILES, "Looks mostly right.", footer="**Agent tree** …")
    assert plan.comments == [
        {
            "path": "calc.py",
            "line": 2,
            "side": "RIGHT",
            "body": "Good catch, but `b` may be None.\n\n```suggestion\n    return a + (b or 0)\n```",
        },
        {"path": "calc.py", "line": 21, "side": "RIGHT", "body": "Why 2?"},
    ]
    assert [(f.path, f.line) for f in plan.outside] == [("calc.py", 10), ("logo.png", 1)]
    assert plan.body.startswith("Looks mostly right.\n\n" + review.REVIEW_OUTSIDE_HEADER)
    assert "- `calc.py` line 10: Unchanged helper is now wrong." in plan.body
    assert review.REVIEW_COUNT.format(inline=2, outside=2) in plan.body
    assert plan.body.endswith("**Agent tree** …")


def test_a_suggestion_holding_a_fence_gets_a_longer_one():
    body = review.comment_body(Finding("a.md", 1, "Fix the fence.", "```python\nx\n```"))
    assert body.endswith("````suggestion\n```python\nx\n```\n````")


def test_one_review_is_posted_with_event_comment_and_no_422(fake):
    findings = [Finding("calc.py", 3, "Trailing blank line."), Finding("calc.py", 9, "Off the diff.")]
    plan = review.plan_review(findings, FILES, "Summary.")
    posted = review.post_review(api_of(fake), REPO, 7, "c" * 40, plan, "Summary.")
    assert (posted.inline, posted.outside, posted.fell_back) == (1, 1, False)
    [call] = [c for c in fake.writes()]
    assert (call.method, call.path) == ("POST", f"/repos/{REPO}/pulls/7/reviews")
    assert call.body == {
        "commit_id": "c" * 40,
        "body": plan.body,
        "event": "COMMENT",
        "comments": [{"path": "calc.py", "line": 3, "side": "RIGHT", "body": "Trailing blank line."}],
    }
    assert posted.url and posted.url.endswith(f"#pullrequestreview-{fake.reviews[0]['id']}")


def test_when_github_refuses_the_comments_every_finding_goes_into_the_body(fake):
    findings = [Finding("calc.py", 3, "Trailing blank line.")]
    plan = review.plan_review(findings, FILES, "Summary.")
    fake.pull_files[(REPO, 7)] = []  # the pull request moved: line 3 is no longer in its diff
    posted = review.post_review(api_of(fake), REPO, 7, "c" * 40, plan, "Summary.")
    assert posted.fell_back and (posted.inline, posted.outside) == (0, 1)
    first, second = [c.body for c in fake.writes()]
    assert first["comments"] and second["comments"] == []
    assert "- `calc.py` line 3: Trailing blank line." in second["body"]
    assert "GitHub refused the inline comments" in second["body"]
    assert len(fake.reviews) == 1


def test_check_run_goes_from_in_progress_to_completed_with_batched_annotations(fake):
    said: list[str] = []
    run = checks.CheckRun(
        api_of(fake), REPO, "c" * 40, details_url="http://bot.example/runs/t/", on_off=said.append
    )
    run.show("Working", "tree 1")
    run.show("Working", "tree 2")
    notes = [
        checks.annotation(Finding("calc.py", i, f"n{i}", "x" if i == 1 else None)) for i in range(1, 121)
    ]
    run.complete("neutral", "Reviewed", "the summary", notes)
    calls = [(c.method, c.path.rsplit("/", 1)[-1]) for c in fake.writes()]
    assert calls == [("POST", "check-runs")] + [("PATCH", str(run.id))] * 4
    create, *updates = [c.body for c in fake.writes()]
    assert create == {
        "name": "rlm-bot",
        "head_sha": "c" * 40,
        "status": "in_progress",
        "output": {"title": "Working", "summary": "tree 1"},
        "details_url": "http://bot.example/runs/t/",
    }
    assert updates[1]["status"] == "completed" and updates[1]["conclusion"] == "neutral"
    assert [len(u["output"].get("annotations", [])) for u in updates] == [0, 50, 50, 20]
    stored = fake.check_runs[run.id]
    assert stored["status"] == "completed" and len(stored["annotations"]) == 120
    assert stored["annotations"][0] == {
        "path": "calc.py",
        "start_line": 1,
        "end_line": 1,
        "annotation_level": "warning",
        "title": checks.ANNOTATION_TITLE,
        "message": "n1",
        "raw_details": "x",
    }
    assert said == []


def test_without_the_checks_permission_the_run_is_told_once_and_no_more_calls_are_made(fake):
    fake.fail(
        "POST", rf"/repos/{REPO}/check-runs", 403, times=5, message="Resource not accessible by integration"
    )
    said: list[str] = []
    run = checks.CheckRun(api_of(fake), REPO, "c" * 40, on_off=said.append)
    run.show("Working", "tree")
    run.show("Working", "tree 2")
    run.complete("success", "Done", "summary")
    assert said == [checks.CHECK_OFF]
    assert [(c.method, c.path) for c in fake.writes()] == [("POST", f"/repos/{REPO}/check-runs")]


def test_conclusions_follow_the_outcome():
    from bot.pipeline import OutcomeKind

    assert checks.conclusion(OutcomeKind.PR) == "success"
    assert checks.conclusion(OutcomeKind.ANSWER) == "neutral"
    assert checks.conclusion(OutcomeKind.NO_CHANGES) == "neutral"
    assert checks.conclusion(OutcomeKind.REVIEW) == "neutral"
    assert checks.conclusion(OutcomeKind.CANCELLED) == "cancelled"
    assert checks.conclusion(OutcomeKind.ERROR) == "failure"
    assert checks.conclusion(OutcomeKind.BUDGET) == "failure"


def test_triggers_from_rlm_yml():
    from bot.github.repo_config import repo_settings
    from bot.github.triggers import (
        BAD_ASSIGN,
        UNKNOWN_TRIGGER,
        TriggerKind,
        Triggers,
        parse_triggers,
        trigger_task,
    )
    from bot.rlm.config import load_config

    text = "triggers:\n  label: RLM\n  assign: true\nrlm:\n  max_depth: 1\n"
    triggers, problems = parse_triggers(text)
    assert triggers == Triggers("RLM", True) and problems == []
    assert triggers.starts(TriggerKind.LABEL, "rlm", None) and not triggers.starts(
        TriggerKind.LABEL, "bug", None
    )
    assert triggers.starts(TriggerKind.ASSIGN, "rlm-bot[bot]", "rlm-bot[bot]")
    assert not triggers.starts(TriggerKind.ASSIGN, "octocat", "rlm-bot[bot]")
    assert not Triggers().starts(TriggerKind.LABEL, "rlm", None)
    assert parse_triggers("triggers:\n  assign: yes please\n  comment: push\n")[1] == [
        UNKNOWN_TRIGGER.format(key="comment"),
        BAD_ASSIGN,
    ]
    # The config stage leaves `triggers` to this module: no "unknown section" note.
    config = load_config(None, {}, environ={})
    assert (
        repo_settings(config, text).problems == [] and repo_settings(config, text).config.rlm.max_depth == 1
    )
    assert trigger_task("Fix the total", "It is off by one.") == "Fix the total\n\nIt is off by one."
    assert trigger_task("Title only", None) == "Title only"
