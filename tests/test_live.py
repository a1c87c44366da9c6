"""Against real services, opt-in: each runs only when its credentials are set (skipped otherwise).

- a real model: RLM_LIVE_MODEL (a litellm model name) and LLM_API_KEY; a small rollout on a real
  repository, a few cents at most;
- real GitHub: RLM_LIVE_GITHUB_TOKEN and RLM_LIVE_GITHUB_REPO (owner/name of a repository owned
  by a user account, who is asked for their own permission); read-only calls.
"""

from __future__ import annotations

import os

import pytest

from bot.rlm import engine

pytestmark = pytest.mark.live

LIVE_MODEL = os.environ.get("RLM_LIVE_MODEL")
GITHUB_TOKEN = os.environ.get("RLM_LIVE_GITHUB_TOKEN")
GITHUB_REPO = os.environ.get("RLM_LIVE_GITHUB_REPO")


@pytest.mark.skipif(
    not (LIVE_MODEL and os.environ.get("LLM_API_KEY")), reason="RLM_LIVE_MODEL or LLM_API_KEY not set"
)
def test_a_real_model_fixes_a_todo(make_repo, make_config, tmp_path):
    repo, _ = make_repo({"calc.py": "def add(a, b):\n    # TODO: return the sum\n    return 0\n"})
    config = make_config(
        tmp_path / "unused.yaml",
        model__name=LIVE_MODEL,
        rlm__max_iterations=12,
        rlm__max_depth=1,
        rlm__max_sandboxes=4,
        rlm__global_timeout=600,
        rlm__max_cost_usd=1.0,
    )
    result = engine.run(config, engine.prepare(config, str(repo)), "Fix the TODO in calc.py.")
    assert result.status == "completed", result.error
    assert "a + b" in result.patch or "b + a" in result.patch
    assert result.results["totals"]["cost_usd"] >= 0 and result.results["totals"]["prompt_tokens"] > 0


@pytest.mark.skipif(
    not (GITHUB_TOKEN and GITHUB_REPO), reason="RLM_LIVE_GITHUB_TOKEN or RLM_LIVE_GITHUB_REPO not set"
)
def test_real_github_read_calls():
    from bot.github.api import GitHubAPI

    api = GitHubAPI(GITHUB_TOKEN, os.environ.get("GITHUB_API_URL", "https://api.github.com"))
    repo = api.get_repo(GITHUB_REPO)
    branch = repo["default_branch"]
    assert len(api.get_branch_sha(GITHUB_REPO, branch)) == 40
    owner = GITHUB_REPO.split("/")[0]
    assert api.get_permission(GITHUB_REPO, owner) in {"admin", "maintain", "write", "triage", "read", "none"}
