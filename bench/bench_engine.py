"""Engine benchmark (run by hand; not part of the tests).

On generated repositories (bench/genrepo.py; 1,500 files is the size of scikit-learn), replays the
tree shape of the guide's example with the scripted model: root -> 25 children (one per top-level
module), 5 of which delegate 3 grandchildren each (15), 41 agents in all. For each repository
size and each local checkout mode (`overlay`: copy-on-write, `copy`: full copies) it reports:

  - sandbox + REPL creation per agent, one at a time (median, p90), and inside the tree (25 at once);
  - orchestration overhead: the whole rollout with zero model latency;
  - parallel efficiency: with LATENCY s per scripted response and max_concurrency >= the tree's
    width, wall time / the critical path of model latency (5 responses deep);
  - the peak size of its sandboxes in /dev/shm during the rollouts, and the size of the shared
    checkout (copy-on-write: one per commit, on disk in the cache, kept for later rollouts);
  - optionally (--clones N) a plain `git clone` per agent over file:// for comparison.

Generated repositories are kept in --repos (default /tmp/rlm-bench-repos) and reused by later runs.

    python bench/bench_engine.py [--files 1500 30000] [--modes overlay copy] [--latency 1.0]
                                 [--alone 10] [--copy-max-files 30000] [--isolation auto]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.genrepo import generate  # noqa: E402
from bot.rlm import (  # noqa: E402,F401  (litellm imported before any timing)
    engine,
    llm,
    load_config,  # noqa: E402
)
from bot.rlm.sandbox.local.roots import shm_root  # noqa: E402

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


def config_for(work: Path, mode: str, isolation: str, **extra):
    values = {
        "sandbox.cache_dir": str(work / "cache"),
        "sandbox.isolation": isolation,
        "sandbox.checkouts": mode,
        "rlm.max_concurrency": 32,
        "rlm.max_sandboxes": 64,
        **extra,
    }
    return load_config(None, values, environ={})


def run(repo: Path, work: Path, latency: float, mode: str, isolation: str) -> tuple[float, dict]:
    path = work / f"script-{latency}.yaml"
    path.write_text(yaml.safe_dump(script(latency), sort_keys=False))
    config = config_for(work, mode, isolation, **{"model.name": f"scripted/{path}"})
    prepared = engine.prepare(config, str(repo))
    start = time.monotonic()
    result = engine.run(config, prepared, "Find every TODO in the repository", results_dir=work / "results")
    wall = time.monotonic() - start
    assert result.status == "completed", result.error
    agents = result.results["totals"]["agents"]
    assert agents == 1 + MODULES + DEEP * GRANDCHILDREN, (agents, result.answer[:2000])
    return wall, result.results


def sequential_creation(
    repo: Path,
    work: Path,
    n: int,
    mode: str,
    isolation: str,
    setup: list[str] | None = None,
    cache: str = "cache",
) -> list[float]:
    """Sandbox creation + REPL start, one at a time: what one agent costs on an idle machine
    (with `setup`: in the environment it builds, bench_environment.py)."""
    import threading

    from bot.rlm.environment import setup_spec
    from bot.rlm.repl.session import ReplSession
    from bot.rlm.sandbox.local.provider import LocalSandboxProvider

    config = config_for(
        work, mode, isolation, **{"sandbox.cache_dir": str(work / cache), "sandbox.setup": setup or None}
    )
    prepared = engine.prepare(config, str(repo))
    provider = LocalSandboxProvider(config, prepared, f"bench-sequential-{len(setup or [])}")
    if mode != "auto":
        assert provider.copy_on_write == (mode == "overlay"), "overlay mounts do not work here"
    times = []
    try:
        spec = setup_spec(config, prepared)
        if spec is not None:
            provider.setup_environment(spec, threading.Event())
        provider.create("warm").destroy()  # the per-rollout template (copy mode)
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


def bytes_under(path: Path) -> int:
    proc = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True)
    return int(proc.stdout.split()[0]) if proc.returncode == 0 and proc.stdout else 0


@contextmanager
def shm_peak(work: Path, into: list[int]):
    """The peak size of this benchmark's sandboxes in /dev/shm while the block runs (sampled with
    `du` every 0.5 s), appended to `into` (bytes)."""
    root = shm_root((work / "cache").resolve())
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.5):
            peak = max(peak, bytes_under(root))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        into.append(peak)


def p90(values: list[float]) -> float:
    return sorted(values)[int(0.9 * (len(values) - 1))]


def repository(repos: Path, files: int) -> Path:
    """The generated repository of `files` files, made once and reused."""
    repo = repos / f"files-{files}"
    if not (repo / ".git" / "rlm-bench-done").exists():
        subprocess.run(["rm", "-rf", str(repo)], check=True)
        t0 = time.monotonic()
        generate(repo, files=files, todos=min(400, files), modules=MODULES)
        (repo / ".git" / "rlm-bench-done").write_text("")
        print(f"generated {files} files in {time.monotonic() - t0:.1f}s", flush=True)
    return repo


def measure(repo: Path, mode: str, ns: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="rlm-bench-") as tmp:
        work = Path(tmp)
        shm: list[int] = []
        start = time.monotonic()
        with shm_peak(work, shm):
            wall0, results0 = run(repo, work, 0.0, mode, ns.isolation)  # the first rollout (cold)
        creation = [a["sandbox_seconds"] for a in results0["agents"] if a["sandbox_seconds"] is not None]
        alone = sequential_creation(repo, work, ns.alone, mode, ns.isolation)
        with shm_peak(work, shm):
            wall0_warm, _ = run(repo, work, 0.0, mode, ns.isolation)
        with shm_peak(work, shm):
            wall1, _ = run(repo, work, ns.latency, mode, ns.isolation)
        clones = clone_times(repo, work, ns.clones) if ns.clones else []
        row = {
            "alone": (statistics.median(alone), p90(alone)),
            "tree": (statistics.median(creation), p90(creation)),
            "wall0": wall0,
            "wall0_warm": wall0_warm,
            "ratio": wall1 / (CRITICAL_PATH_RESPONSES * ns.latency),
            "shm_mb": max(shm) / 1024**2,
            "clone": statistics.median(clones) if clones else None,
            "shared_mb": bytes_under(work / "cache" / "checkouts") / 1024**2,
            "seconds": time.monotonic() - start,
        }
        print(f"  {mode}: {row}", flush=True)
        return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, nargs="+", default=[1500, 30000])
    parser.add_argument("--modes", nargs="+", default=["overlay", "copy"], choices=["overlay", "copy"])
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--alone", type=int, default=10, help="sandboxes created one at a time")
    parser.add_argument("--clones", type=int, default=0, help="git clones to time for comparison")
    parser.add_argument("--copy-max-files", type=int, default=30000, help="skip copy mode above this")
    parser.add_argument("--repos", type=Path, default=Path(tempfile.gettempdir()) / "rlm-bench-repos")
    parser.add_argument("--isolation", default="auto", choices=["auto", "bwrap", "none"])
    ns = parser.parse_args()
    rows: list[tuple[int, str, dict]] = []
    for files in ns.files:
        repo = repository(ns.repos, files)
        print(f"{files} files:", flush=True)
        for mode in ns.modes:
            if mode == "copy" and files > ns.copy_max_files:
                print(f"  copy: skipped above {ns.copy_max_files} files (--copy-max-files)")
                continue
            rows.append((files, mode, measure(repo, mode, ns)))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\n41 agents, latency {ns.latency}s per response, critical path "
        f"{CRITICAL_PATH_RESPONSES * ns.latency:.0f}s, isolation {ns.isolation}; orchestrator peak RSS {peak_mb:.0f} MB\n"
    )
    print(
        "| files | mode | creation alone, median / p90 | creation in the tree, median / p90 "
        "| zero-latency tree, cold / warm | wall ÷ critical path | peak /dev/shm | shared checkout |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for files, mode, r in rows:
        print(
            f"| {files:,} | {mode} | {r['alone'][0]:.3f} s / {r['alone'][1]:.3f} s "
            f"| {r['tree'][0]:.3f} s / {r['tree'][1]:.3f} s | {r['wall0']:.1f} s / {r['wall0_warm']:.1f} s "
            f"| {r['ratio']:.3f} | {r['shm_mb']:.1f} MB | {r['shared_mb']:.0f} MB |"
        )
    for files, _mode, r in rows:
        if r["clone"] is not None:
            print(f"git clone file:// at {files:,} files: median {r['clone']:.3f}s per agent")


if __name__ == "__main__":
    main()
