"""Text never crashes a run: lone surrogates and invalid bytes from agent code, its output, its
`FINAL` answer or the task are replaced wherever they are written, and the results JSON is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.common.text import REPLACEMENT, clean_obj, clean_text
from bot.rlm import engine, fold_events, read_events, summary_markdown
from tests.conftest import py

PRINTS = py(
    'print("before \\ud800 after")\n'
    'import sys\nsys.stderr.write("err \\udcff\\n")\n'
    'sys.stdout.flush()\nsys.stdout.buffer.write(b"raw \\xff\\xfe bytes\\n")\n'
    'raise ValueError("bad \\udc80 value")'
)
FINAL_SURROGATE = py('FINAL("answer \\ud83d alone")')


def strict_utf8(path: Path) -> str:
    return path.read_bytes().decode("utf-8")  # raises if anything unencodable slipped through


def test_clean_text_replaces_only_surrogates():
    assert clean_text("a\ud800b\udfffc") == f"a{REPLACEMENT}b{REPLACEMENT}c"
    assert clean_text("ok ✓ 😀") == "ok ✓ 😀"
    assert clean_obj({"k\udc80": ["x\ud83d", b"\xff", 1, None]}) == {
        f"k{REPLACEMENT}": [f"x{REPLACEMENT}", REPLACEMENT, 1, None]
    }


@pytest.mark.parametrize(
    ("first", "task"),
    [(PRINTS, "Task with \udc80 a lone surrogate"), (py("x = 1"), "Clean task")],
    ids=["printing-and-task", "final-only"],
)
def test_surrogates_complete_with_results(make_repo, write_script, make_config, first, task):
    repo, _ = make_repo({"app.py": "x = 1\n"})
    config = make_config(write_script([{"task": "", "responses": [first, FINAL_SURROGATE]}]))
    prepared = engine.prepare(config, str(repo))
    result = engine.run(config, prepared, task)

    assert result.status == "completed", result.error
    assert result.answer == f"answer {REPLACEMENT} alone"
    data = json.loads(strict_utf8(result.results_path))
    assert data["status"] == "completed" and data["answer"] == result.answer
    assert data["prompt"] == clean_text(task)
    strict_utf8(result.events_path)
    assert fold_events(read_events(result.events_path))["answer"] == result.answer
    summary_markdown(data).encode("utf-8")
    if first is PRINTS:
        block = data["agents"][0]["iterations"][0]["blocks"][0]
        assert "before \\ud800 after" in block["stdout"]  # shown escaped to the model, not an error
        assert f"raw {REPLACEMENT}{REPLACEMENT} bytes" in block["stdout"]
        assert "err \\udcff" in block["stderr"]
        assert "ValueError: bad" in block["error"]


def test_cli_run_with_surrogates_exits_0_and_writes_results(make_repo, write_script, tmp_path):
    """Through `rlm run` (progress on stderr, the answer printed): invalid bytes in the prompt too."""
    repo, _ = make_repo({"app.py": "x = 1\n"})
    script = write_script([{"task": "", "responses": [PRINTS, FINAL_SURROGATE]}])
    results = tmp_path / "results"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg"), "PYTHONIOENCODING": "utf-8"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "run",
            str(repo),
            "-p",
            b"fix \xff it",
            "--model",
            f"scripted/{script}",
            "--results-dir",
            str(results),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=120,
    )
    stderr = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    (path,) = results.glob("*[0-9a-f].json")
    data = json.loads(strict_utf8(path))
    assert data["status"] == "completed" and data["answer"] == f"answer {REPLACEMENT} alone"
    assert data["prompt"] == f"fix {REPLACEMENT} it"
