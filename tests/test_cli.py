"""`rlm` as a user runs it: a real subprocess, real exit codes, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.cli_run import PATCH_NOT_WRITTEN
from bot.rlm import ConfigError, load_config
from tests.conftest import leftovers, py, run_dirs

RLM = [sys.executable, "-m", "bot"]


def rlm(*args: str, cwd: Path, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [*RLM, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def test_demo_runs_the_whole_pipeline(tmp_path):
    proc = rlm(
        "demo",
        "--results-dir",
        str(tmp_path / "results"),
        cwd=tmp_path,
        env={"XDG_CACHE_HOME": str(tmp_path / "xdg")},
    )
    assert proc.returncode == 0, proc.stderr
    assert "SCRIPTED DEMO" in proc.stderr
    assert "+    percent = min(max(percent, 0), 100)" in proc.stdout
    assert "6 agents" in proc.stderr and "status: completed" in proc.stderr
    results = list((tmp_path / "results").glob("*.json"))
    assert len(results) == 1
    data = json.loads(results[0].read_text())
    assert data["status"] == "completed" and data["totals"]["max_depth"] == 2


def test_run_writes_the_patch_to_a_file_and_exits_1_without_an_answer(make_repo, write_script, tmp_path):
    repo, _ = make_repo({"a.txt": "a\n"})
    good = write_script([{"task": "", "responses": [py('open("a.txt", "w").write("b\\n")\nFINAL("ok")')]}])
    out = tmp_path / "out.patch"
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    proc = rlm(
        "run",
        str(repo),
        "-p",
        "change a",
        "--model",
        f"scripted/{good}",
        "-o",
        str(out),
        "-q",
        "--results-dir",
        str(tmp_path / "r"),
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ok\n" and "+b" in out.read_text()  # the patch in the file, the answer on stdout
    bad = write_script([{"task": "", "responses": [py("x = 1")]}])
    proc = rlm(
        "run",
        str(repo),
        "-p",
        "x",
        "--model",
        f"scripted/{bad}",
        "-q",
        "--results-dir",
        str(tmp_path / "r"),
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 1
    assert "script exhausted" in proc.stderr and "Traceback" not in proc.stderr


def test_an_output_file_that_cannot_be_written_is_a_clear_failure(make_repo, write_script, tmp_path):
    repo, _ = make_repo({"a.txt": "a\n"})
    good = write_script([{"task": "", "responses": [py('open("a.txt", "w").write("b\\n")\nFINAL("ok")')]}])
    out = tmp_path / "missing" / "out.patch"
    proc = rlm(
        "run",
        str(repo),
        "-p",
        "change a",
        "--model",
        f"scripted/{good}",
        "-o",
        str(out),
        "-q",
        "--results-dir",
        str(tmp_path / "r"),
        cwd=tmp_path,
        env={"XDG_CACHE_HOME": str(tmp_path / "xdg")},
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, (
        proc.stderr
    )  # main: a traceback, then exit 0
    (saved,) = (tmp_path / "r").glob("*.patch")
    assert PATCH_NOT_WRITTEN.format(path=out, reason="No such file or directory") in proc.stderr
    assert str(saved) in proc.stderr and "+b" in saved.read_text()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("rlm:\n  max_deph: 2\n", "unknown key 'rlm.max_deph'; allowed here: max_sandboxes, max_iterations"),
        ("rlm:\n  max_depth: -1\n", "'rlm.max_depth' is invalid: input should be greater than or equal to 0"),
        ("rlm: [unclosed\n", "is not valid YAML at line"),
        ("- a\n- b\n", "must be a mapping of sections"),
        (
            "sandbox:\n  backend: docker\n",
            "'sandbox.backend' is invalid: input should be 'local' or 'daytona'",
        ),
    ],
)
def test_bad_config_exits_2_with_one_sentence(tmp_path, content, expected):
    config = tmp_path / "config.yaml"
    config.write_text(content)
    proc = rlm("run", str(tmp_path), "-p", "x", "-c", str(config), cwd=tmp_path)
    assert proc.returncode == 2
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("repo", "expected"),
    [
        ("/nonexistent/repo", "is neither a URL nor an existing directory"),
        ("http://127.0.0.1:9/nothing.git", "could not fetch http://127.0.0.1:9/nothing.git"),
        # a directory that is not a git repository: git's own words, found before any fetch
        ("{tmp}", "is not inside a git repository (git says: fatal: not a git repository"),
    ],
)
def test_unreachable_repo_exits_2(tmp_path, write_script, repo, expected):
    script = write_script([{"task": "", "responses": [py('FINAL("x")')]}])
    proc = rlm(
        "run",
        repo.format(tmp=tmp_path),
        "-p",
        "x",
        "--model",
        f"scripted/{script}",
        cwd=tmp_path,
        env={"XDG_CACHE_HOME": str(tmp_path / "xdg")},
    )
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr and "Traceback" not in proc.stderr


def test_missing_branch_and_commit_are_clear(make_repo, write_script, tmp_path):
    repo, _ = make_repo()
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    script = write_script([{"task": "", "responses": [py('FINAL("x")')]}])
    proc = rlm(
        "run", str(repo), "-p", "x", "-b", "nope", "--model", f"scripted/{script}", cwd=tmp_path, env=env
    )
    assert proc.returncode == 2 and "branch 'nope' does not exist" in proc.stderr
    proc = rlm(
        "run",
        str(repo),
        "-p",
        "x",
        "--commit",
        "abcdef12",
        "--model",
        f"scripted/{script}",
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 2 and "commit abcdef12 was not found" in proc.stderr


def test_sigint_cancels_the_tree_and_removes_every_sandbox(make_repo, write_script, tmp_path):
    repo, _ = make_repo()
    script = write_script(
        [
            {"task": "^Root", "responses": [py('rlm_query_batched(["Sleep 1", "Sleep 2"])')]},
            {"task": "^Sleep", "responses": [py("import subprocess\nsubprocess.run(['sleep', '300'])")]},
        ]
    )
    cache = tmp_path / "xdg"
    results = tmp_path / "r"
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    proc = subprocess.Popen(
        [
            *RLM,
            "run",
            str(repo),
            "-p",
            "Root",
            "--model",
            f"scripted/{script}",
            "--results-dir",
            str(results),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    events = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        files = list(results.glob("*.events.jsonl")) if results.exists() else []
        if files and files[0].read_text().count('"agent_started"') >= 3:
            events = files[0]
            break
        time.sleep(0.2)
    assert events is not None, "the children never started"
    time.sleep(1.0)  # let the children reach their sleep
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    data = json.loads(events.with_name(events.name.replace(".events.jsonl", ".json")).read_text())
    assert data["status"] == "cancelled"
    assert {a["status"] for a in data["agents"]} == {"cancelled"}
    assert leftovers(cache / "rlm-bot") == []


def test_config_layers_defaults_file_env_cli(tmp_path):
    assert load_config(None, environ={}).model.name == "openrouter/google/gemini-3-flash-preview"
    path = tmp_path / "c.yaml"
    path.write_text("rlm:\n  max_depth: 5\n  max_iterations: 7\nmodel:\n  name: from-file\n")
    cfg = load_config(
        path, {"rlm.max_iterations": 9}, environ={"RLM_RLM__MAX_DEPTH": "4", "RLM_MODEL__NAME": "env"}
    )
    assert (cfg.rlm.max_depth, cfg.rlm.max_iterations, cfg.model.name) == (4, 9, "env")
    assert cfg.rlm.max_sandboxes == 50 and cfg.rlm.max_cost_usd is None
    with pytest.raises(ConfigError, match="environment"):
        load_config(None, environ={"RLM_RLM__MAX_DEPTH": "deep"})
    with pytest.raises(ConfigError, match="unknown key 'rlm.nope'"):
        load_config(None, {"rlm.nope": 1}, environ={})


def test_leftovers_of_a_killed_run_are_reaped_at_the_next_start(make_repo, write_script, tmp_path):
    repo, _ = make_repo()
    script = write_script(
        [
            {
                "task": "^Root",
                "responses": [py('rlm_query_batched(["Sleep 1", "Sleep 2"])'), py('FINAL("x")')],
            },
            {"task": "^Sleep", "responses": [py("import time\ntime.sleep(300)")]},
            {"task": "^Quick", "responses": [py('FINAL("quick")')]},
        ]
    )
    cache = tmp_path / "xdg"
    results = tmp_path / "r"
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    proc = subprocess.Popen(
        [
            *RLM,
            "run",
            str(repo),
            "-p",
            "Root",
            "--model",
            f"scripted/{script}",
            "-q",
            "--results-dir",
            str(results),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = run_dirs(cache / "rlm-bot")
        if runs and len([p for p in runs[0].iterdir() if p.name.endswith(".home")]) >= 3:  # drivers started
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the run never created its sandboxes")
    killed = runs[0]
    proc.kill()  # SIGKILL: no cleanup of its own can run
    proc.wait(timeout=10)
    assert killed.exists()
    time.sleep(0.5)
    quick = rlm(
        "run",
        str(repo),
        "-p",
        "Quick",
        "--model",
        f"scripted/{script}",
        "-q",
        "--results-dir",
        str(results),
        cwd=tmp_path,
        env={"XDG_CACHE_HOME": str(cache)},
    )
    assert quick.returncode == 0, quick.stderr
    assert not killed.exists()
    assert leftovers(cache / "rlm-bot") == []


def test_daytona_without_a_key_exits_2_before_any_work(make_repo, write_script, tmp_path):
    repo, _ = make_repo()
    script = write_script([{"task": "", "responses": [py('FINAL("x")')]}])
    env = {k: v for k, v in os.environ.items() if k != "DAYTONA_API_KEY"}
    proc = subprocess.run(
        [*RLM, "run", str(repo), "-p", "x", "--sandbox", "daytona", "--model", f"scripted/{script}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "DAYTONA_API_KEY is not set" in proc.stderr and "fetching" not in proc.stderr


CONTEXT_SCRIPT = [
    {
        "task": "",
        "responses": [
            py(
                """
                import re
                word = re.search(r"write (\\w+) into a.txt", context).group(1)
                open("a.txt", "w").write(word + "\\n")
                REPORT("## Report\\n\\nwrote " + word)
                FINAL("Write " + word + " into a.txt\\n\\nAs the issue asked.")
                """
            )
        ],
    }
]


def test_context_file_report_and_answer_on_stdout(make_repo, write_script, tmp_path):
    repo, _ = make_repo({"a.txt": "a\n"})
    issue = tmp_path / "issue.md"
    issue.write_text("# Issue 3: wrong letter\n\nThe only clue: write ZEBRA into a.txt\n")
    script = write_script(CONTEXT_SCRIPT)
    out, report = tmp_path / "fix.patch", tmp_path / "report.md"
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    base = [
        "run",
        str(repo),
        "-p",
        "fix this",
        "--context-file",
        str(issue),
        "--model",
        f"scripted/{script}",
        "-q",
        "--results-dir",
        str(tmp_path / "r"),
    ]
    proc = rlm(*base, "-o", str(out), "--report", str(report), cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Write ZEBRA into a.txt\n\nAs the issue asked.\n"  # `> answer.md` captures it
    assert "+ZEBRA" in out.read_text()
    assert report.read_text() == "## Report\n\nwrote ZEBRA\n"

    proc = rlm(*base, "--json", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)  # stdout is the JSON alone: the patch stays in its file
    assert summary["status"] == "completed" and summary["exit_code"] == 0
    assert summary["answer"].startswith("Write ZEBRA") and summary["report"].endswith("wrote ZEBRA")
    assert summary["patch"]["files"] == 1 and "+ZEBRA" in Path(summary["patch"]["file"]).read_text()
    assert Path(summary["results"]).is_file()

    proc = rlm(*base[:5], str(tmp_path / "missing.md"), *base[6:], cwd=tmp_path, env=env)
    assert (
        proc.returncode == 2
        and "cannot read the context file" in proc.stderr
        and "Traceback" not in proc.stderr
    )
