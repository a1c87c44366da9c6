"""The scripted model: `scripted/<path-to-script.yaml>` served through a litellm custom provider.

A script is a list of rules. Each agent replays the responses of the first rule whose `task`
regex matches its task (re.search). The n-th response of a conversation is the one after n
assistant turns already in the messages, so replay needs no shared state and is thread-safe.

    - task: "^Investigate TODO"
      latency: 0.5        # optional seconds per response
      responses:
        - "```python\\nprint(task)\\n```"

This format is stable: checks outside this project write scripts in it.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import litellm
import yaml
from litellm import CustomLLM
from litellm.llms.custom_llm import CustomLLMError

PROVIDER = "scripted"
_register_lock = threading.Lock()


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


def estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def pick_response(rules: list[Rule], task: str, turn: int, source: str) -> tuple[Rule, str]:
    for rule in rules:
        if rule.task.search(task):
            if turn >= len(rule.responses):
                raise ScriptError(
                    f"script exhausted: the rule /{rule.task.pattern}/ in {source} has "
                    f"{len(rule.responses)} responses and this agent asked for response {turn + 1}."
                )
            return rule, rule.responses[turn]
    raise ScriptError(f"no rule in {source} matches the task {task[:120]!r}.")


def _task_of(messages: list[dict], litellm_params: dict | None) -> str:
    meta = (litellm_params or {}).get("metadata") or {}
    if meta.get("rlm_task") is not None:
        return str(meta["rlm_task"])
    for m in messages:
        if m.get("role") == "user":
            return str(m.get("content") or "")
    return ""


class ScriptedLLM(CustomLLM):
    def completion(
        self,
        model,
        messages,
        api_base,
        custom_prompt_dict,
        model_response,
        print_verbose,
        encoding,
        api_key,
        logging_obj,
        optional_params,
        acompletion=None,
        litellm_params=None,
        logger_fn=None,
        headers=None,
        timeout=None,
        client=None,
    ):
        try:
            rules = _SCRIPTS.get(model)
            turn = sum(1 for m in messages if m.get("role") == "assistant")
            rule, text = pick_response(rules, _task_of(messages, litellm_params), turn, model)
        except ScriptError as e:
            raise CustomLLMError(status_code=400, message=str(e)) from None
        if rule.latency:
            limit = float(timeout) if isinstance(timeout, int | float) else None
            if limit is not None and rule.latency > limit:
                time.sleep(limit)
                raise litellm.Timeout(
                    message=f"scripted latency {rule.latency}s exceeds the call timeout {limit:.1f}s",
                    model=model,
                    llm_provider=PROVIDER,
                )
            time.sleep(rule.latency)
        prompt_text = "".join(str(m.get("content") or "") for m in messages)
        model_response.choices[0].message.content = text
        model_response.model = f"{PROVIDER}/{model}"
        model_response.usage = litellm.Usage(
            prompt_tokens=estimate_tokens(prompt_text),
            completion_tokens=estimate_tokens(text),
            total_tokens=estimate_tokens(prompt_text) + estimate_tokens(text),
        )
        return model_response


def register() -> None:
    """Make `scripted/...` resolvable by litellm. Idempotent and thread-safe."""
    with _register_lock:
        if any(item.get("provider") == PROVIDER for item in litellm.custom_provider_map):
            return
        litellm.custom_provider_map = [
            *litellm.custom_provider_map,
            {"provider": PROVIDER, "custom_handler": ScriptedLLM()},
        ]
