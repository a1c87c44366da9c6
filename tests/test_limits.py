"""Each budget runs out with a readable sentence for the model (or the run), never a hang."""

from __future__ import annotations

from bot.rlm import engine
from tests.conftest import py


def rollout(make_repo, write_script, make_config, rules, task="Root task", **overrides):
    repo, _ = make_repo()
    config = make_config(write_script(rules), **overrides)
    return engine.run(config, engine.prepare(config, str(repo)), task)


def agent(result, agent_id="root") -> dict:
    return next(a for a in result.results["agents"] if a["id"] == agent_id)


def test_depth_budget(make_repo, write_script, make_config):
    rules = [
        {"task": "^Root", "responses": [py('FINAL(rlm_query("Child"))')]},
        {"task": "^Child", "responses": [py('FINAL(rlm_query("Grandchild"))')]},
        {"task": "^Grandchild", "responses": [py('FINAL("too deep")')]},
    ]
    result = rollout(make_repo, write_script, make_config, rules, rlm__max_depth=1)
    assert result.status == "completed"
    assert result.answer.startswith("Error: maximum depth 1 reached")
    assert "do this task yourself" in result.answer
    assert result.results["totals"]["agents"] == 2
    # The child at max depth is told it cannot delegate, in its budget line every iteration and
    # in its system prompt.
    assert "no delegation (maximum depth)" in agent(result, "root.1")["iterations"][0]["prompt"]
    from bot.rlm.prompts import system_prompt

    assert "rlm_query` and `rlm_query_batched` are not available" in system_prompt(1, 1, "0" * 40, "goal")


def test_sandbox_budget(make_repo, write_script, make_config):
    rules = [
        {"task": "^Root", "responses": [py('r = rlm_query_batched(["C1", "C2", "C3"])\nFINAL(repr(r))')]},
        {"task": "^C", "responses": [py("FINAL(task)")]},
    ]
    result = rollout(make_repo, write_script, make_config, rules, rlm__max_sandboxes=2)
    answers = eval(result.answer)
    assert answers[0] == "C1"
    for text in answers[1:]:
        assert text.startswith("Error: the sandbox budget (2) is used up")
    assert result.results["totals"]["sandboxes"] == 2


def test_iteration_budget(make_repo, write_script, make_config):
    rules = [{"task": "", "responses": [py("x = 1")] * 5}]
    result = rollout(make_repo, write_script, make_config, rules, rlm__max_iterations=2)
    assert result.status == "budget"
    assert "used all 2 iterations" in result.error
    prompts = [it["prompt"] for it in agent(result)["iterations"]]
    assert "iteration 1 of 2" in prompts[0]
    assert "This is your LAST iteration" in prompts[1]


def test_child_iteration_budget_is_an_error_string_for_the_parent(make_repo, write_script, make_config):
    rules = [
        {"task": "^Root", "responses": [py('FINAL(rlm_query("Child"))')]},
        {"task": "^Child", "responses": [py("pass")] * 3},
    ]
    result = rollout(make_repo, write_script, make_config, rules, rlm__max_iterations=2)
    assert result.answer.startswith("Error: sub-agent root.1 ended without an answer (budget)")


def test_cost_budget(make_repo, write_script, make_config):
    rules = [
        {"task": "^Root", "responses": [py('print(rlm_query("Child"))'), py('FINAL("x")')]},
        {"task": "^Child", "responses": [py('FINAL("c")')]},
    ]
    result = rollout(make_repo, write_script, make_config, rules, rlm__max_cost_usd=0.0000001)
    assert result.status == "budget"
    assert "cost limit" in result.error
    block = agent(result)["iterations"][0]["blocks"][0]
    assert block["stdout"].startswith("Error: the cost limit of $0.00 is reached")
    assert result.results["totals"]["agents"] == 1


def test_time_budget_for_llm_calls_and_spawns(make_repo, write_script, make_config):
    rules = [
        {"task": "^Root", "latency": 60, "responses": [py('FINAL("never")')]},
    ]
    result = rollout(make_repo, write_script, make_config, rules, rlm__global_timeout=1.5)
    assert result.status == "timeout", result.error
    assert result.results["duration"] < 15


def test_llm_query_returns_text_and_counts_usage(make_repo, write_script, make_config):
    rules = [
        {"task": "^Root", "responses": [py('FINAL(llm_query("Summarise: abc"))')]},
        {"task": "^Summarise", "responses": ["a short summary"]},
    ]
    result = rollout(make_repo, write_script, make_config, rules)
    assert result.answer == "a short summary"
    assert result.results["totals"]["llm_calls"] == 2


def test_script_exhausted_is_a_clear_error(make_repo, write_script, make_config):
    rules = [{"task": "", "responses": [py("x = 1")]}]
    result = rollout(make_repo, write_script, make_config, rules)
    assert result.status == "error"
    assert "script exhausted" in result.error


def test_prompts_by_depth():
    from bot.rlm.prompts import system_prompt

    root = system_prompt(0, 2, "a" * 40, "Fix the TODO", result_limit=500)
    child = system_prompt(1, 2, "a" * 40, "Fix the TODO")
    leaf = system_prompt(2, 2, "a" * 40, "Fix the TODO")
    assert "rlm_query_batched(tasks)" in root and "answers over 500 characters are cut" in root
    assert "become the patch proposed to the user" in root and "<root_goal>" not in root
    assert "<root_goal>\nFix the TODO\n</root_goal>" in child and "rlm_query(task)" in child
    assert "not available to you" in leaf and "## Delegating" not in leaf
    assert "commit aaaaaaaaaaaa" in leaf
