"""The one way the engine talks to a model: litellm, with timeouts, retries and per-call usage.

Usage and cost are read from each call's own response and returned with it, so concurrent
agents never see each other's numbers.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

# litellm otherwise fetches its price table from the network at import time (slow, and offline here).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402
import openai  # noqa: E402

from bot.common.retry import call_with_retries  # noqa: E402
from bot.common.text import clean_obj  # noqa: E402

from .config import SCRIPTED_PROVIDER, ModelConfig  # noqa: E402
from .errors import LLMError, TimeExceeded  # noqa: E402

litellm.suppress_debug_info = True
litellm.telemetry = False
# litellm logs every call at INFO; our own events carry what matters.
for _name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx"):
    logging.getLogger(_name).setLevel(logging.WARNING)

# Prices used for scripted models so that cost accounting is exercised (USD per token).
SCRIPTED_INPUT_COST = 0.5e-6
SCRIPTED_OUTPUT_COST = 3e-6

_RETRYABLE = (
    litellm.RateLimitError,
    litellm.InternalServerError,
    litellm.ServiceUnavailableError,
    litellm.BadGatewayError,
    litellm.APIConnectionError,
    litellm.Timeout,  # derives from openai's APITimeoutError, not from litellm.APIConnectionError
)
TIMED_OUT = (
    "the model did not answer within model.timeout ({timeout:g}s) {timeouts} time(s) in {attempts} attempt(s); "
    "raise model.timeout for a slow model, or model.timeout_retries to retry more"
)
_FATAL_HINTS: list[tuple[type[Exception], str]] = [
    (litellm.AuthenticationError, "the provider refused the API key: set LLM_API_KEY to a valid key"),
    (litellm.PermissionDeniedError, "the provider refused access to this model with this key"),
    (litellm.NotFoundError, "the provider does not know this model: check model.name"),
    (litellm.BadRequestError, "the provider rejected the request"),
]


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_calls: int = 0  # calls whose cost is unknown (no price for the model): not in cost_usd

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost_usd += other.cost_usd
        self.unpriced_calls += other.unpriced_calls

    def as_dict(self) -> dict[str, Any]:
        data = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": round(self.cost_usd, 8),
        }
        if self.unpriced_calls:
            data["unpriced_calls"] = self.unpriced_calls
        return data


@dataclass
class Completion:
    text: str
    usage: Usage
    duration: float
    attempts: int = 1
    timeouts: int = 0  # attempts that ran out of model.timeout (and were retried)


@dataclass
class CallContext:
    """What a model call is for; the scripted model matches on `task`."""

    task: str
    agent_id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


class ModelClient(Protocol):
    def complete(
        self, messages: list[dict[str, str]], ctx: CallContext, deadline: float | None
    ) -> Completion: ...


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


class LiteLLMClient:
    """ModelClient over litellm.completion. One instance serves every agent of a rollout."""

    def __init__(self, cfg: ModelConfig, api_key: str | None = None, sleep=time.sleep):
        self.cfg = cfg
        self.api_key = api_key
        self._sleep = sleep
        self.scripted = cfg.name.startswith(f"{SCRIPTED_PROVIDER}/")
        if self.scripted:
            from . import scripted

            scripted.register()

    def _kwargs(self, messages, ctx: CallContext, timeout: float) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "model": self.cfg.name,
            "messages": messages,
            "timeout": timeout,
            "num_retries": 0,  # retries are ours, so they respect the deadline
            "metadata": {"rlm_task": ctx.task, "rlm_agent": ctx.agent_id, **ctx.metadata},
        }
        if self.api_key:
            kw["api_key"] = self.api_key
        if self.cfg.api_base:
            kw["api_base"] = self.cfg.api_base
            # Local OpenAI-compatible servers ignore the key, but the client refuses to send none.
            kw.setdefault("api_key", "no-key-required")
        if self.cfg.temperature is not None:
            kw["temperature"] = self.cfg.temperature
        if self.cfg.max_tokens is not None:
            kw["max_tokens"] = self.cfg.max_tokens
        inp, out = self.cfg.input_cost_per_token, self.cfg.output_cost_per_token
        if self.scripted:
            inp = SCRIPTED_INPUT_COST if inp is None else inp
            out = SCRIPTED_OUTPUT_COST if out is None else out
        if inp is not None and out is not None:
            kw["input_cost_per_token"] = inp
            kw["output_cost_per_token"] = out
        return kw

    def complete(self, messages, ctx: CallContext, deadline: float | None) -> Completion:
        """One completion, retried (bot.common.retry) on rate limits, timeouts and server errors within
        `max_retries` and the rollout's deadline."""
        start = time.monotonic()
        attempts = 0
        timeouts = 0

        def retryable(e: BaseException) -> bool:
            """Rate limits and server errors within max_retries; a timed-out call (as long as the
            timeout, paid for again) only `timeout_retries` times."""
            nonlocal timeouts
            if isinstance(e, litellm.Timeout):
                timeouts += 1
                return timeouts <= self.cfg.timeout_retries
            return isinstance(e, _RETRYABLE)

        def once():
            nonlocal attempts
            attempts += 1
            timeout = self.cfg.timeout
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeExceeded("the rollout's time ran out while waiting for the model")
                timeout = min(timeout, remaining)
            kwargs = self._kwargs(clean_obj(messages), ctx, timeout)
            if self.cfg.stream and not self.scripted:
                return _streamed(kwargs, deadline)
            return litellm.completion(**kwargs)

        def overruns(wait: float) -> bool:
            return deadline is not None and time.monotonic() + wait >= deadline

        try:
            response = call_with_retries(
                once,
                retry_if=retryable,
                tries=self.cfg.max_retries + 1,
                base=0.5,
                cap=30.0,
                wait_hint=_retry_after,
                sleep=self._sleep,
                describe="model call",
                deadline=overruns,
            )
        except _RETRYABLE as exc:
            if isinstance(exc, litellm.Timeout) and timeouts > self.cfg.timeout_retries:
                raise LLMError(
                    TIMED_OUT.format(attempts=attempts, timeout=self.cfg.timeout, timeouts=timeouts)
                ) from None
            if attempts <= self.cfg.max_retries:  # stopped early: waiting would overrun the deadline
                raise TimeExceeded("the rollout's time ran out while retrying the model") from None
            raise LLMError(f"model call failed after {attempts} attempts: {_short(exc)}") from None
        except openai.OpenAIError as exc:  # litellm's exception types all derive from openai's
            raise LLMError(_fatal_message(exc)) from None
        return Completion(
            text=_content(response),
            usage=usage_of(response),
            duration=time.monotonic() - start,
            attempts=attempts,
            timeouts=timeouts,
        )


def _streamed(kwargs: dict[str, Any], deadline: float | None):
    """One streamed completion, assembled into an ordinary response (usage included where the
    provider reports it). `timeout` bounds each wait for the next chunk, not the whole answer."""
    stream = litellm.completion(**kwargs, stream=True, stream_options={"include_usage": True})
    chunks = []
    try:
        for chunk in stream:
            chunks.append(chunk)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeExceeded("the rollout's time ran out while the model was answering")
    finally:
        close = getattr(stream, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # closing an already finished stream
                pass
    return litellm.stream_chunk_builder(chunks, messages=kwargs["messages"])


CONTEXT_HINT = (
    "the conversation no longer fits the model's context window; use a model with a larger "
    "window or delegate more work to sub-agents"
)
# litellm maps context-window errors for the big providers only; others say it in the message.
_CONTEXT_WORDS = (
    "context length",
    "context window",
    "maximum context",
    "too many tokens",
    "prompt is too long",
)


def _fatal_message(exc: Exception) -> str:
    if isinstance(exc, litellm.ContextWindowExceededError) or (
        isinstance(exc, litellm.BadRequestError) and any(w in str(exc).lower() for w in _CONTEXT_WORDS)
    ):
        return f"{CONTEXT_HINT} ({_short(exc)})"
    for cls, hint in _FATAL_HINTS:
        if isinstance(exc, cls):
            return f"{hint} ({_short(exc)})"
    return f"model call failed: {_short(exc)}"


def _retry_after(exc: BaseException) -> float | None:
    """The provider's `retry-after`, in seconds, when it sent one."""
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    try:
        return float(headers.get("retry-after", ""))
    except (TypeError, ValueError):
        return None


def _content(response) -> str:
    try:
        content = response.choices[0].message.content
    except (AttributeError, IndexError):
        return ""
    return content or ""


def usage_of(response) -> Usage:
    usage = getattr(response, "usage", None)
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion = int(getattr(usage, "completion_tokens", 0) or 0)
    cost = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
    if cost is None:
        try:
            cost = litellm.completion_cost(completion_response=response)
        except Exception:  # litellm raises many types for an unpriced model; cost is then unknown
            return Usage(prompt, completion, 0.0, unpriced_calls=1)
    return Usage(prompt, completion, float(cost or 0.0))


_warmed: set[str] = set()
_warm_lock = threading.Lock()


def warm_up(cfg: ModelConfig) -> None:
    """litellm imports most of its call path lazily on the first call (about half a second).
    Walk that path once with a mocked response (no network, no cost), so the first real call
    of a rollout (always on its critical path) does not pay for it. Idempotent per model."""
    with _warm_lock:
        if cfg.name in _warmed:
            return
        _warmed.add(cfg.name)
    if cfg.name.startswith(f"{SCRIPTED_PROVIDER}/"):
        from . import scripted

        scripted.register()
    try:
        litellm.completion(
            model=cfg.name,
            messages=[{"role": "user", "content": "warm-up"}],
            mock_response="ok",
            api_key="warm-up",
            api_base=cfg.api_base,
        )
    except Exception:  # best effort: a model litellm cannot map fails the same way on the real call
        pass


class UsageMeter:
    """Thread-safe running total, fed with each call's own usage."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = Usage()
        self.calls = 0

    def record(self, usage: Usage) -> Usage:
        with self._lock:
            self.total.add(usage)
            self.calls += 1
            return Usage(self.total.prompt_tokens, self.total.completion_tokens, self.total.cost_usd)


def model_provider(name: str, api_base: str | None = None) -> str | None:
    """The provider litellm routes a model name to, or None when it knows none for that name."""
    try:
        return litellm.get_llm_provider(name, api_base=api_base)[1]
    except Exception:  # litellm's BadRequestError and friends: the name names no provider
        return None


def missing_provider_keys(name: str) -> list[str]:
    """The provider's own key variables (ANTHROPIC_API_KEY, ...) litellm would read for this model
    and finds unset; [] when it has what it needs (or needs none)."""
    try:
        found = litellm.validate_environment(model=name)
    except Exception:
        return []
    return [] if found.get("keys_in_environment") else list(found.get("missing_keys") or [])
