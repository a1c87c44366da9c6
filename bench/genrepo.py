"""Generate a git repository shaped like scikit-learn: ~1,500 Python files, ~400 `# TODO` lines
over 25 top-level modules. Deterministic (seeded), so runs are comparable.

    python bench/genrepo.py DEST [--files 1500] [--todos 400] [--modules 25]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
from pathlib import Path

WORDS = (
    "estimator fit predict transform score sample weight matrix sparse dense kernel metric "
    "cluster tree forest linear model feature select pipeline validate split cross grid"
).split()


def _function(rng: random.Random, n: int, todo: bool) -> str:
    name = "_".join(rng.sample(WORDS, 2)) + f"_{n}"
    args = ", ".join(rng.sample(WORDS, rng.randint(1, 4)))
    body = [f"def {name}({args}):", f'    """{" ".join(rng.choices(WORDS, k=12)).capitalize()}."""']
    if todo:
        body.append(f"    # TODO: {' '.join(rng.choices(WORDS, k=8))}")
    for i in range(rng.randint(6, 25)):
        a, b = rng.sample(WORDS, 2)
        body.append(f"    {a}_{i} = {b} * {rng.randint(1, 999)} + {rng.random():.6f}")
    body.append(f"    return {rng.choice(WORDS)}")
    return "\n".join(body) + "\n\n\n"


def generate(dest: Path, files: int = 1500, todos: int = 400, modules: int = 25, seed: int = 7) -> str:
    rng = random.Random(seed)
    dest.mkdir(parents=True)
    todo_files = set(rng.sample(range(files), todos))
    for i in range(files):
        module = f"mod{i % modules:02d}"
        sub = f"sub{(i // modules) % 6}"
        path = dest / "pkg" / module / sub / f"file_{i:04d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        n_funcs = rng.randint(4, 16)
        todo_at = rng.randrange(n_funcs) if i in todo_files else -1
        path.write_text("".join(_function(rng, k, k == todo_at) for k in range(n_funcs)))
    (dest / "README.md").write_text("# generated benchmark repository\n")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "b@example.invalid",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "b@example.invalid",
    }
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "generated"]):
        subprocess.run(["git", *args], cwd=dest, env=env, check=True)
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=dest, capture_output=True, text=True
    ).stdout.strip()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--files", type=int, default=1500)
    parser.add_argument("--todos", type=int, default=400)
    parser.add_argument("--modules", type=int, default=25)
    ns = parser.parse_args()
    print(generate(ns.dest, ns.files, ns.todos, ns.modules))
