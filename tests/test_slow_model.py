"""A slow model: the per-call timeout fits reasoning models, and a timed-out call is retried at
most `model.timeout_retries` times, counted in the call's record. A local HTTP server stands in
for an OpenAI-compatible provider (the far side of the network boundary)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bot.rlm.config import ModelConfig
from bot.rlm.errors import LLMError
from bot.rlm.llm import CallContext, LiteLLMClient


class SlowProvider:
    """Answers /v1/chat/completions after `delays[i]` seconds for the i-th request."""

    def __init__(self, delays: list[float], words: tuple[str, ...] = (), gap: float = 0.0):
        self.delays = delays
        self.words = words
        self.gap = gap
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if request.get("stream"):
                    return self.stream()
                i = outer.requests
                outer.requests += 1
                time.sleep(outer.delays[min(i, len(outer.delays) - 1)])
                body = json.dumps(
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "created": 0,
                        "model": "slow",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": "done"},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
                    }
                ).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up
                    pass

            def stream(self):
                """Server-sent events: a word every `outer.gap` seconds, then usage, then [DONE]."""
                outer.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()

                def event(delta, finish=None, usage=None):
                    chunk = {
                        "id": "s",
                        "object": "chat.completion.chunk",
                        "created": 0,
                        "model": "slow",
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
                        if usage is None
                        else [],
                    }
                    if usage:
                        chunk["usage"] = usage
                    self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                    self.wfile.flush()

                try:
                    event({"role": "assistant", "content": ""})
                    for word in outer.words:
                        time.sleep(outer.gap)
                        event({"content": word})
                    event({}, finish="stop")
                    event(
                        {},
                        usage={
                            "prompt_tokens": 7,
                            "completion_tokens": len(outer.words),
                            "total_tokens": 7 + len(outer.words),
                        },
                    )
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slow():
    made = []

    def make(delays, **kw):
        p = SlowProvider(delays, **kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def client(base: str, **cfg) -> LiteLLMClient:
    return LiteLLMClient(ModelConfig(name="openai/slow", api_base=base, **cfg), sleep=lambda s: None)


def test_default_timeout_fits_reasoning_models_and_retries_a_timeout_once():
    cfg = ModelConfig()
    assert cfg.timeout >= 600
    assert cfg.timeout_retries == 1


def test_a_timed_out_call_is_retried_once_and_counted(slow):
    provider = slow([3.0, 0.0])
    c = client(provider.base, timeout=1.0)
    done = c.complete([{"role": "user", "content": "hi"}], CallContext(task="t"), None)
    assert done.text == "done"
    assert (done.attempts, done.timeouts) == (2, 1)
    assert provider.requests == 2


def test_a_second_timeout_is_not_paid_for_again(slow):
    provider = slow([3.0])
    c = client(provider.base, timeout=1.0, max_retries=4)
    started = time.monotonic()
    with pytest.raises(LLMError, match=r"model.timeout \(1s\) 2 time\(s\) in 2 attempt"):
        c.complete([{"role": "user", "content": "hi"}], CallContext(task="t"), None)
    assert provider.requests == 2  # not max_retries + 1 = 5
    assert time.monotonic() - started < 8


def test_timeout_retries_zero_means_no_retry_after_a_timeout(slow):
    provider = slow([3.0, 0.0])
    c = client(provider.base, timeout=1.0, timeout_retries=0)
    with pytest.raises(LLMError, match="timeout_retries"):
        c.complete([{"role": "user", "content": "hi"}], CallContext(task="t"), None)
    assert provider.requests == 1


def test_streaming_keeps_a_slow_but_talking_model_alive(slow):
    # Six words, 0.6 s apart: 3.6 s in all, each gap well under the 1.5 s per-call timeout.
    provider = slow([10.0], words=("one ", "two ", "three ", "four ", "five ", "six"), gap=0.6)
    streamed = client(provider.base, timeout=1.5, stream=True, timeout_retries=0)
    done = streamed.complete([{"role": "user", "content": "count"}], CallContext(task="t"), None)
    assert done.text == "one two three four five six"
    assert (done.attempts, done.timeouts) == (1, 0)
    assert done.usage.completion_tokens == 6 and done.usage.prompt_tokens == 7
    assert done.duration > 3.0  # longer than model.timeout: the stream, not the whole call, is bounded


def test_a_stalled_stream_still_times_out(slow):
    provider = slow([10.0], words=("one ", "two"), gap=2.5)
    streamed = client(provider.base, timeout=1.0, stream=True, timeout_retries=0)
    with pytest.raises(LLMError, match="model.timeout"):
        streamed.complete([{"role": "user", "content": "count"}], CallContext(task="t"), None)
    assert provider.requests == 1
