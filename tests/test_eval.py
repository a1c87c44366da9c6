"""`rlm eval`: the shipped task set judged for real (real bundles, sandboxes, scripted model through
litellm, the upstream tests), and the harness's refusals (bad tasks files, invalid tasks)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bot.cli import app
from bot.evaluate import TasksError, load_tasks, parse_variant
from bot.evaluate.command import EXIT_NOT_JUDGED
from bot.evaluate.report import RESOLVED_MARK
from bot.evaluate.runner import INVALID_TASK, JUDGE_FAILED, TaskOutcome

TASKS = Path(__file__).resolve().parent.parent / "bench" / "tasks"
TASK = "more-itertools-1001"


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    config = {
        "sandbox": {"cache_dir": str(tmp_path / "cache")},
        "results_dir": str(tmp_path / "results"),
        "rlm": {"global_timeout": 120},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _eval(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["eval", *args])
    return result.exit_code, result.stdout, result.stderr


def _report(out: Path) -> dict[tuple[str, str], dict]:
    data = json.loads((out / "report.json").read_text())
    return {(r["task"], r["variant"]): r for r in data["results"]}


def test_the_real_fix_resolves_and_a_wrong_patch_does_not(tmp_path: Path, config_file: Path):
    """The shipped task, its scripted answer (the upstream fix) and a deliberately wrong one, side
    by side as two variants; both patches judged by the upstream test in a fresh sandbox."""
    out = tmp_path / "report"
    wrong = TASKS / TASK / "wrong.yaml"
    code, stdout, stderr = _eval(
        str(TASKS / "tasks.yaml"),
        "--task",
        TASK,
        "-c",
        str(config_file),
        "--model",
        "scripted",
        "--variant",
        "fixed",
        "--variant",
        f"wrong=model.name=scripted/{wrong}",
        "--out",
        str(out),
        "-q",
    )
    assert code == 0, stderr
    report = _report(out)
    fixed, wrong_result = report[(TASK, "fixed")], report[(TASK, "wrong")]
    assert fixed["status"] == "resolved" and fixed["resolved"] is True
    assert wrong_result["status"] == "unresolved" and wrong_result["resolved"] is False
    # Before the patch the upstream test fails for the issue's reason; after the real fix it passes.
    assert "test_reversed_is_none" in fixed["before"]["commands"][0]["output"]
    assert fixed["judge"]["commands"][0]["exit_code"] == 0 and fixed["judge"]["applied"] is True
    assert wrong_result["judge"]["applied"] is True and wrong_result["judge"]["commands"][0]["exit_code"] == 1
    assert wrong_result["message"] == JUDGE_FAILED.format(
        command="python3 -m unittest tests.test_more.LastTests", how="exited 1"
    )
    assert f"{TASK} [wrong]: not resolved: {wrong_result['message']}" in stderr
    # Each run went through the pipeline: its trace and its patch are beside the report.
    for result in (fixed, wrong_result):
        assert Path(result["results"]).is_file() and Path(result["patch"]).is_file()
        assert result["agents"] == 1 and result["iterations"] >= 2 and result["tokens"] > 0
    assert "getattr(iterable, '__reversed__', None)" in Path(fixed["patch"]).read_text()
    assert "tests/test_more.py" not in Path(fixed["patch"]).read_text()  # the judge's file is not the agent's
    # The table: one row per run, then the totals per variant.
    rows = [line.split() for line in stdout.splitlines()]
    assert [TASK, "fixed", "yes"] == rows[2][:3] and [TASK, "wrong", "no"] == rows[3][:3]
    assert ["TOTAL", "fixed", "1/1"] == rows[5][:3] and ["TOTAL", "wrong", "0/1"] == rows[6][:3]
    assert "| more-itertools-1001 | fixed | yes |" in (out / "report.md").read_text()


def test_a_task_whose_tests_already_pass_is_flagged_and_a_missing_tool_is_a_judge_error(
    tmp_path: Path, config_file: Path
):
    for name in ("repo.bundle", "issue.md", "fix.yaml"):
        shutil.copy(TASKS / TASK / name, tmp_path / name)
    commit = next(t.commit for t in load_tasks(TASKS / "tasks.yaml").tasks if t.name == TASK)
    tasks = {
        "tasks": [
            {  # FirstTests pass on the base commit: they cannot tell a fix apart
                "name": "passes-before",
                "repo": "repo.bundle",
                "commit": commit,
                "issue_file": "issue.md",
                "script": "fix.yaml",
                "judge": {"commands": ["python3 -m unittest tests.test_more.FirstTests"]},
            },
            {
                "name": "no-such-tool",
                "repo": "repo.bundle",
                "commit": commit,
                "issue_file": "issue.md",
                "script": "fix.yaml",
                "judge": {"commands": ["python3 -m no_such_test_runner_here"]},
            },
        ]
    }
    (tmp_path / "tasks.yaml").write_text(yaml.safe_dump(tasks, sort_keys=False))
    out = tmp_path / "report"
    code, stdout, stderr = _eval(
        str(tmp_path / "tasks.yaml"), "-c", str(config_file), "--model", "scripted", "--out", str(out), "-q"
    )
    assert code == EXIT_NOT_JUDGED
    report = _report(out)
    invalid, broken = report[("passes-before", "default")], report[("no-such-tool", "default")]
    assert invalid["status"] == str(TaskOutcome.INVALID) and invalid["message"] == INVALID_TASK
    assert invalid["before"]["verdict"] == "pass" and invalid["run_id"] is None  # no model was called
    assert broken["status"] == str(TaskOutcome.JUDGE_ERROR) and "could not run" in broken["message"]
    assert broken["run_id"] is None
    assert RESOLVED_MARK[TaskOutcome.INVALID] in stdout and RESOLVED_MARK[TaskOutcome.JUDGE_ERROR] in stdout
    assert f"passes-before [default]: invalid task: {INVALID_TASK}" in stderr
    assert not (out / "runs").exists() or not list((out / "runs").glob("*.json"))


BAD_FILES = [
    ("tasks: []\n", "a non-empty 'tasks' list"),
    (
        "tasks:\n  - name: a\n    repo: https://example.com/r.git\n    commit: abcdef1\n",
        "line 2: task a: the field 'judge' is required",
    ),
    (
        "tasks:\n  - name: a\n    repo: https://example.com/r.git\n    commit: abcdef1\n    judge: {commands: [x]}\n    colour: red\n",
        "line 6: task a: 'colour' is not a known field",
    ),
    (
        "tasks:\n  - name: a\n    repo: https://example.com/r.git\n    commit: main\n    judge: {commands: [x]}\n",
        "line 4: task a: 'commit' must be a commit SHA",
    ),
    (
        "tasks:\n  - name: a\n    repo: missing.bundle\n    commit: abcdef1\n    judge: {commands: [x]}\n",
        "line 3: task a: 'repo' names",
    ),
    (
        "tasks:\n  - name: a\n    repo: https://example.com/r.git\n    commit: abcdef1\n    judge:\n      commands: [x]\n      timeout: -1\n",
        "line 7: task a: judge: 'timeout' must be a positive number",
    ),
    ("tasks:\n  - name: a\n    repo: [unclosed\n", "line 4: not valid YAML"),
]


@pytest.mark.parametrize("text, expected", BAD_FILES)
def test_a_malformed_tasks_file_is_one_sentence_naming_line_and_field(
    tmp_path: Path, text: str, expected: str
):
    path = tmp_path / "tasks.yaml"
    path.write_text(text)
    with pytest.raises(TasksError) as e:
        load_tasks(path)
    assert expected in str(e.value) and str(path) in str(e.value)


def test_the_command_refuses_a_bad_tasks_file_with_exit_2(tmp_path: Path):
    path = tmp_path / "tasks.yaml"
    path.write_text(BAD_FILES[1][0])
    code, _, stderr = _eval(str(path))
    assert code == 2
    assert "error:" in stderr and BAD_FILES[1][1] in stderr and "Traceback" not in stderr
    code, _, stderr = _eval(str(TASKS / "tasks.yaml"), "--task", "nope")
    assert code == 2 and "has no such task" in stderr
    code, _, stderr = _eval(str(TASKS / "tasks.yaml"), "--variant", "flat=rlm.max_depth=-1")
    assert code == 2 and "variant flat" in stderr and "max_depth" in stderr


def test_variants_from_the_command_line():
    assert parse_variant("flat=rlm.max_depth=0").overrides == {"rlm.max_depth": 0}
    spec = parse_variant("big=model.name=openai/gpt-4.1,sandbox.setup=[],rlm.max_cost_usd=2.5")
    assert spec.name == "big"
    assert spec.overrides == {"model.name": "openai/gpt-4.1", "sandbox.setup": [], "rlm.max_cost_usd": 2.5}
    assert parse_variant("default").overrides == {}
    for bad in ("=x=1", "v=rlm.max_depth"):
        with pytest.raises(TasksError):
            parse_variant(bad)


def test_the_shipped_task_set_is_complete_and_small():
    task_set = load_tasks(TASKS / "tasks.yaml")
    assert len(task_set.tasks) >= 3
    total = 0
    for task in task_set.tasks:
        bundle = Path(task.repo)
        assert bundle.suffix == ".bundle" and bundle.stat().st_size < 1_000_000
        total += sum(p.stat().st_size for p in bundle.parent.rglob("*") if p.is_file())
        assert task.script is not None and task.script.is_file() and task.judge.files
        assert task.issue.strip() and task.upstream["license"] == "MIT"
        for key in ("url", "issue", "base", "fix"):
            assert task.upstream[key], (task.name, key)
        # The scripted answer applies exactly the upstream fix kept beside it.
        fix = (bundle.parent / "fix.diff").read_text()
        assert fix in yaml.safe_load(task.script.read_text())[0]["responses"][1]
    assert total < 3_000_000


def test_the_judge_stops_a_hanging_command_and_refuses_a_patch_that_does_not_apply(tmp_path: Path):
    from bot.evaluate import judge
    from bot.evaluate.judge import Verdict
    from bot.evaluate.tasks import Judge
    from bot.rlm import load_config, prepare

    task = next(t for t in load_tasks(TASKS / "tasks.yaml").tasks if t.name == TASK)
    config = load_config(None, {"sandbox.cache_dir": str(tmp_path / "cache")}, environ={})
    prepared = prepare(config, task.repo, commit=task.commit)
    hanging = Judge(("(sleep 60; echo late) & sleep 60",), {}, timeout=2)
    result = judge(config, prepared, hanging, None)
    assert result.verdict is Verdict.FAIL and result.commands[0].exit_code is None
    assert "[timed out after 2" in result.commands[0].output and result.seconds < 30
    bad_patch = "--- a/no/such/file.py\n+++ b/no/such/file.py\n@@ -1 +1 @@\n-x\n+y\n"
    result = judge(config, prepared, task.judge, bad_patch)
    assert result.verdict is Verdict.FAIL and result.applied is False and not result.commands
    assert "no/such/file.py" in (result.error or "")
