"""The tasks file of `rlm eval`: what to run, on which commit, and how to judge it (docs/eval.md).

    tasks:
      - name: more-itertools-1001
        repo: more-itertools-1001/repo.bundle   # a git URL or a path (relative to this file)
        commit: 0123abcd...                     # the base commit
        issue_file: more-itertools-1001/issue.md  # or `issue: |` inline: the root's `context`
        prompt: Fix the issue in `context`.     # optional (defaults: below)
        setup: [...]                            # optional: sandbox.setup for this task
        script: more-itertools-1001/fix.yaml    # optional: the scripted model's answer
        judge:
          files: {tests/test_more.py: more-itertools-1001/judge/test_more.py}
          commands: [python -m unittest tests.test_more.LastTests]
          timeout: 300
        upstream: {...}                         # free-form facts (URL, commits, license)
    defaults: {prompt: ..., setup: [...]}       # optional: for every task
    variants:                                   # optional: settings to compare side by side
      - name: flat
        set: {rlm.max_depth: 0}

Every problem is one `TasksError` sentence naming the file, the line and the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PROMPT = (
    "Resolve the issue given in `context` (read it with code). Change the repository's code so the "
    "problem is fixed, check the fix by running the relevant tests, and finish with a short summary."
)
DEFAULT_JUDGE_TIMEOUT = 600.0
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
TASK_KEYS = {
    "name",
    "repo",
    "commit",
    "issue",
    "issue_file",
    "prompt",
    "setup",
    "script",
    "judge",
    "upstream",
}
JUDGE_KEYS = {"commands", "files", "timeout"}
TOP_KEYS = {"tasks", "defaults", "variants"}
DEFAULT_KEYS = {"prompt", "setup"}
VARIANT_KEYS = {"name", "set"}

UNREADABLE = "cannot read the tasks file {path}: {reason}."
NOT_YAML = "{path} line {line}: not valid YAML ({reason})."
MISSING_FILE = "names {target}, which does not exist; give a path relative to the tasks file."


class TasksError(ValueError):
    """A tasks file the user must fix; str() is one sentence naming the file, line and field."""


@dataclass(frozen=True)
class Judge:
    commands: tuple[str, ...]
    files: dict[str, Path]  # path in the repository -> file on this machine (added only for judging)
    timeout: float = DEFAULT_JUDGE_TIMEOUT


@dataclass(frozen=True)
class Task:
    name: str
    repo: str  # a URL, or an absolute path
    commit: str
    issue: str  # the root's `context`
    prompt: str
    judge: Judge
    setup: list[str] | str = field(default_factory=list)  # sandbox.setup ('auto' or commands)
    script: Path | None = None  # the scripted model's answer for this task
    upstream: dict[str, Any] = field(default_factory=dict)
    line: int = 0


@dataclass(frozen=True)
class VariantSpec:
    name: str
    overrides: dict[str, Any]  # dotted config keys -> values


@dataclass(frozen=True)
class TaskSet:
    path: Path
    tasks: list[Task]
    variants: list[VariantSpec]


class _Loader(yaml.SafeLoader):
    """Mappings remember their line and each key's line (1-based), for the error messages."""


class _Map(dict):
    line: int = 0
    key_lines: dict[str, int]


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    result = _Map()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[str(key)] = key_node.start_mark.line + 1
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)


class _Where:
    def __init__(self, path: Path, mapping: Any, what: str):
        self.path, self.mapping, self.what = path, mapping, what

    def line(self, key: str | None = None) -> int:
        if isinstance(self.mapping, _Map):
            return self.mapping.key_lines.get(key or "", self.mapping.line) if key else self.mapping.line
        return 0

    def error(self, key: str | None, message: str) -> TasksError:
        line = self.line(key)
        where = f"{self.path} line {line}" if line else str(self.path)
        field_name = f"'{key}' " if key else ""
        return TasksError(f"{where}: {self.what}{': ' if self.what else ''}{field_name}{message}")

    def text(self, key: str, required: bool = True, default: str | None = None) -> str | None:
        value = self.mapping.get(key)
        if value is None:
            if required and default is None:
                raise self.error(None, f"the field '{key}' is required.")
            return default
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key == "commit":
            raise self.error(key, "must be a quoted string (YAML read the SHA as a number).")
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, "must be a non-empty string.")
        return value

    def unknown(self, allowed: set[str]) -> None:
        extra = sorted(str(k) for k in self.mapping if k not in allowed)
        if extra:
            raise self.error(extra[0], f"is not a known field (known: {', '.join(sorted(allowed))}).")


def _commands(where: _Where, key: str, value: Any, allow_auto: bool = False) -> list[str] | str:
    if allow_auto and value == "auto":
        return "auto"
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(c, str) and c.strip() for c in value):
        raise where.error(key, "must be a command or a list of commands (strings).")
    return list(value)


def _local_file(where: _Where, key: str, base: Path, value: str) -> Path:
    path = (base / value).resolve()
    if not path.is_file():
        raise where.error(key, MISSING_FILE.format(target=path))
    return path


def _judge(where: _Where, base: Path, value: Any) -> Judge:
    if not isinstance(value, dict):
        raise where.error("judge", "must be a mapping with 'commands' (and optionally 'files', 'timeout').")
    jw = _Where(where.path, value, f"{where.what}: judge")
    jw.unknown(JUDGE_KEYS)
    if value.get("commands") is None:
        raise jw.error(
            None, "the field 'commands' is required (the tests that must fail before and pass after)."
        )
    commands = _commands(jw, "commands", value["commands"])
    files_value = value.get("files") or {}
    if not isinstance(files_value, dict):
        raise jw.error("files", "must map a path in the repository to a file beside the tasks file.")
    files: dict[str, Path] = {}
    for dest, src in files_value.items():
        if not isinstance(dest, str) or not isinstance(src, str):
            raise jw.error("files", "must map a path in the repository to a file beside the tasks file.")
        if dest.startswith("/") or ".." in Path(dest).parts:
            raise jw.error("files", f"{dest!r} must be a relative path inside the repository.")
        files[dest] = _local_file(jw, "files", base, src)
    timeout = value.get("timeout", DEFAULT_JUDGE_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise jw.error("timeout", "must be a positive number of seconds.")
    return Judge(tuple(commands), files, float(timeout))


def _task(path: Path, index: int, raw: Any, defaults: dict) -> Task:
    if not isinstance(raw, dict):
        raise TasksError(f"{path}: task {index + 1} must be a mapping of fields (name, repo, commit, ...).")
    label = raw.get("name") if isinstance(raw.get("name"), str) else f"#{index + 1}"
    where = _Where(path, raw, f"task {label}")
    where.unknown(TASK_KEYS)
    name = where.text("name")
    assert name is not None
    if not NAME_RE.match(name):
        raise where.error("name", "must be letters, digits, '.', '_' or '-' (at most 80).")
    base = path.parent
    repo = where.text("repo")
    assert repo is not None
    if "://" not in repo and not re.match(r"^[\w.-]+@[\w.-]+:", repo):
        local = (base / repo).resolve()
        if not local.exists():
            raise where.error("repo", MISSING_FILE.format(target=local))
        repo = str(local)
    commit = where.text("commit")
    assert commit is not None
    if not re.fullmatch(r"[0-9a-fA-F]{7,40}", commit):
        raise where.error("commit", "must be a commit SHA (7 to 40 hex digits).")
    if raw.get("issue") is not None and raw.get("issue_file") is not None:
        raise where.error("issue_file", "give either 'issue' (the text) or 'issue_file' (a path), not both.")
    if raw.get("issue_file") is not None:
        issue = _local_file(where, "issue_file", base, where.text("issue_file") or "").read_text(
            encoding="utf-8"
        )
    else:
        issue = where.text("issue", required=False, default="") or ""
    prompt = where.text("prompt", required=False, default=defaults.get("prompt") or DEFAULT_PROMPT)
    setup_value = raw["setup"] if "setup" in raw else defaults.get("setup")
    setup = _commands(where, "setup", setup_value, allow_auto=True) if setup_value else []
    script = None
    if raw.get("script") is not None:
        script = _local_file(where, "script", base, where.text("script") or "")
    if "judge" not in raw:
        raise where.error(None, "the field 'judge' is required (its 'commands' decide resolved).")
    judge = _judge(where, base, raw["judge"])
    upstream = raw.get("upstream") or {}
    if not isinstance(upstream, dict):
        raise where.error("upstream", "must be a mapping (url, base, fix, issue, license, ...).")
    return Task(
        name=name,
        repo=repo,
        commit=commit.lower(),
        issue=issue,
        prompt=prompt or DEFAULT_PROMPT,
        judge=judge,
        setup=setup,
        script=script,
        upstream=dict(upstream),
        line=where.line(),
    )


def _variants(path: Path, raw: Any) -> list[VariantSpec]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise TasksError(f"{path}: 'variants' must be a list of {{name, set}} mappings.")
    variants = []
    for i, item in enumerate(raw):
        where = _Where(path, item if isinstance(item, dict) else {}, f"variant {i + 1}")
        if not isinstance(item, dict):
            raise where.error(None, "must be a mapping with 'name' and 'set'.")
        where.unknown(VARIANT_KEYS)
        name = where.text("name")
        assert name is not None
        if not NAME_RE.match(name):
            raise where.error("name", "must be letters, digits, '.', '_' or '-' (at most 80).")
        overrides = item.get("set") or {}
        if not isinstance(overrides, dict) or not all(isinstance(k, str) for k in overrides):
            raise where.error("set", "must map dotted config keys (rlm.max_depth, model.name) to values.")
        variants.append(VariantSpec(name, dict(overrides)))
    _unique(path, [v.name for v in variants], "variant")
    return variants


def _unique(path: Path, names: list[str], what: str) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise TasksError(f"{path}: two {what}s are named {name!r}; give each a different name.")
        seen.add(name)


def load_tasks(path: Path) -> TaskSet:
    """Read and check a tasks file; raises TasksError with a sentence naming the line and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise TasksError(UNREADABLE.format(path=path, reason=e.strerror or e)) from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506  a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        reason = getattr(e, "problem", None) or str(e)
        raise TasksError(
            NOT_YAML.format(path=path, line=mark.line + 1 if mark else "?", reason=reason)
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list) or not data["tasks"]:
        raise TasksError(f"{path}: the file must be a mapping with a non-empty 'tasks' list.")
    top = _Where(path, data, "")
    top.unknown(TOP_KEYS)
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise top.error("defaults", "must be a mapping (prompt, setup).")
    _Where(path, defaults, "defaults").unknown(DEFAULT_KEYS)
    tasks = [_task(path.resolve(), i, raw, defaults) for i, raw in enumerate(data["tasks"])]
    _unique(path, [t.name for t in tasks], "task")
    return TaskSet(path.resolve(), tasks, _variants(path, data.get("variants")))


def parse_variant(text: str) -> VariantSpec:
    """`--variant NAME=KEY=VALUE,KEY=VALUE` (or just NAME for the settings as given). Values are
    read as YAML scalars: `rlm.max_depth=0` is a number, `sandbox.setup=[]` no setup."""
    name, _, rest = text.partition("=")
    name = name.strip()
    if not NAME_RE.match(name):
        raise TasksError(
            f"--variant {text!r}: start with a name (letters, digits, '.', '_', '-'), e.g. "
            "--variant flat=rlm.max_depth=0 or --variant big=model.name=openai/gpt-4.1."
        )
    overrides: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise TasksError(f"--variant {text!r}: {part!r} is not KEY=VALUE (e.g. rlm.max_depth=0).")
        overrides[key.strip()] = _scalar(value.strip())
    return VariantSpec(name, overrides)


def _scalar(text: str) -> Any:
    """A value as YAML reads it (`0`, `true`, `[]`, `null`), else the text itself."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (int, float, bool, list, type(None))) else text
