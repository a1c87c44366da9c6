"""`/rlm` command parsing, report text, and a repository's .github/rlm.yml within server bounds."""

from __future__ import annotations

from importlib import metadata

import pytest

from bot.github import messages
from bot.github.auth import AppSettingsError
from bot.github.commands import HELP_TEXT, Command, help_text, parse_command
from bot.github.repo_config import (
    COST_ABOVE_MAXIMUM,
    DEFAULT_COST_CAP_USD,
    KEY_NOT_ALLOWED,
    MODEL_NOT_ALLOWED,
    SECTION_NOT_ALLOWED,
    CostCap,
    RepoPolicy,
    apply_repo_config,
    repo_settings,
)
from bot.rlm import load_config


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/rlm fix the easiest TODO", Command("run", "fix the easiest TODO")),
        ("/rlm fix it\nand also\nthis", Command("run", "fix it\nand also\nthis")),
        ("/rlm\nthe task is below", Command("run", "the task is below")),
        ("Hi!\n\n/rlm add tests", Command("run", "add tests")),
        ("  /rlm   spaced   ", Command("run", "spaced")),
        ("/rlm help", Command("help")),
        ("/rlm HELP", Command("help")),
        ("/rlm status", Command("status")),
        ("/rlm cancel", Command("cancel")),
        ("/rlm cancel\nplease", Command("cancel")),
        ("/rlm help me fix the parser", Command("run", "help me fix the parser")),
        ("/rlm review", Command("review", "")),
        ("/rlm Review error handling\nand the tests", Command("review", "error handling\nand the tests")),
        ("/rlm reviewers are slow", Command("run", "reviewers are slow")),
        ("/rlm", Command("invalid", "")),
        ("/rlm   ", Command("invalid", "")),
        ("/rlm --depth 3 fix", Command("invalid", "--depth 3 fix")),
        ("no command here", None),
        ("/rlmfoo bar", None),
        ("talk about /rlm in prose", None),
        ("```\n/rlm inside a code block\n```", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_command(text, expected):
    assert parse_command(text) == expected


def test_custom_prefix():
    assert parse_command("/bot do it", prefix="/bot") == Command("run", "do it")
    assert parse_command("/rlm do it", prefix="/bot") is None
    assert "`/bot cancel`" in help_text("/bot")
    assert HELP_TEXT.format(prefix="/rlm") == help_text()


def test_pr_title():
    assert messages.pr_title("fix the TODO\nmore details") == "rlm: fix the TODO"
    long = messages.pr_title("x" * 200)
    assert len(long) == messages.PR_TITLE_LIMIT and long.endswith("…")


def test_status_body_footer_only_while_running():
    running = messages.status_body("run-1", "do it", ["line"], prefix="/rlm")
    done = messages.status_body("run-1", "do it", ["line"], prefix="/rlm", final=True)
    assert messages.STATUS_FOOTER.format(prefix="/rlm") in running
    assert messages.STATUS_FOOTER.format(prefix="/rlm") not in done
    version = messages.STATUS_VERSION.format(version=metadata.version("rlm-bot"))
    assert running.endswith(version) and done.endswith(version)  # which release wrote it
    assert messages.STATUS_HEADER.format(run_id="run-1") in done and "> do it" in done


def test_patch_comment_is_bounded():
    body = messages.patch_comment("r1", "+" * (messages.PATCH_LIMIT + 10), "https://bot.example/runs/t/patch")
    assert messages.PATCH_TOO_LONG.format(url="https://bot.example/runs/t/patch") in body
    assert len(body) < messages.PATCH_LIMIT + 500
    local = messages.patch_comment("r1", "+" * (messages.PATCH_LIMIT + 10))
    assert messages.PATCH_TOO_LONG_LOCAL.format(name="r1.patch") in local


def test_status_comment_is_cut_to_githubs_limit_with_a_link():
    from bot.github.status import StatusComment

    trace = "https://bot.example/runs/tok/"
    status = StatusComment(None, "o/r", 1, "r1", "task", trace_url=trace)  # type: ignore[arg-type]
    status.notes.append("n" * 70000)  # e.g. a very long error from GitHub
    body = status.render(["done"], final=True)
    assert len(body) == messages.BODY_LIMIT
    assert body.endswith(messages.CUT_MARKER.format(limit=messages.BODY_LIMIT, url=trace))


# ---------------------------------------------------------------- repo config


@pytest.fixture
def server_config():
    return load_config(
        None,
        {"model.name": "openrouter/a", "rlm.max_depth": 2, "rlm.max_sandboxes": 10, "rlm.max_cost_usd": 1.0},
        environ={},
    )


def test_repo_config_lowers_limits(server_config):
    config, notes = apply_repo_config(server_config, "rlm:\n  max_depth: 1\n  max_iterations: 5\n")
    assert notes == []
    assert (config.rlm.max_depth, config.rlm.max_iterations) == (1, 5)


def test_repo_config_cannot_raise_limits(server_config):
    config, notes = apply_repo_config(
        server_config, "rlm:\n  max_depth: 3\n  max_sandboxes: 500\n  max_cost_usd: 50\n"
    )
    assert (config.rlm.max_depth, config.rlm.max_sandboxes, config.rlm.max_cost_usd) == (2, 10, 1.0)
    assert notes == [COST_ABOVE_MAXIMUM.format(asked=50, cap=1.0)]  # the repository hears its cap


def test_repo_cost_cap_has_the_operators_default_and_is_bounded_by_its_maximum(server_config):
    policy = RepoPolicy(cost=CostCap(default_usd=5.0, max_usd=20.0))
    settings = repo_settings(server_config, None, policy=policy)
    assert settings.config.rlm.max_cost_usd == 5.0 and settings.problems == []  # the default applies
    settings = repo_settings(server_config, "rlm:\n  max_cost_usd: 12.5\n", policy=policy)
    assert settings.config.rlm.max_cost_usd == 12.5 and settings.problems == []  # above the default: allowed
    settings = repo_settings(server_config, "rlm:\n  max_cost_usd: 0.05\n", policy=policy)
    assert settings.config.rlm.max_cost_usd == 0.05
    settings = repo_settings(server_config, "rlm:\n  max_cost_usd: 500\n", policy=policy)
    assert settings.config.rlm.max_cost_usd == 20.0  # a repository cannot raise it above the maximum
    assert settings.problems == [COST_ABOVE_MAXIMUM.format(asked=500, cap=20.0)]
    assert "$500.00" in settings.problems[0] and "$20.00" in settings.problems[0]
    # The Action: the repository is its own operator (no ceiling; any model)
    own = RepoPolicy(cost=CostCap(5.0, None), any_model=True)
    settings = repo_settings(server_config, "rlm:\n  max_cost_usd: 500\nmodel:\n  name: x/y\n", policy=own)
    assert (settings.config.rlm.max_cost_usd, settings.config.model.name) == (500, "x/y")
    assert settings.problems == []


def test_the_operators_cost_cap_settings():
    from webhooks.settings import NOT_DOLLARS, cost_cap

    engine = load_config(None, environ={})
    assert cost_cap(engine, {}) == CostCap(DEFAULT_COST_CAP_USD, DEFAULT_COST_CAP_USD) == CostCap(5.0, 5.0)
    env = {"RLM_COST_CAP_USD": "2", "RLM_COST_CAP_MAX_USD": "$10"}
    assert cost_cap(engine, env) == CostCap(2.0, 10.0)
    capped = load_config(None, {"rlm.max_cost_usd": 3.0}, environ={})  # the engine's own setting
    assert cost_cap(capped, {}) == CostCap(3.0, 3.0)
    with pytest.raises(AppSettingsError) as e:
        cost_cap(engine, {"RLM_COST_CAP_USD": "lots"})
    assert str(e.value) == NOT_DOLLARS.format(name="RLM_COST_CAP_USD", value="lots")
    with pytest.raises(AppSettingsError, match="below the default cap"):
        cost_cap(engine, {"RLM_COST_CAP_USD": "5", "RLM_COST_CAP_MAX_USD": "1"})


def test_repo_config_model_must_be_allowed(server_config):
    config, notes = apply_repo_config(server_config, "model:\n  name: openai/expensive\n")
    assert config.model.name == "openrouter/a"
    assert notes == [MODEL_NOT_ALLOWED.format(name="openai/expensive", allowed="openrouter/a")]
    config, notes = apply_repo_config(server_config, "model:\n  name: openai/ok\n", {"openai/ok"})
    assert config.model.name == "openai/ok" and notes == []


def test_repo_config_server_sections_refused(server_config):
    config, notes = apply_repo_config(
        server_config, "sandbox:\n  backend: daytona\nmodel:\n  api_base: http://evil\n"
    )
    assert config.sandbox.backend == "local" and config.model.api_base is None
    assert SECTION_NOT_ALLOWED.format(section="sandbox") in notes
    assert KEY_NOT_ALLOWED.format(key="model.api_base") in notes


@pytest.mark.parametrize(
    "text", ["rlm: [1, 2", "- a list", "rlm:\n  max_depth: -4\n", "rlm:\n  nonsense: 1\n"]
)
def test_repo_config_problems_are_explained(server_config, text):
    config, notes = apply_repo_config(server_config, text)
    assert config == server_config
    assert len(notes) == 1 and notes[0]
