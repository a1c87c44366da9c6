"""Viewer benchmark (run by hand; not part of the tests): how long a large trace takes to open.

    python bench/bench_viewer.py [--agents 200] [--iterations 5000] [--repeat 5]

Writes a synthetic results file of that size (bench/synthetic.py), serves it with the real
`rlm view` server on 127.0.0.1, and opens it in headless Chromium (tests/js/viewer_check.js, the
same driver as the browser tests). "open" is navigation start until the tree and the selected
agent's details are on screen, i.e. the page, the run list, the results JSON (parsed in the
browser) and the first render; the first open is cold (fresh tab, nothing cached). Also reports
the time to show a deep node's iterations and to filter the tree by a search.
Needs node, `npm ci --prefix tests/js` and /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.synthetic import synthetic_events, write_synthetic  # noqa: E402
from bot.viewer import make_server  # noqa: E402
from bot.viewer.server import in_background  # noqa: E402

JS = Path(__file__).resolve().parents[1] / "tests" / "js"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        results_path, _ = write_synthetic(tmp_path / "results", args.agents, args.iterations)
        deep = max(
            (e for e in synthetic_events(args.agents, args.iterations) if e["type"] == "agent_started"),
            key=lambda e: e["depth"],
        )["agent"]
        config = {
            "userDataDir": str(tmp_path / "profile"),
            "screenshotDir": str(tmp_path),
            "scenarios": [
                {"kind": "large", "click": deep, "search": "parser"},
                {"kind": "bench", "repeat": args.repeat},
            ],
        }
        with in_background(make_server(tmp_path / "results", 0)) as server:
            for scenario in config["scenarios"]:
                scenario["url"] = server.url
            proc = subprocess.run(
                ["node", str(JS / "viewer_check.js"), json.dumps(config)],
                cwd=JS,
                capture_output=True,
                text=True,
                timeout=600,
            )
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not all(item.get("ok") for item in lines):
            sys.exit(f"browser run failed:\n{proc.stdout}\n{proc.stderr}")
        large, bench = lines
        size = results_path.stat().st_size / 1e6
        warm = bench["openMs"]
        print(f"trace: {args.agents} agents, {args.iterations} iterations, results JSON {size:.1f} MB")
        print(f"open (cold, first tab):       {large['openMs']} ms")
        print(
            f"open (again, x{len(warm)}):            median {statistics.median(warm):.0f} ms, max {max(warm)} ms"
        )
        print(f"show a depth-3 node ({large['iterations']} it): {large['clickMs']} ms")
        print(f"search 'parser':              {large['searchMs']} ms ({large['searchRows']} rows shown)")
        print(f"DOM elements after opening:   {large['domNodes']}")


if __name__ == "__main__":
    main()
