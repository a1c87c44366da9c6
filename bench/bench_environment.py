"""Ready-environment benchmark (run by hand; not part of the tests).

On the generated 1,500-file repository (bench/genrepo.py), with a setup that builds a venv, runs
the 41-agent tree of bench_engine.py (zero model latency) and a 1-agent rollout. Reports:

  - setup runs per rollout (from the events: one, whatever the number of agents);
  - setup time cold (a new cache) and cached (the second rollout on the unchanged repository);
  - sandbox creation median inside the 41-agent tree, without setup and with it (the read-only
    bind and PATH must not change it), alternating the two ROUNDS times to even out the noise of
    a shared machine.

    python bench/bench_environment.py [--files 1500] [--rounds 3] [--isolation auto]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_engine import DEEP, GRANDCHILDREN, MODULES, script, sequential_creation  # noqa: E402
from bench.genrepo import generate  # noqa: E402
from bot.rlm import (  # noqa: E402,F401  (litellm imported before any timing)
    engine,
    llm,
    load_config,  # noqa: E402
    read_events,  # noqa: E402
)

SETUP = ['python3 -m venv "$RLM_ENV/venv"', '"$RLM_ENV/venv/bin/python" -m pip --version']
TREE = 1 + MODULES + DEEP * GRANDCHILDREN


def rollout(repo: Path, work: Path, cache: str, setup: list[str], prompt: str, isolation: str) -> dict:
    path = work / "script.yaml"
    rules = script(0.0) + [{"task": "^Alone", "responses": ["```python\nFINAL('ok')\n```\n"]}]
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    config = load_config(
        None,
        {
            "model.name": f"scripted/{path}",
            "sandbox.cache_dir": str(work / cache),
            "sandbox.isolation": isolation,
            "sandbox.setup": setup or None,
            "rlm.max_concurrency": 32,
            "rlm.max_sandboxes": 64,
        },
        environ={},
    )
    prepared = engine.prepare(config, str(repo))
    result = engine.run(config, prepared, prompt, results_dir=work / "results")
    assert result.status == "completed", result.error
    events = read_events(result.events_path)
    finished = [e for e in events if e["type"] == "setup_finished"]
    t0 = next(e["t"] for e in events if e["type"] == "rollout_started")
    creation = [a["sandbox_seconds"] for a in result.results["agents"] if a["sandbox_seconds"] is not None]
    return {
        "agents": result.results["totals"]["agents"],
        "setups": sum(e["type"] == "setup_started" for e in events),
        "setup_seconds": finished[0]["t"] - t0 if finished else None,  # key computation included
        "cached": finished[0]["cached"] if finished else None,
        "creation_median": statistics.median(creation),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--isolation", default="auto", choices=["auto", "bwrap", "none"])
    ns = parser.parse_args()
    tree_prompt = "Find every TODO in the repository"
    with tempfile.TemporaryDirectory(prefix="rlm-bench-env-") as tmp:
        work = Path(tmp)
        repo = work / "repo"
        generate(repo, files=ns.files, todos=min(400, ns.files), modules=MODULES)

        one = rollout(repo, work, "cache-one", SETUP, "Alone", ns.isolation)
        cold = rollout(repo, work, "cache-tree", SETUP, tree_prompt, ns.isolation)
        assert cold["agents"] == TREE and not cold["cached"]
        print(
            f"setup runs per rollout: {one['setups']} with {one['agents']} agent, "
            f"{cold['setups']} with {cold['agents']} agents"
        )
        print(
            f"setup cold (venv): {one['setup_seconds']:.2f}s with 1 agent, {cold['setup_seconds']:.2f}s with {TREE}"
        )

        without, with_env, cached = [], [], []
        for _ in range(ns.rounds):
            start = time.monotonic()
            without.append(
                rollout(repo, work, "cache-tree", [], tree_prompt, ns.isolation)["creation_median"]
            )
            hit = rollout(repo, work, "cache-tree", SETUP, tree_prompt, ns.isolation)
            assert hit["cached"] and hit["setups"] == 1
            with_env.append(hit["creation_median"])
            cached.append(hit["setup_seconds"])
            print(
                f"  round: creation median {without[-1]:.3f}s without setup, {with_env[-1]:.3f}s with "
                f"(cached setup {hit['setup_seconds']:.3f}s); {time.monotonic() - start:.1f}s"
            )
        seq_without, seq_with = [], []
        for _ in range(ns.rounds):
            seq_without += sequential_creation(repo, work, 15, "auto", ns.isolation, None, "cache-tree")
            seq_with += sequential_creation(repo, work, 15, "auto", ns.isolation, SETUP, "cache-tree")
        c, d = statistics.median(seq_without), statistics.median(seq_with)
        print(
            f"sandbox + REPL one at a time: median {c:.3f}s without setup, {d:.3f}s with the environment "
            f"(REPL on its venv) ({(d / c - 1) * 100:+.1f}%, n={len(seq_with)})"
        )
        a, b = statistics.median(without), statistics.median(with_env)
        print(
            f"setup cached: median {statistics.median(cached):.3f}s, max {max(cached):.3f}s (n={len(cached)})"
        )
        print(
            f"sandbox creation median in the {TREE}-agent tree: {a:.3f}s without setup, {b:.3f}s with "
            f"the environment bound ({(b / a - 1) * 100:+.1f}%)"
        )


if __name__ == "__main__":
    main()
