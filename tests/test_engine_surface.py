"""The engine's public surface: what `bot.rlm` and `bot.rlm.sandbox` offer, and what importing
them costs; the status and event enums store the same strings as before."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import bot.rlm
import bot.rlm.sandbox
from bot.rlm import STATUS_ICONS, EventKind, Status, Trace, fold_events


@pytest.mark.parametrize("package", [bot.rlm, bot.rlm.sandbox])
def test_every_public_name_resolves(package):
    for name in package.__all__:
        assert getattr(package, name) is not None, name


@pytest.mark.parametrize(
    "statement",
    ["import bot.rlm", "import bot.rlm.sandbox", "from bot.rlm.sandbox import reap_all, bwrap_works"],
)
def test_importing_the_surface_loads_no_model_client_or_daytona_sdk(statement):
    code = f"import sys; {statement}; print(sorted(m for m in ('litellm', 'daytona') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_statuses_and_event_kinds_are_stored_as_their_words(tmp_path):
    trace = Trace("run-1", tmp_path)
    trace.emit(EventKind.ROLLOUT_STARTED, run_id="run-1")
    trace.emit(EventKind.AGENT_STARTED, agent="root", task="t", depth=0)
    trace.emit(EventKind.AGENT_FINISHED, agent="root", status=Status.ERROR, error="boom")
    lines = [json.loads(line) for line in (tmp_path / "run-1.events.jsonl").read_text().splitlines()]
    assert [e["type"] for e in lines] == ["rollout_started", "agent_started", "agent_finished"]
    assert lines[-1]["status"] == "error"
    assert fold_events(lines)["agents"][0]["status"] == "error"
    with pytest.raises(ValueError):
        trace.emit("no_such_event")  # a new kind is taught to fold.py's EventKind first


def test_old_results_with_failed_still_read():
    assert STATUS_ICONS["failed"] == STATUS_ICONS[Status.ERROR] == STATUS_ICONS["error"]
    assert {str(s) for s in Status} == {"running", "completed", "budget", "timeout", "cancelled", "error"}
