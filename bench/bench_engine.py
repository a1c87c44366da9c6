"""Engine benchmark (run by hand; not part of the tests).

On a generated repository the size of scikit-learn (bench/genrepo.py), replays the tree shape of
the guide's example with the scripted model: root -> 25 children (one per top-level module),
5 of which delegate 3 grandchildren each (15), 41 agents in all. Reports:

  - sandbox creation per agent (median, p90), beside a plain `git clone` of the same repo per
    agent over file:// (a full object transfer + checkout, what the guide did minus the network);
  - orchestration overhead: the whole rollout with zero model latency, and the orchestrator's
    peak memory (RSS of this process, which is the host: drivers run in their own processes);
  - parallel efficiency: with LATENCY s per scripted response and max_concurrency >= the tree's
    width, wall time / the critical path of model latency (5 responses deep).

    python bench/bench_engine.py [--files 1500] [--latency 1.0] [--clones 41] [--isolation auto]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.genrepo import generate  # noqa: E402
from bot.rlm import engine, llm  # noqa: E402,F401  (litellm imported before any timing)
from bot.rlm.config import load_config  # noqa: E402

MODULES = 25
DEEP = 5  # children that delegate
GRANDCHILDREN = 3
CRITICAL_PATH_RESPONSES = 5  # root 1 -> child 1 -> grandchild 1 -> child 2 -> root 2


def script(latency: float) -> list[dict]:
    survey = (
        "```python\n"
        "import subprocess\n"
        "module = task.split()[-1]\n"
        "hits = subprocess.run(['grep', '-rn', '# TODO', f'pkg/{module}'], capture_output=True, text=True).stdout\n"
        "todos = hits.splitlines()\n"
        "print(len(todos))\n"
        "```\n"
    )
    return [
        {
            "task": "^Find every TODO",
            "latency": latency,
            "responses": [
                "```python\nimport os\nmodules = sorted(os.listdir('pkg'))\n"
                "answers = rlm_query_batched([f'Survey the TODOs of module {m}' for m in modules])\n"
                "print(len(answers))\n```\n",
                "```python\nFINAL('\\n'.join(answers))\n```\n",
            ],
        },
        {
            "task": f"^Survey the TODOs of module mod0[0-{DEEP - 1}]$",
            "latency": latency,
            "responses": [
                survey.replace(
                    "print(len(todos))",
                    f"ratings = rlm_query_batched([f'Rate TODO {{i}}: {{t}}' for i, t in enumerate(todos[:{GRANDCHILDREN}])])",
                ),
                "```python\nFINAL(f'{module}: {len(todos)} TODOs, rated {ratings}')\n```\n",
            ],
        },
        {
            "task": "^Survey the TODOs of module",
            "latency": latency,
            "responses": [survey, "```python\nFINAL(f'{module}: {len(todos)} TODOs')\n```\n"],
        },
        {
            "task": "^Rate TODO",
            "latency": latency,
            "responses": ["```python\nFINAL(str(len(task) % 5 + 1))\n```\n"],
        },
    ]


def run(repo: Path, work: Path, latency: float, isolation: str) -> tuple[float, dict]:
    path = work / f"script-{latency}.yaml"
    path.write_text(yaml.safe_dump(script(latency), sort_keys=False))
    config = load_config(
        None,
        {
            "model.name": f"scripted/{path}",
            "sandbox.cache_dir": str(work / "cache"),
            "sandbox.isolation": isolation,
            "rlm.max_concurrency": 32,
            "rlm.max_sandboxes": 64,
        },
        environ={},
    )
    prepared = engine.prepare(config, str(repo))
    start = time.monotonic()
    result = engine.run(config, prepared, "Find every TODO in the repository", results_dir=work / "results")
    wall = time.monotonic() - start
    assert result.status == "completed", result.error
    agents = result.results["totals"]["agents"]
    assert agents == 1 + MODULES + DEEP * GRANDCHILDREN, (agents, result.answer[:2000])
    return wall, result.results


def sequential_creation(repo: Path, work: Path, n: int, isolation: str, setup: list[str] | None = None,
                        cache: str = "cache") -> list[float]:  # fmt: skip
    """Sandbox creation + REPL start, one at a time: what one agent costs on an idle machine
    (with `setup`: in the environment it builds, bench_environment.py)."""
    import threading

    from bot.rlm.environment import setup_spec
    from bot.rlm.repl.session import ReplSession
    from bot.rlm.sandbox.local import LocalSandboxProvider

    config = load_config(None, {"sandbox.cache_dir": str(work / cache), "sandbox.isolation": isolation,
                                "sandbox.setup": setup or None}, environ={})  # fmt: skip
    prepared = engine.prepare(config, str(repo))
    provider = LocalSandboxProvider(config, prepared, f"bench-sequential-{len(setup or [])}")
    times = []
    try:
        spec = setup_spec(config, prepared)
        if spec is not None:
            provider.setup_environment(spec, threading.Event())
        provider.create("warm").destroy()  # the per-rollout template
        for i in range(n):
            start = time.monotonic()
            sandbox = provider.create(f"a{i}")
            ReplSession(sandbox.start_driver()).start({"task": "", "output_limit": 100, "limits": {}})
            times.append(time.monotonic() - start)
            sandbox.destroy()
    finally:
        provider.close()
    return times


def clone_times(repo: Path, work: Path, n: int) -> list[float]:
    times = []
    for i in range(n):
        dest = work / f"clone{i}"
        start = time.monotonic()
        subprocess.run(["git", "clone", "-q", f"file://{repo}", str(dest)], check=True)
        times.append(time.monotonic() - start)
        subprocess.run(["rm", "-rf", str(dest)], check=True)
    return times


def p90(values: list[float]) -> float:
    return sorted(values)[int(0.9 * (len(values) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1500)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--clones", type=int, default=1 + MODULES + DEEP * GRANDCHILDREN)
    parser.add_argument("--isolation", default="auto", choices=["auto", "bwrap", "none"])
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rlm-bench-") as tmp:
        work = Path(tmp)
        repo = work / "repo"
        t0 = time.monotonic()
        generate(repo, files=ns.files, todos=min(400, ns.files), modules=MODULES)
        print(f"generated {ns.files} files in {time.monotonic() - t0:.1f}s")

        wall0, results0 = run(repo, work, 0.0, ns.isolation)
        creation = [a["sandbox_seconds"] for a in results0["agents"] if a["sandbox_seconds"] is not None]
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        clones = clone_times(repo, work, ns.clones)
        alone = sequential_creation(repo, work, ns.clones, ns.isolation)
        wall1, _ = run(repo, work, ns.latency, ns.isolation)

        critical = CRITICAL_PATH_RESPONSES * ns.latency
        print(f"agents: {results0['totals']['agents']} (max depth {results0['totals']['max_depth']})")
        print(f"sandbox + REPL per agent, one at a time: median {statistics.median(alone):.3f}s, "
              f"p90 {p90(alone):.3f}s (n={len(alone)}, isolation {ns.isolation})")  # fmt: skip
        print(f"git clone file:// per agent, one at a time: median {statistics.median(clones):.3f}s, "
              f"p90 {p90(clones):.3f}s (n={len(clones)}) -> {statistics.median(clones) / statistics.median(alone):.1f}x slower")  # fmt: skip
        print(f"sandbox creation inside the tree (25 at once): median {statistics.median(creation):.3f}s, "
              f"p90 {p90(creation):.3f}s (n={len(creation)})")  # fmt: skip
        print(f"zero-latency rollout: {wall0:.2f}s wall; orchestrator peak RSS {peak_mb:.0f} MB")
        print(
            f"latency {ns.latency}s: {wall1:.2f}s wall / {critical:.1f}s critical path = {wall1 / critical:.3f}"
        )


if __name__ == "__main__":
    main()
