"""Synthetic traces of any size, for the viewer's tests and benchmarks (not part of the package).

`synthetic_events` simulates a rollout (a tree of agents, children in parallel batches, iterations
with code blocks, a few failures) and returns its events in emission order; the results JSON is the
engine's own fold of them (`bot.rlm.trace.fold_events`), so it has exactly the engine's shape.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from bot.rlm import fold_events, public, write_json_atomic

T0 = 1_790_000_000.0
FAILURES = (
    ("error", "script exhausted: the model gave no further response"),
    ("budget", "max_iterations (50) reached without FINAL"),
    ("timeout", "global deadline passed (3600s)"),
)
TOPICS = ("parser", "cache", "retry logic", "config loader", "CLI flags", "HTTP client", "tests", "docs")
VERBS = ("Investigate", "Explain", "Fix", "Summarise", "Check", "Refactor")


def _task(rng: random.Random, depth: int, n: int) -> str:
    topic = rng.choice(TOPICS)
    module = f"src/{topic.split()[0].lower()}_{n}.py"
    if depth == 0:
        return f"Fix every TODO in the repository and explain what you changed ({n} files involved)"
    return f"{rng.choice(VERBS)} the {topic} in {module}: find the TODO markers and report what they need"


def _code(rng: random.Random, n: int, k: int) -> str:
    name = f"src/mod_{n}_{k}.py"
    return rng.choice(
        (
            f'import subprocess\nout = subprocess.run(["grep", "-rn", "TODO", "{name}"], capture_output=True, text=True)\nprint(out.stdout)',
            f'with open("{name}") as f:\n    lines = f.read().splitlines()\nfor i, line in enumerate(lines[:12], 1):\n    print(i, line)',
            f'print(edit_file("{name}", "return 0  # TODO", "return compute(x)"))',
            f"import ast\ntree = ast.parse(open({name!r}).read())\nprint([n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)])",
        )
    )


def _stdout(rng: random.Random, n: int) -> str:
    lines = [
        f"src/mod_{n}.py:{rng.randint(1, 400)}:    # TODO: {rng.choice(TOPICS)} needs work"
        for _ in range(rng.randint(1, 8))
    ]
    return "\n".join(lines) + "\n"


class _Sim:
    def __init__(self, agents: int, iterations: int, max_depth: int, seed: int):
        self.rng = random.Random(seed)
        self.events: list[tuple[float, int, dict]] = []
        self.order = 0
        self.max_depth = max_depth
        self.nodes: dict[str, dict] = {"root": {"id": "root", "depth": 0, "children": []}}
        queue = ["root"]
        while len(self.nodes) < agents and queue:
            parent = self.nodes[queue.pop(0)]
            if parent["depth"] >= max_depth:
                continue
            for _ in range(min(self.rng.randint(2, 6), agents - len(self.nodes))):
                queue.append(self._add_child(parent))
        while len(self.nodes) < agents:  # fill up under random inner nodes
            self._add_child(self.rng.choice([n for n in self.nodes.values() if n["depth"] < max_depth]))
        self._plan(iterations)

    def _add_child(self, parent: dict) -> str:
        child = {
            "id": f"{parent['id']}.{len(parent['children']) + 1}",
            "depth": parent["depth"] + 1,
            "children": [],
        }
        parent["children"].append(child["id"])
        self.nodes[child["id"]] = child
        return child["id"]

    def _plan(self, total: int) -> None:
        rng = self.rng
        for node in self.nodes.values():
            kids, batches = list(node["children"]), []
            while kids:
                size = rng.randint(1, 4)
                batches.append(kids[:size])
                kids = kids[size:]
            node["batches"] = batches
            node["iterations"] = len(batches) + 1
        spare = max(0, total - sum(n["iterations"] for n in self.nodes.values()))
        ids = list(self.nodes)
        weights = [rng.random() for _ in ids]
        scale = sum(weights)
        for node_id, w in zip(ids, weights, strict=True):
            self.nodes[node_id]["iterations"] += int(spare * w / scale)
        left = total - sum(n["iterations"] for n in self.nodes.values())
        for i in range(max(0, left)):
            self.nodes[ids[i % len(ids)]]["iterations"] += 1
        for node in self.nodes.values():
            n = node["iterations"]
            spots = sorted(rng.sample(range(1, n), len(node["batches"]))) if node["batches"] else []
            node["spawns"] = dict(zip(spots, node["batches"], strict=True))
            node["fate"] = rng.choice(FAILURES) if node["id"] != "root" and rng.random() < 0.06 else None
            node["task"] = _task(rng, node["depth"], len(node["id"]) + n)

    def emit(self, t: float, kind: str, **fields: Any) -> None:
        self.order += 1
        self.events.append((t, self.order, {"t": round(t, 6), "type": kind, **fields}))

    def run_agent(
        self, node_id: str, t: float, parent: str | None, parent_iteration: int | None, index: int | None
    ) -> float:
        rng, node = self.rng, self.nodes[node_id]
        task = node["task"]
        self.emit(
            t,
            "agent_started",
            agent=node_id,
            parent=parent,
            depth=node["depth"],
            parent_iteration=parent_iteration,
            index=index,
            task=task,
        )
        created = rng.uniform(0.05, 0.4)
        t += created
        self.emit(
            t,
            "sandbox_created",
            agent=node_id,
            sandbox=f"{node_id}-{rng.randrange(16**6):06x}",
            duration=round(created, 4),
        )
        previous = ""
        answer = None
        for n in range(1, node["iterations"] + 1):
            last = n == node["iterations"]
            budget = f"Budget: iteration {n} of 50; {rng.randint(5, 49)} of 50 sub-agent sandboxes left; 5{rng.randint(0, 9)}m left."
            prompt = (
                f"Your task:\n<task>\n{task}\n</task>\n\nThe repository is checked out in the current directory.\n\n{budget}"
                if n == 1
                else f"[block 1]\nstdout:\n{previous}\n{budget}"
            )
            codes = [_code(rng, n, k) for k in range(rng.choice((1, 1, 1, 2)))]
            kids = node["spawns"].get(n)
            if kids:
                codes = [
                    "answers = rlm_query_batched([\n"
                    + "".join(f"    {self.nodes[k]['task']!r},\n" for k in kids)
                    + "])\nprint(answers)"
                ]
            if last:
                answer = f"{node_id}: fixed {rng.randint(1, 9)} TODOs in {rng.choice(TOPICS)}; see the patch."
                codes.append(f"FINAL({answer!r})")
            response = f"Step {n}: let me look at the {rng.choice(TOPICS)} next.\n" + "".join(
                f"```python\n{c}\n```\n" for c in codes
            )
            latency = rng.uniform(0.4, 3.0)
            t += latency
            usage = {"prompt_tokens": 900 + len(prompt) // 4, "completion_tokens": len(response) // 4}
            usage["cost_usd"] = round(usage["prompt_tokens"] * 3e-7 + usage["completion_tokens"] * 2.5e-6, 8)
            self.emit(
                t,
                "llm_call",
                agent=node_id,
                iteration=n,
                prompt=prompt,
                response=response,
                usage=usage,
                duration=round(latency, 4),
                attempts=1,
            )
            for b, code in enumerate(codes):
                start = t
                stdout, stderr, error, final = _stdout(rng, n), "", None, False
                if kids and b == 0:
                    for i, kid in enumerate(kids):
                        self.nodes[kid]["spawned"] = True
                        self.emit(
                            t + 0.001 * (i + 1),
                            "child_spawned",
                            agent=node_id,
                            child=kid,
                            iteration=n,
                            index=i,
                            task=self.nodes[kid]["task"],
                        )
                    ends = [
                        self.run_agent(kid, t + 0.01 * (i + 1), node_id, n, i) for i, kid in enumerate(kids)
                    ]
                    t = max(ends) + 0.01
                    stdout = (
                        repr(
                            [
                                self.nodes[k].get("answer") or "Error: " + self.nodes[k]["fate"][1]
                                for k in kids
                            ]
                        )
                        + "\n"
                    )
                else:
                    t += rng.uniform(0.005, 0.6)
                if last and b == len(codes) - 1:
                    if node["fate"]:
                        stdout, error = "", f"RuntimeError: {node['fate'][1]}"
                        stderr = 'Traceback (most recent call last):\n  File "<repl>", line 1, in <module>\n'
                    else:
                        stdout, final = "", True
                elif rng.random() < 0.05:
                    stderr = f"warning: {rng.choice(TOPICS)} is deprecated\n"
                self.emit(
                    t,
                    "code_executed",
                    agent=node_id,
                    iteration=n,
                    block=b,
                    code=code,
                    stdout=stdout,
                    stderr=stderr,
                    error=error,
                    final=final,
                    duration=round(t - start, 4),
                )
                previous = stdout[:600]
        if node["fate"]:
            status, error, answer = node["fate"][0], node["fate"][1], None
        else:
            status, error = "completed", None
        node["answer"] = answer
        t += 0.005
        self.emit(t, "agent_finished", agent=node_id, status=status, result=answer, error=error)
        return t


def synthetic_events(
    agents: int = 200, iterations: int = 5000, max_depth: int = 3, seed: int = 7
) -> list[dict]:
    """The events of a simulated rollout with this many agents and iterations in total."""
    sim = _Sim(agents, iterations, max_depth, seed)
    run_id = f"synthetic-{agents}a-{iterations}i"
    sim.emit(
        T0,
        "rollout_started",
        run_id=run_id,
        repo="https://github.com/example/project",
        commit="0" * 40,
        branch="main",
        prompt=sim.nodes["root"]["task"],
        model="scripted/synthetic",
        sandbox="local",
        config={"rlm": {"max_depth": max_depth, "max_iterations": 50}},
    )
    end = sim.run_agent("root", T0 + 0.02, None, None, None)
    root = sim.nodes["root"]
    sim.emit(
        end + 0.05,
        "rollout_finished",
        status="completed",
        error=None,
        answer=root["answer"],
        patch={
            "files": 3,
            "additions": 40,
            "deletions": 12,
            "paths": ["src/a.py", "src/b.py", "src/c.py"],
            "binary": [],
        },
    )
    events = [e for _, _, e in sorted(sim.events, key=lambda x: (x[0], x[1]))]
    return [{"seq": seq, **e} for seq, e in enumerate(events, 1)]


def write_synthetic(
    results_dir: Path, agents: int = 200, iterations: int = 5000, seed: int = 7, results: bool = True
) -> tuple[Path, Path]:
    """Write `<run_id>.events.jsonl` and (unless results=False, a run still going) `<run_id>.json`."""
    import json

    events = synthetic_events(agents, iterations, seed=seed)
    run_id = events[0]["run_id"]
    results_dir.mkdir(parents=True, exist_ok=True)
    events_path = results_dir / f"{run_id}.events.jsonl"
    with open(events_path, "w", encoding="utf-8") as f:
        for event in events:
            f.write(json.dumps(event, ensure_ascii=False) + "\n")
    results_path = results_dir / f"{run_id}.json"
    if results:
        write_json_atomic(results_path, public(fold_events(events)))
    return results_path, events_path
