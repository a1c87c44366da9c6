"""Against the real Daytona service: runs only when DAYTONA_API_KEY is set (it creates, uses and
deletes one real sandbox, a minute of the cheapest resources)."""

from __future__ import annotations

import os

import pytest

from bot.rlm import load_config
from bot.rlm.patch import check_applies
from bot.rlm.repl.session import ReplSession
from bot.rlm.repo import prepare_repo
from bot.rlm.sandbox.daytona.client import LABEL_ROLLOUT, list_labelled
from bot.rlm.sandbox.daytona.provider import DaytonaSandboxProvider

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not os.environ.get("DAYTONA_API_KEY"), reason="DAYTONA_API_KEY is not set"),
]


def test_a_real_sandbox_runs_the_repl_and_returns_the_patch(make_repo, tmp_path):
    repo_dir, _ = make_repo({"app.py": "x = 1\n", ".gitignore": "*.log\n"})
    config = load_config(
        None,
        {
            "sandbox.cache_dir": str(tmp_path / "cache"),
            "sandbox.backend": "daytona",
            "rlm.global_timeout": 600,
        },
    )
    prepared = prepare_repo(str(repo_dir), config.cache_root())
    provider = DaytonaSandboxProvider(config, prepared, "live-test")
    try:
        sandbox = provider.create("root")
        session = ReplSession(sandbox.start_driver())
        session.start({"task": "live", "output_limit": 10000, "limits": sandbox.init_limits()}, timeout=120)
        calls = []
        r = session.execute(
            "import os\nprint(sorted(k for k in os.environ if 'KEY' in k))\n"
            "print(llm_query('ping'))\nopen('app.py', 'w').write('x = 2\\n')\nopen('a.log', 'w').write('no')",
            60,
            lambda fn, args: calls.append(fn) or "pong",
            lambda: None,
        )
        assert r.error is None, r.error
        assert r.stdout.splitlines() == ["[]", "pong"] and calls == ["llm_query"]
        timed = session.execute("import time\ntime.sleep(20)", 2, lambda fn, a: None, lambda: None)
        assert timed.error.startswith("TimeoutError")
        patch = sandbox.diff()
        check_applies(prepared.cache, prepared.commit, patch)
        assert "+x = 2" in patch and "a.log" not in patch
    finally:
        provider.close()
    assert list(list_labelled(provider.client, {LABEL_ROLLOUT: "live-test"})) == []
