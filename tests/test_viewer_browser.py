"""The viewer in a real browser: headless Chromium (the system package) driven by playwright-core
through tests/js/viewer_check.js, against the real local server.

Screenshots go to the test's tmp dir (the path is printed); look at them when the page changes.
Timings are reported by bench/bench_viewer.py, never asserted here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from bench.synthetic import synthetic_events, write_synthetic
from bot.rlm import engine, load_config
from bot.viewer import make_server
from bot.viewer.server import in_background
from tests.conftest import commit_files, git, py

JS = Path(__file__).parent / "js"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(
    NODE is None or not Path(CHROMIUM).exists() or not (JS / "node_modules" / "playwright-core").is_dir(),
    reason="needs node, Debian's chromium and `npm ci --prefix tests/js`",
)

RULES = [
    {
        "task": "^Survey",
        "responses": [
            py('import sys\nprint("ROOT-LOOKED-AROUND")\nprint("a warning", file=sys.stderr)'),
            py(
                'a = rlm_query("Child A reads the files")\nb = rlm_query("Child B delegates deeper")\nprint(a, b)'
            ),
            py('FINAL("survey done: " + a + " / " + b)'),
        ],
    },
    {
        "task": "^Child A",
        "responses": [
            py('print("CHILD-A-OUTPUT-42")\nx = 1 / 0'),
            py('open("found.txt", "w").write("3 TODOs\\n")\nFINAL("A found 3 TODOs")'),
        ],
    },
    {
        "task": "^Child B",
        "responses": [py('r = rlm_query("Grandchild fixes the bug")\nprint(r)'), py('FINAL("B: " + r)')],
    },
    {"task": "^Grandchild", "responses": [py('FINAL("grandchild fixed it")')]},
]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    """A real three-level rollout with the scripted model; returns its results directory."""
    root = tmp_path_factory.mktemp("viewer_real")
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit_files(repo, {"app.py": "def f():\n    return 1  # TODO\n"}, "initial")
    script = root / "script.yaml"
    rules = [{**r, "responses": [textwrap.dedent(x) for x in r["responses"]]} for r in RULES]
    script.write_text(yaml.safe_dump(rules, sort_keys=False))
    config = load_config(
        None,
        {
            "model.name": f"scripted/{script}",
            "sandbox.cache_dir": str(root / "cache"),
            "results_dir": str(root / "results"),
            "rlm.global_timeout": 60,
        },
        environ={},
    )
    result = engine.run(config, engine.prepare(config, str(repo)), "Survey the repository")
    assert result.status == "completed", result.error
    return root / "results"


def drive(tmp_path: Path, scenarios: list[dict], on_line: Callable[[dict], None] | None = None) -> list[dict]:
    """Run viewer_check.js; returns its scenario results (lines with a "kind")."""
    shots = tmp_path / "screenshots"
    shots.mkdir(exist_ok=True)
    config = {
        "userDataDir": str(tmp_path / "chromium-profile"),
        "screenshotDir": str(shots),
        "executablePath": CHROMIUM,
        "scenarios": scenarios,
    }
    proc = subprocess.Popen(
        [NODE, str(JS / "viewer_check.js"), json.dumps(config)],
        cwd=JS,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    results = []
    try:
        for line in proc.stdout:
            item = json.loads(line)
            if on_line is not None:
                on_line(item)
            if "kind" in item:
                results.append(item)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, proc.stderr.read()
    for item in results:
        print(f"screenshot: {item.get('shot')}")
        assert item["ok"], item
        assert item["consoleErrors"] == [], item["consoleErrors"]
    return results


def test_tree_and_a_nodes_code_and_output(real_run, tmp_path):
    run_id = json.loads(next(real_run.glob("*.json")).read_text())["run_id"]
    with in_background(make_server(real_run)) as server:
        (seen,) = drive(
            tmp_path,
            [
                {
                    "kind": "basic",
                    "url": server.url + f"#run={run_id}",
                    "click": "root.1",
                    "search": "reads the",
                }
            ],
        )
    assert seen["rows"] == ["root", "root.1", "root.2", "root.2.1"]  # depth-first, children under parents
    assert "4agents" in seen["totals"].replace(" ", "") and "completed" in seen["totals"]
    assert seen["selected"] == "root.1" and seen["afterDown"] == "root.2"
    assert any("CHILD-A-OUTPUT-42" in code for code in seen["code"])
    assert any("CHILD-A-OUTPUT-42" in out for out in seen["stdout"])
    assert any("ZeroDivisionError" in err for err in seen["errors"])
    assert seen["answer"] == ["A found 3 TODOs"]
    # The sub-agent's changes, as handed to its parent: a collapsed diff panel.
    assert len(seen["diff"]) == 1 and seen["diff"][0].startswith("Changes (1 file, +1 −0)")
    assert "+++ b/found.txt" in seen["diff"][0] and "+3 TODOs" in seen["diff"][0]
    assert seen["searchRows"] == ["root", "root.1"] and seen["matched"] == [
        "root.1"
    ]  # a match and its ancestors
    left, width = zip(*seen["bars"], strict=True)
    assert all(0 <= x <= 100 for x in left) and width[0] > max(width[1:])  # the root spans its children
    assert Path(seen["shot"]).stat().st_size > 10_000


def test_large_trace_opens_and_is_usable(tmp_path):
    results = tmp_path / "results"
    write_synthetic(results, agents=200, iterations=5000)
    deep = next(a for a in reversed(synthetic_events()) if a["type"] == "agent_started" and a["depth"] == 3)
    with in_background(make_server(results)) as server:
        (seen,) = drive(
            tmp_path, [{"kind": "large", "url": server.url, "click": deep["agent"], "search": "parser"}]
        )
    assert seen["rows"] == 200
    assert seen["domNodes"] < 8000  # one row per agent; iterations are built only for the selected agent
    assert 0 < seen["cards"] <= min(20, seen["iterations"])  # a page of iteration cards, not all
    assert 0 < seen["searchRows"] < 200
    print(f"200 agents / 5000 iterations: opened in {seen['openMs']} ms, node shown in {seen['clickMs']} ms")


def test_follows_a_running_rollout(tmp_path):
    results = tmp_path / "results"
    events = synthetic_events(agents=24, iterations=160, seed=5)
    run_id = events[0]["run_id"]
    path = results / f"{run_id}.events.jsonl"
    results.mkdir()
    cut = next(i for i, e in enumerate(events) if e["type"] == "agent_started" and e["agent"] == "root.2")
    path.write_text("".join(json.dumps(e) + "\n" for e in events[:cut]))
    expected = sum(1 for e in events if e["type"] == "agent_started")

    def append_rest() -> None:
        rest = events[cut:]
        step = max(1, len(rest) // 8)
        for i in range(0, len(rest), step):
            with open(path, "a") as f:
                f.write("".join(json.dumps(e) + "\n" for e in rest[i : i + step]))
            time.sleep(0.25)

    writer = threading.Thread(target=append_rest, daemon=True)

    def on_line(item: dict) -> None:
        if item.get("ready"):
            writer.start()

    with in_background(make_server(results)) as server:
        (seen,) = drive(tmp_path, [{"kind": "live", "url": server.url, "expectRows": expected}], on_line)
    writer.join(timeout=10)
    assert seen["liveShown"] and not seen["liveAfter"]
    assert seen["first"] < expected == seen["last"]
