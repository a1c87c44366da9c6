"""`rlm run` as a tool (issue 20, item 7): a real subprocess on real git repositories — the root
found from a subdirectory, uncommitted changes named, results outside the repository, the model
checked before anything is fetched, one JSON object on every exit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from bot.cli_checks import UNKNOWN_MODEL
from bot.pipeline import OutcomeWords
from tests.conftest import py
from tests.test_cli import RLM, rlm

WRITE = [{"task": "", "responses": [py('open("a.txt", "w").write("b\\n")\nFINAL("Changed a")')]}]
NO_KEYS = ("LLM_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENROUTER_API_KEY")


def _env(tmp_path: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in NO_KEYS}
    return {**env, "XDG_CACHE_HOME": str(tmp_path / "xdg"), **extra}


def _run(*args: str, cwd: Path, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*RLM, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_from_a_subdirectory_the_root_runs_and_results_stay_out_of_the_repository(
    make_repo, write_script, tmp_path
):
    repo, sha = make_repo({"a.txt": "a\n", "pkg/sub/mod.py": "x = 1\n"})
    (repo / "a.txt").write_text("edited, not committed\n")
    (repo / "pkg" / "notes.txt").write_text("untracked\n")
    script = write_script(WRITE)
    proc = _run(
        "run", ".", "-p", "change a", "--model", f"scripted/{script}", "-q", "-o", str(tmp_path / "fix.patch"),
        cwd=repo / "pkg" / "sub",
        env=_env(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "+b" in (tmp_path / "fix.patch").read_text() and "-a" in (tmp_path / "fix.patch").read_text()
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1  # one line, naming both files, saying they are not part of the run
    assert "a.txt" in warnings[0] and "pkg/notes.txt" in warnings[0] and "not part of the run" in warnings[0]
    assert f"commit {sha[:12]}" in proc.stderr  # the last commit ran, not the edited files
    # results: the per-user cache, never results/ inside the user's repository
    assert not (repo / "results").exists() and not (repo / "pkg" / "sub" / "results").exists()
    (results,) = (tmp_path / "xdg" / "rlm-bot" / "results").glob("*.json")
    assert json.loads(results.read_text())["repo"] == str(repo)
    # --results-dir still says otherwise
    proc = _run(
        "run", str(repo), "-p", "change a", "--model", f"scripted/{script}", "-q",
        "--results-dir", str(tmp_path / "mine"), "-o", str(tmp_path / "2.patch"),
        cwd=tmp_path,
        env=_env(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "mine").glob("*.json"))) == 1


def test_a_clean_tree_gets_no_warning(make_repo, write_script, tmp_path):
    repo, _ = make_repo({"a.txt": "a\n"})
    script = write_script(WRITE)
    proc = _run("run", ".", "-p", "x", "--model", f"scripted/{script}", "-q", cwd=repo, env=_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "warning:" not in proc.stderr and "+b" in proc.stdout


def test_the_model_the_script_and_the_key_are_checked_before_any_fetch(make_repo, tmp_path):
    repo, _ = make_repo()
    env = _env(tmp_path)
    cases = [
        (["--model", "not-a-model"], UNKNOWN_MODEL.format(model="not-a-model")),
        (["--model", f"scripted/{tmp_path / 'missing.yaml'}"], "does not exist"),
        (["--model", "anthropic/claude-sonnet-4-5"], "ANTHROPIC_API_KEY"),
    ]
    for args, expected in cases:
        proc = _run("run", str(repo), "-p", "x", *args, cwd=tmp_path, env=env)
        assert proc.returncode == 2, proc.stderr
        assert expected in proc.stderr and "Traceback" not in proc.stderr
        assert "fetching" not in proc.stderr and not (tmp_path / "xdg" / "rlm-bot" / "repos").exists()
        (line,) = proc.stderr.strip().splitlines()  # one sentence
        assert line.startswith("error: ")
    assert "LLM_API_KEY" in proc.stderr  # how rlm reads the key, beside the provider's own variable
    assert "--env-file" in proc.stderr
    # the provider's own variable is enough: litellm reads it (the fetch then goes ahead)
    proc = _run(
        "run", str(tmp_path / "nowhere"), "-p", "x", "--model", "anthropic/claude-sonnet-4-5",
        cwd=tmp_path, env={**env, "ANTHROPIC_API_KEY": "k"},
    )  # fmt: skip
    assert proc.returncode == 2 and "neither a URL nor an existing directory" in proc.stderr


def test_with_json_every_exit_prints_one_json_object(make_repo, write_script, tmp_path):
    repo, _ = make_repo({"a.txt": "a\n"})
    env = _env(tmp_path)
    usage = _run("run", str(repo), "--json", cwd=tmp_path, env=env)  # no -p: the parser's usage error
    assert usage.returncode == 2
    data = json.loads(usage.stdout)
    assert data["status"] == "usage_error" and data["exit_code"] == 2 and "--prompt" in data["error"]
    bad_option = _run("run", str(repo), "-p", "x", "--max-depht", "2", "--json", cwd=tmp_path, env=env)
    assert bad_option.returncode == 2 and "--max-depht" in json.loads(bad_option.stdout)["error"]
    model = _run("run", str(repo), "-p", "x", "--model", "not-a-model", "--json", cwd=tmp_path, env=env)
    assert model.returncode == 2 and json.loads(model.stdout)["error"] == UNKNOWN_MODEL.format(
        model="not-a-model"
    )
    nowhere = _run("run", str(tmp_path / "plain"), "-p", "x", "--json", cwd=tmp_path, env=env)
    assert nowhere.returncode == 2 and json.loads(nowhere.stdout)["status"] == "usage_error"
    script = write_script(WRITE)
    ok = _run(
        "run", str(repo), "-p", "x", "--model", f"scripted/{script}", "-q", "--json", cwd=tmp_path, env=env
    )
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)  # exactly one object: json.loads refuses anything after it
    assert data["exit_code"] == 0 and data["partial"] is False and data["patch"]["files"] == 1


def test_after_ctrl_c_the_json_is_in_the_clis_own_words(make_repo, write_script, tmp_path):
    repo, _ = make_repo()
    script = write_script(
        [{"task": "", "responses": [py("import subprocess\nsubprocess.run(['sleep', '300'])")]}]
    )
    results = tmp_path / "r"
    proc = subprocess.Popen(
        [*RLM, "run", str(repo), "-p", "Root", "--model", f"scripted/{script}", "-q", "--json",
         "--results-dir", str(results)],
        cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (results.exists() and any('"llm_call"' in f.read_text()
                                        for f in results.glob("*.events.jsonl"))):  # fmt: skip
        assert proc.poll() is None and time.monotonic() < deadline, "the run never started"
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    data = json.loads(stdout)
    assert data["exit_code"] == 130 and data["status"] == "cancelled"
    assert data["message"].startswith(OutcomeWords().cancelled)
    assert "/rlm cancel" not in stdout and "pull request" not in stdout
    assert "/rlm cancel" not in stderr and "Traceback" not in stderr


def test_run_help_names_the_new_behaviour():
    proc = rlm("run", "--help", cwd=Path.cwd(), env={"COLUMNS": "200"})
    assert proc.returncode == 0
    for text in (
        "--max-cost",
        "--results-dir",
        "rlm-bot/results",
        "anywhere inside a local repository",
        "before anything is fetched",
    ):
        assert text in " ".join(proc.stdout.split()), text
