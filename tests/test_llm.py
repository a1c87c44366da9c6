"""The LLM client over the real litellm call path; only the provider (the far side) is faked."""

from __future__ import annotations

import threading
import time

import litellm
import pytest
from litellm import CustomLLM
from litellm.llms.custom_llm import CustomLLMError

from bot.rlm import ModelConfig
from bot.rlm.errors import LLMError, TimeExceeded
from bot.rlm.llm import CallContext, LiteLLMClient, UsageMeter
from bot.rlm.scripted import ScriptError, parse_script, pick_response


class FakeProvider(CustomLLM):
    """Fails with the queued HTTP status codes, then answers with usage from its own response."""

    def __init__(self) -> None:
        super().__init__()
        self.failures: list[tuple[int, str]] = []
        self.calls = 0
        self.lock = threading.Lock()

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
        with self.lock:
            self.calls += 1
            failure = self.failures.pop(0) if self.failures else None
        if failure:
            raise CustomLLMError(status_code=failure[0], message=failure[1])
        text = messages[-1]["content"]
        model_response.choices[0].message.content = f"echo {text}"
        model_response.model = f"fake/{model}"
        n = int(text.split()[-1]) if text.split()[-1].isdigit() else 1
        model_response.usage = litellm.Usage(
            prompt_tokens=100 * n, completion_tokens=10 * n, total_tokens=110 * n
        )
        return model_response


@pytest.fixture(scope="module")
def provider():
    handler = FakeProvider()
    litellm.custom_provider_map = [
        *litellm.custom_provider_map,
        {"provider": "fakeprov", "custom_handler": handler},
    ]
    yield handler
    litellm.custom_provider_map = [p for p in litellm.custom_provider_map if p["provider"] != "fakeprov"]


def client(**cfg) -> tuple[LiteLLMClient, list[float]]:
    sleeps: list[float] = []
    config = ModelConfig(name="fakeprov/model", input_cost_per_token=1e-6, output_cost_per_token=2e-6, **cfg)
    return LiteLLMClient(config, api_key="test-key-not-real", sleep=sleeps.append), sleeps


def ask(c: LiteLLMClient, text="hi", deadline=None):
    return c.complete([{"role": "user", "content": text}], CallContext(task=text), deadline)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_retries_with_backoff_on_rate_limits_and_server_errors(provider, status):
    provider.failures = [(status, "try later"), (status, "try later")]
    c, sleeps = client(max_retries=4)
    completion = ask(c, "hello 1")
    assert completion.text == "echo hello 1"
    assert completion.attempts == 3 and len(sleeps) == 2
    assert 0 < sleeps[0] < sleeps[1] <= 30


def test_gives_up_after_max_retries(provider):
    provider.failures = [(503, "down")] * 5
    c, sleeps = client(max_retries=2)
    with pytest.raises(LLMError, match="failed after 3 attempts"):
        ask(c)
    assert len(sleeps) == 2
    provider.failures = []


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (401, "invalid api key", "refused the API key: set LLM_API_KEY"),
        (400, "This model's maximum context length is 8192 tokens", "context window"),
        (404, "no such model", "does not know this model"),
    ],
)
def test_no_retry_on_auth_context_or_unknown_model(provider, status, message, expected):
    provider.failures = [(status, message)]
    calls = provider.calls
    c, sleeps = client(max_retries=4)
    with pytest.raises(LLMError, match=expected):
        ask(c)
    assert provider.calls == calls + 1 and sleeps == []


def test_deadline_bounds_the_call_and_the_retries(provider):
    c, _ = client()
    with pytest.raises(TimeExceeded):
        ask(c, deadline=time.monotonic() - 1)
    provider.failures = [(503, "down")] * 3
    c2, sleeps = client(max_retries=5)
    with pytest.raises(TimeExceeded):
        ask(c2, deadline=time.monotonic() + 0.05)  # the first backoff would pass the deadline
    provider.failures = []


def test_usage_is_per_call_under_threads(provider):
    c, _ = client()
    meter = UsageMeter()
    results: dict[int, tuple[int, float]] = {}

    def work(n: int) -> None:
        completion = ask(c, f"call {n}")
        meter.record(completion.usage)
        results[n] = (completion.usage.prompt_tokens, completion.usage.cost_usd)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n, (prompt_tokens, cost) in results.items():
        assert prompt_tokens == 100 * n
        assert cost == pytest.approx(100 * n * 1e-6 + 10 * n * 2e-6)
    assert meter.calls == 8 and meter.total.prompt_tokens == 100 * sum(range(1, 9))


def test_script_format_errors_are_clear():
    with pytest.raises(ScriptError, match="non-empty list of rules"):
        parse_script("task: x")
    with pytest.raises(ScriptError, match="unknown keys"):
        parse_script("- task: x\n  responses: []\n  replies: []")
    with pytest.raises(ScriptError, match="not a valid regex"):
        parse_script("- task: '('\n  responses: []")
    rules = parse_script("- task: '^A'\n  responses: [one, two]\n- task: ''\n  responses: [any]")
    assert pick_response(rules, "A task", 1, "s")[1] == "two"
    assert pick_response(rules, "B task", 0, "s")[1] == "any"
    with pytest.raises(ScriptError, match="script exhausted"):
        pick_response(rules, "A task", 2, "s")


def test_a_local_server_needs_no_key(provider):
    seen: dict = {}
    original = provider.completion

    def spy(*args, **kwargs):
        seen["api_key"] = kwargs.get("api_key", args[8] if len(args) > 8 else None)
        return original(*args, **kwargs)

    provider.completion = spy
    try:
        c = LiteLLMClient(ModelConfig(name="fakeprov/model", api_base="http://127.0.0.1:9/v1"), api_key=None)
        assert ask(c, "local 1").text == "echo local 1"
    finally:
        provider.completion = original
    assert seen["api_key"] == "no-key-required"
