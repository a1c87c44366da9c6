"""Wall time of a 41-sandbox tree on the daytona backend (through the SDK fake with a cold-start
latency per creation): sandbox creation in parallel (the rollout's concurrency limit) vs serialised
(`sandbox.daytona.create_concurrency = 1`).

    python bench/bench_daytona.py [--latency 3] [--children 25] [--grandchildren 15]

The tree: root -> 25 children in one rlm_query_batched; the first 15 children each run one
grandchild. The model is the scripted one (no latency), so the difference is creation time.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.rlm import (  # noqa: E402
    LiteLLMClient,  # noqa: E402
    Rollout,
    Trace,  # noqa: E402
    load_config,  # noqa: E402
    new_run_id,
)
from bot.rlm.repo import prepare_repo  # noqa: E402
from bot.rlm.sandbox.daytona.provider import DaytonaSandboxProvider  # noqa: E402
from tests.fakes.daytona_fake import FakeDaytona  # noqa: E402


def block(code: str) -> str:
    return f"```python\n{code}\n```\n"


def tree_script(children: int, grandchildren: int) -> list[dict]:
    parents = "|".join(str(i) for i in range(grandchildren)) or "none"
    tasks = [f"Child {i}" for i in range(children)]
    return [
        {
            "task": "^Root",
            "responses": [
                block(f"answers = rlm_query_batched({tasks!r})\nprint(len(answers))"),
                block("FINAL(str(sum(a.endswith('ok') for a in answers)))"),
            ],
        },
        {
            "task": f"^Child ({parents})$",
            "responses": [
                block("g = rlm_query('Grandchild of ' + task)"),
                block("FINAL(g)"),
            ],
        },
        {"task": "^Child", "responses": [block("FINAL(task + ' ok')")]},
        {"task": "^Grandchild", "responses": [block("FINAL(task + ' ok')")]},
    ]


def make_repo(root: Path) -> Path:
    repo = root / "repo"
    repo.mkdir()
    env = {
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@x",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@x",
        "PATH": "/usr/bin:/bin",
        "HOME": str(root),
    }
    (repo / "app.py").write_text("x = 1\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True)
    return repo


def run_once(root: Path, script: Path, latency: float, create_concurrency: int | None) -> dict:
    config = load_config(
        None,
        {
            "model.name": f"scripted/{script}",
            "sandbox.cache_dir": str(root / "cache"),
            "results_dir": str(root / "results"),
            "sandbox.backend": "daytona",
            "sandbox.daytona.create_concurrency": create_concurrency,
        },
        environ={},
    )
    prepared = prepare_repo(str(root / "repo"), config.cache_root())
    fake = FakeDaytona(root=root / f"daytona-{create_concurrency}", create_latency=latency)
    trace = Trace(new_run_id(), root / "results")
    rollout = Rollout(
        config,
        LiteLLMClient(config.model),
        prepared,
        "Root task",
        provider_factory=lambda rid: DaytonaSandboxProvider(config, prepared, rid, client=fake),
        trace=trace,
    )
    started = time.monotonic()
    result = rollout.run()
    wall = time.monotonic() - started
    return {
        "status": result.status,
        "answer": result.answer,
        "wall": wall,
        "sandboxes": fake.create_calls,
        "max_parallel_creates": fake.max_active_creates,
        "left": len(fake.sandboxes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=3.0, help="seconds per sandbox creation")
    parser.add_argument("--children", type=int, default=25)
    parser.add_argument("--grandchildren", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rlm-bench-") as tmp:
        root = Path(tmp)
        make_repo(root)
        script = root / "script.yaml"
        script.write_text(yaml.safe_dump(tree_script(args.children, args.grandchildren), sort_keys=False))
        rows = [
            ("parallel", run_once(root, script, args.latency, None)),
            ("serialised", run_once(root, script, args.latency, 1)),
        ]
    print(f"creation latency {args.latency:.1f}s, tree 1 + {args.children} + {args.grandchildren}")
    print(f"{'creation':<11} {'wall s':>8} {'sandboxes':>10} {'max parallel':>13} {'status':>10} {'left':>5}")
    for name, r in rows:
        print(
            f"{name:<11} {r['wall']:>8.1f} {r['sandboxes']:>10} {r['max_parallel_creates']:>13} "
            f"{r['status']:>10} {r['left']:>5}"
        )
    creation = rows[0][1]["sandboxes"] * args.latency
    print(
        f"sum of creation latencies: {creation:.0f}s; parallel creation hid "
        f"{100 * (1 - rows[0][1]['wall'] / rows[1][1]['wall']):.0f}% of the serialised wall time"
    )


if __name__ == "__main__":
    main()
