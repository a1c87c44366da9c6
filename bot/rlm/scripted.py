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

import threading
import time

import litellm
from litellm import CustomLLM
from litellm.llms.custom_llm import CustomLLMError

from .config import SCRIPTED_PROVIDER
from .script import _SCRIPTS, Rule, ScriptError, parse_script, read_script  # noqa: F401  (the format)

PROVIDER = SCRIPTED_PROVIDER
_register_lock = threading.Lock()


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
