"""The scripted model's script files: the format (a list of rules) read and checked, without
litellm (scripted.py serves them through litellm; `rlm run` checks a script before it fetches)."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

import yaml


class ScriptError(ValueError):
    pass


@dataclass(frozen=True)
class Rule:
    task: re.Pattern[str]
    responses: tuple[str, ...]
    latency: float = 0.0


def parse_script(text: str, source: str = "script") -> list[Rule]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ScriptError(f"{source} is not valid YAML: {e}") from None
    if not isinstance(data, list) or not data:
        raise ScriptError(f"{source} must be a non-empty list of rules (task, responses).")
    rules = []
    for i, item in enumerate(data):
        where = f"{source} rule {i + 1}"
        if not isinstance(item, dict):
            raise ScriptError(f"{where} must be a mapping with 'task' and 'responses'.")
        unknown = set(item) - {"task", "latency", "responses"}
        if unknown:
            raise ScriptError(
                f"{where} has unknown keys {sorted(unknown)}; allowed: task, latency, responses."
            )
        pattern = item.get("task", "")
        responses = item.get("responses")
        if not isinstance(pattern, str):
            raise ScriptError(f"{where}: 'task' must be a regular expression string.")
        if not isinstance(responses, list) or not all(isinstance(r, str) for r in responses):
            raise ScriptError(f"{where}: 'responses' must be a list of strings.")
        latency = item.get("latency", 0) or 0
        if not isinstance(latency, int | float) or latency < 0:
            raise ScriptError(f"{where}: 'latency' must be a number of seconds >= 0.")
        try:
            compiled = re.compile(pattern)
        except re.error as e:
            raise ScriptError(f"{where}: 'task' is not a valid regex: {e}.") from None
        rules.append(Rule(compiled, tuple(responses), float(latency)))
    return rules


class _ScriptCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, list[Rule]]] = {}

    def get(self, path: str) -> list[Rule]:
        p = Path(path)
        try:
            mtime = p.stat().st_mtime
        except OSError:
            raise ScriptError(f"scripted model: script file {path} does not exist.") from None
        with self._lock:
            hit = self._cache.get(path)
            if hit and hit[0] == mtime:
                return hit[1]
        rules = parse_script(p.read_text(encoding="utf-8"), source=path)
        with self._lock:
            self._cache[path] = (mtime, rules)
        return rules


_SCRIPTS = _ScriptCache()


def read_script(path: str) -> list[Rule]:
    """A script file's rules; ScriptError with a sentence when it is missing or malformed."""
    try:
        return _SCRIPTS.get(path)
    except (OSError, UnicodeDecodeError) as e:
        raise ScriptError(
            f"scripted model: script file {path} cannot be read: {getattr(e, 'strerror', None) or e}."
        ) from None
