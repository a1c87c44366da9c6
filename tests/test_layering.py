"""The boundaries of the layout (README "Layout"), checked by walking every module's imports with `ast`.

Every import counts: at the top, inside functions, and under `TYPE_CHECKING`. `from pkg import x`
is an import of `pkg` when `x` is in its `__all__` (its public surface), else of `pkg.x` when that
is a module, else of `pkg` (and the edge keeps the name `x`, so a rule can ban one public name,
written "pkg:x"). `from ext import x` of a package outside the tree is an import of `ext.x`. A
package's `__init__` is the module named after the package; importing `a.b.c` is not counted as
importing `a` or `a.b`.

To add a boundary, add a row to RULES (or SURFACES); the test names every offending import.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "webhooks", "action")  # what is checked; tests/ and bench/ are not


@dataclass(frozen=True)
class Forbid:
    """Modules under `layer` (one prefix or several), except those under `exempt`, import nothing
    under any of `banned` (except under `allowed`). A banned "pkg:name" is the public name `name`
    imported from the package `pkg`."""

    layer: str | tuple[str, ...]
    banned: tuple[str, ...]
    why: str
    allowed: tuple[str, ...] = ()
    exempt: tuple[str, ...] = ()

    def covers(self, module: str) -> bool:
        layers = (self.layer,) if isinstance(self.layer, str) else self.layer
        return any(within(module, x) for x in layers) and not any(within(module, x) for x in self.exempt)


@dataclass(frozen=True)
class Surface:
    """Code outside `package` imports only the modules in `public` of it."""

    package: str
    public: tuple[str, ...]
    why: str


# The App's intake and its one module per event: they validate a delivery and record a job, no more.
WEBHOOK_EVENTS = (
    "webhooks.intake",
    "webhooks.routing",
    "webhooks.issue_comment",
    "webhooks.review_comment",
    "webhooks.comment_command",
    "webhooks.context",
    "webhooks.payload",
)
# The libraries that talk to GitHub's API; gidgethub's sans-I/O verifying and routing are not writes.
GITHUB_CLIENTS = (
    "github",
    "requests",
    "httpx",
    "urllib3",
    "aiohttp",
    "gidgethub.abc",
    "gidgethub.aiohttp",
    "gidgethub.httpx",
    "gidgethub.tornado",
)
GITHUB_WRITES = ("bot.github", *GITHUB_CLIENTS)

RULES = (
    Forbid(
        "bot.rlm",
        ("bot.github", "bot.pipeline", "bot.jobs", "webhooks", "action", "flask", "github", "gidgethub"),
        "the engine imports no front end, no GitHub, no job store",
    ),
    Forbid("bot.common", ("bot",), "bot.common is shared by every part and depends on none", ("bot.common",)),
    Forbid(
        "bot.pipeline",
        ("bot.github", "bot.jobs", "webhooks", "action", "flask", "werkzeug", "github", "gidgethub"),
        "the pipeline is front-end neutral (it raises and catches its own DeliveryError)",
    ),
    Forbid(
        "bot.github",
        ("bot.jobs", "webhooks", "action", "flask"),
        "bot/github is the GitHub client layer: no job store, no App, no Flask",
    ),
    Forbid(
        "bot.jobs",
        ("bot.github", "bot.pipeline", "webhooks", "action"),
        "the job store keeps facts; the App (webhooks/) decides",
    ),
    Forbid(
        WEBHOOK_EVENTS,
        ("bot.rlm", "bot.pipeline:run", "bot.pipeline.run", "webhooks.handler", *GITHUB_WRITES),
        "webhook handlers only validate and enqueue (the job handler runs and writes)",
        ("bot.github.commands", "bot.github.review"),  # parsing a command, wording a review's task
    ),
    *(
        Forbid(layer, GITHUB_CLIENTS, "every GitHub write goes through bot/github", exempt=("bot.github",))
        for layer in ("bot", "webhooks", "action")
    ),
)
SURFACES = (
    Surface(
        "bot.rlm",
        ("bot.rlm", "bot.rlm.sandbox"),
        "outside the engine, use its public surface (bot/rlm/__init__.py, bot/rlm/sandbox/__init__.py)",
    ),
    Surface(
        "bot.pipeline",
        ("bot.pipeline",),
        "outside the pipeline, use its public surface (bot/pipeline/__init__.py)",
    ),
)
# Cycles that are known and being removed elsewhere; each entry is the set of modules of one cycle.
KNOWN_CYCLES: set[frozenset[str]] = set()


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    name: str = ""  # the public name imported from the package `target` (`from pkg import name`)

    def __str__(self) -> str:
        return f"{self.source} (line {self.line}) imports {self.target}"


def modules(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Module name -> file, for every .py file under `packages` (a package is its __init__)."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def exported(path: Path) -> set[str]:
    """The names in a module's literal `__all__`."""
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return {ast.literal_eval(e) for e in node.value.elts}  # type: ignore[attr-defined]
    return set()


def imports(name: str, path: Path, known: set[str], surface: dict[str, set[str]]) -> list[Edge]:
    """Every import in the module `name`, resolved to the module it loads."""
    is_package = path.name == "__init__.py"
    roots = {m.split(".")[0] for m in known}
    package = name if is_package else name.rpartition(".")[0]
    edges = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            edges += [Edge(name, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if base.split(".")[0] not in roots:  # a third-party package: the name may be a module
                    edges.append(Edge(name, sub, node.lineno))
                    continue
                public = alias.name in surface.get(base, ())
                target = sub if sub in known and not public else base
                edges.append(Edge(name, target, node.lineno, alias.name if target == base else ""))
    return edges


def graph(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, list[Edge]]:
    found = modules(root, packages)
    known = set(found)
    surface = {name: exported(path) for name, path in found.items() if path.name == "__init__.py"}
    return {name: imports(name, path, known, surface) for name, path in found.items()}


def violations(edges_of: dict[str, list[Edge]]) -> list[str]:
    out = []
    for edges in edges_of.values():
        for edge in edges:
            for rule in RULES:
                if not rule.covers(edge.source):
                    continue
                if any(banned(edge, b) for b in rule.banned) and not any(
                    within(edge.target, a) for a in rule.allowed
                ):
                    out.append(f"{edge}: {rule.why}")
            for surface in SURFACES:
                if within(edge.source, surface.package) or not within(edge.target, surface.package):
                    continue
                if edge.target not in surface.public:
                    out.append(f"{edge}: {surface.why}")
    return out


def banned(edge: Edge, what: str) -> bool:
    """Whether the edge imports `what`: a module prefix, or "pkg:name" for one public name of pkg."""
    module, _, name = what.partition(":")
    if name:
        return edge.target == module and edge.name == name
    return within(edge.target, module)


def cycles(edges_of: dict[str, list[Edge]]) -> list[list[str]]:
    """The import cycles among the checked modules (strongly connected components, Tarjan)."""
    succ = {m: sorted({e.target for e in edges if e.target in edges_of}) for m, edges in edges_of.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # iterative, so deep graphs do not hit the recursion limit
        work = [(v, iter(succ[v]))]
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        while work:
            node, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(succ[w])))
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == node:
                            break
                    if len(component) > 1 or node in succ[node]:
                        found.append(sorted(component))

    for v in succ:
        if v not in index:
            visit(v)
    return found


def test_layering_rules_hold():
    assert violations(graph()) == []


def test_no_import_cycles():
    found = [c for c in cycles(graph()) if frozenset(c) not in KNOWN_CYCLES]
    assert found == [], "import cycles (top-level, in functions or under TYPE_CHECKING):\n" + "\n".join(
        " <-> ".join(c) for c in found
    )


# The check itself: each rule fails on a violation planted in a throwaway tree.
PLANTED = {
    "engine imports a front end": ("bot/rlm/engine.py", "from bot.github import api\n", "the engine imports"),
    "engine imports Flask in a function": (
        "bot/rlm/engine.py",
        "def f():\n    import flask\n",
        "the engine imports",
    ),
    "deep import of the engine": (
        "bot/pipeline/run.py",
        "from bot.rlm.rollout import Rollout\n",
        "public surface",
    ),
    "deep import of a sandbox backend": (
        "webhooks/serve.py",
        "from bot.rlm.sandbox.local import provider\n",
        "public surface",
    ),
    "bot.common depends on the engine": ("bot/common/text.py", "from bot.rlm import Config\n", "bot.common"),
    "pipeline imports GitHub": ("bot/pipeline/run.py", "from bot.github import api\n", "front-end neutral"),
    "pipeline imports gidgethub under TYPE_CHECKING": (
        "bot/pipeline/run.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import gidgethub\n",
        "front-end neutral",
    ),
    "GitHub layer imports the job store": ("bot/github/api.py", "from bot.jobs import Job\n", "client layer"),
    "GitHub layer imports the App": ("bot/github/api.py", "def f():\n    import webhooks\n", "client layer"),
    "job store imports the App": ("bot/jobs/sql.py", "from webhooks import kinds\n", "keeps facts"),
    "deep import of the pipeline": (
        "bot/github/api.py",
        "from bot.pipeline.keys import missing_keys\n",
        "surface (bot/pipeline",
    ),
    "webhook handler runs the pipeline": (
        "webhooks/issue_comment.py",
        "from bot.pipeline import run\n",
        "only validate and enqueue",
    ),
    "webhook handler runs the engine": (
        "webhooks/comment_command.py",
        "def f():\n    import bot.rlm\n",
        "only validate and enqueue",
    ),
    "webhook handler writes to GitHub": (
        "webhooks/issue_comment.py",
        "from bot.github.api import GitHubAPI\n",
        "only validate and enqueue",
    ),
    "PyGithub outside bot/github": (
        "action/main.py",
        "from github import Github\n",
        "goes through bot/github",
    ),
    "requests outside bot/github": ("bot/cli.py", "import requests\n", "goes through bot/github"),
    "gidgethub client outside bot/github": (
        "webhooks/serve.py",
        "from gidgethub import httpx\n",
        "goes through bot/github",
    ),
}


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


BASE = {
    "bot/__init__.py": "",
    "bot/rlm/__init__.py": "from .engine import run\n",
    "bot/rlm/engine.py": "from bot.common.text import clean\n",
    "bot/rlm/rollout.py": "",
    "bot/rlm/sandbox/__init__.py": "",
    "bot/rlm/sandbox/local/__init__.py": "",
    "bot/rlm/sandbox/local/provider.py": "",
    "bot/common/__init__.py": "",
    "bot/common/text.py": "",
    "bot/github/__init__.py": "",
    "bot/github/api.py": "",
    "bot/pipeline/__init__.py": '__all__ = ["run", "RunRequest"]\n',
    "bot/pipeline/keys.py": "",
    "bot/pipeline/run.py": "from bot.rlm import run\nfrom bot.rlm.sandbox import make_provider\n",
    "bot/cli.py": "from bot.pipeline import run\n",
    "bot/jobs/__init__.py": "",
    "bot/jobs/sql.py": "",
    "webhooks/__init__.py": "",
    "webhooks/issue_comment.py": "from gidgethub import routing, sansio\nfrom .comment_command import enqueue\n",
    "webhooks/comment_command.py": "from bot.github.commands import parse_command\nfrom bot.pipeline import RunRequest\n",
    "webhooks/handler.py": "from bot.pipeline import run\nfrom bot.github.api import GitHubAPI\n",
    "bot/github/commands.py": "",
    "action/main.py": "",
    "webhooks/serve.py": "from bot.rlm import sandbox\n",
    "action/__init__.py": "",
}


def test_a_clean_tree_passes(tmp_path):
    edges = graph(_tree(tmp_path, BASE))
    assert violations(edges) == [] and cycles(edges) == []


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_each_rule_fails_on_a_violation(tmp_path, case):
    rel, text, says = PLANTED[case]
    root = _tree(tmp_path, {**BASE, rel: BASE[rel] + text})
    found = violations(graph(root))
    assert len(found) == 1 and says in found[0], found


def test_a_cycle_fails_even_inside_a_function_or_under_type_checking(tmp_path):
    files = {
        **BASE,
        "bot/github/api.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bot.pipeline.run import run\n",
        "bot/pipeline/run.py": "def f():\n    from ..github import api\n",
    }
    assert cycles(graph(_tree(tmp_path, files))) == [["bot.github.api", "bot.pipeline.run"]]


def test_importing_the_pipeline_loads_no_front_end():
    """`import bot.pipeline` loads neither PyGithub, Flask, the job store nor a front end."""
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
    """`rlm serve` and `rlm worker` are the App's only command line."""
    assert not (ROOT / "webhooks" / "__main__.py").exists()
