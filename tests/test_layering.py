"""The layering rules of DESIGN.md "Layout", checked on the source: every import counts, including
those inside functions and under TYPE_CHECKING. A rule is (who, what it must not import)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "webhooks", "action")

# (importer prefix, forbidden import prefixes, why)
RULES = [
    (
        "bot.pipeline",
        ("bot.github", "bot.jobs", "webhooks", "action", "flask", "werkzeug", "github", "gidgethub"),
        "the pipeline is front-end neutral",
    ),
    ("bot.github", ("bot.jobs", "webhooks", "action", "flask"), "bot/github is the GitHub client layer"),
    ("bot.jobs", ("bot.github", "bot.pipeline", "webhooks", "action"), "the job store keeps facts"),
    ("bot.rlm", ("bot.github", "bot.pipeline", "bot.jobs", "webhooks", "action", "flask"), "the engine"),
]


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = modules()


def imports_of(name: str, path: Path) -> set[str]:
    """Every module `name` imports, anywhere in the file; `from pkg import mod` counts as pkg.mod."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            submodules = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES}
            found.update(submodules)
            if len(submodules) < len(node.names):  # names, not modules: the module itself is imported
                found.add(base)
    return found


GRAPH = {name: imports_of(name, path) for name, path in MODULES.items()}


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_layering_rules_hold():
    broken = [
        f"{who} imports {target} ({why})"
        for importer, forbidden, why in RULES
        for who, targets in GRAPH.items()
        if within(who, importer)
        for target in targets
        if any(within(target, f) for f in forbidden)
    ]
    assert broken == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles_outside_the_engine():
    """A module's imports, each resolved to the deepest module of the project it names."""

    def resolve(target: str) -> str | None:
        while target and target not in MODULES:
            target = target.rpartition(".")[0]
        return target or None

    graph = {
        name: {t for t in (resolve(i) for i in targets) if t and t != name and not t.startswith("bot.rlm")}
        for name, targets in GRAPH.items()
        if not within(name, "bot.rlm")  # the engine's own layout is checked beside its surface
    }
    assert _cycles(graph) == []


def test_importing_the_pipeline_loads_no_front_end():
    code = (
        "import sys, bot.pipeline\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('github', 'flask', 'webhooks', 'action', 'gidgethub') or m.startswith(('bot.github', 'bot.jobs')))\n"
        "print(bad)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_python_dash_m_webhooks_is_gone():
    """`rlm serve` and `rlm worker` are the only command line of the App."""
    assert not (ROOT / "webhooks" / "__main__.py").exists()
