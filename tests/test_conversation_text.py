"""Text that reads as a person wrote it (issue 20, item 8): counts, unknown cost, the PR summary."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm

from bot.github import messages
from bot.rlm.fold import fold, new_results
from bot.rlm.llm import usage_of
from bot.rlm.trace import COST_AT_LEAST, COST_UNKNOWN, count, fmt_spend, totals_line


def test_counts_agree_with_their_number():
    assert (
        count(1, "agent") == "1 agent" and count(0, "agent") == "0 agents" and count(3, "agent") == "3 agents"
    )
    results = new_results("r")
    fold(results, {"type": "agent_started", "t": 1, "agent": "root", "depth": 0, "task": "x"})
    assert totals_line(results).startswith("1 agent · max depth 0 · 0 iterations · ")
    line = messages.progress_line({**results, "started_at": "now"}, 0.0, 1.0)
    assert line.startswith("⏳ Running: 1 agent running, 0 finished")


def test_a_model_with_no_known_price_has_an_unknown_cost_not_zero():
    response = litellm.ModelResponse(
        model="openai/no-such-model-priced", usage={"prompt_tokens": 10, "completion_tokens": 5}
    )
    usage = usage_of(response)
    assert usage.cost_usd == 0.0 and usage.as_dict()["unpriced_calls"] == 1
    results = new_results("r")
    fold(results, {"type": "agent_started", "t": 1, "agent": "root", "depth": 0, "task": "x"})
    fold(results, {"type": "llm_call", "t": 2, "agent": "root", "iteration": 1, "usage": usage.as_dict()})
    assert fmt_spend(results["totals"]) == COST_UNKNOWN
    assert totals_line(results).endswith(COST_UNKNOWN) and "$0.0000" not in totals_line(results)
    priced = {"prompt_tokens": 1, "completion_tokens": 1, "cost_usd": 0.25}
    fold(results, {"type": "llm_call", "t": 3, "agent": "root", "iteration": 2, "usage": priced})
    assert fmt_spend(results["totals"]) == COST_AT_LEAST.format(cost="$0.2500")
    assert fmt_spend({"cost_usd": 0.0}) == "$0.0000"  # a priced model that cost nothing


def test_the_pr_summary_does_not_open_with_the_title():
    answer = "Handle None in parse\n\nparse() returned early when the input was None."
    assert messages.pr_title_from(answer, "t") == "Handle None in parse"
    assert messages.summary_text(answer) == "parse() returned early when the input was None."
    assert messages.summary_text("## Summary\n**Handle None in parse**\nBody.") == "Body."
    assert messages.summary_text("Only a title line here") == "Only a title line here"
    assert messages.summary_text("x" * 100 + "\nrest").startswith("x" * 100)  # a cut title keeps its line
