"""The page's JavaScript fold (bot/viewer/static/fold.js) builds the same results as the engine's
Python fold, for a real rollout and for a large synthetic one, whole or resumed half-way."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from bot.rlm import engine
from bot.viewer.synthetic import write_synthetic
from tests.conftest import py

NODE = shutil.which("node")
SCRIPT = Path(__file__).parent / "js" / "fold_events.js"
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")

RULES = [
    {
        "task": "^Tidy",
        "responses": [
            py('import sys\nprint("looking")\nprint("hmm", file=sys.stderr)'),
            py(
                'answers = [rlm_query("Child one"), rlm_query("Child two")]\nprint(answers)\nsummary = llm_query("sum up")'
            ),
            py('FINAL("; ".join(answers))'),
        ],
    },  # fmt: skip
    {
        "task": "^Child two",
        "responses": [py('print(rlm_query("Grandchild"))'), py("1/0"), py('FINAL("two")')],
    },
    {"task": "^Child", "responses": [py("FINAL(task)")]},
    {"task": "^Grandchild", "responses": [py('FINAL("deep")')]},
]


def js_fold(events_path: Path) -> dict:
    proc = subprocess.run(
        [NODE, str(SCRIPT), str(events_path)], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(proc.stdout)


def test_js_fold_matches_python_on_a_real_rollout(make_repo, write_script, make_config):
    repo, _ = make_repo({"a.py": "x = 1\n"})
    config = make_config(write_script(RULES), sandbox__setup=["echo environment ready"])  # setup events too
    result = engine.run(config, engine.prepare(config, str(repo)), "Tidy up")
    assert result.status == "completed", result.error
    assert result.results["setup"]["status"] == "ok" and "environment ready" in result.results["setup"]["log_tail"]
    assert result.results["totals"]["agents"] == 4 and result.results["totals"]["max_depth"] == 2
    expected = json.loads(result.results_path.read_text())
    folded = js_fold(result.events_path)
    assert folded["whole"] == expected
    assert folded["resumed"] == expected


def test_js_fold_matches_python_on_a_large_trace(tmp_path):
    results_path, events_path = write_synthetic(tmp_path, agents=200, iterations=5000)
    expected = json.loads(results_path.read_text())
    folded = js_fold(events_path)
    assert folded["whole"] == expected
    assert folded["resumed"] == expected
