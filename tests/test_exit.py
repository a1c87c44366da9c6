"""Every `rlm` run exits promptly after its outcome: no thread the engine starts is left importing
when the interpreter shuts down (a daemon warm-up thread holding a module lock there made litellm's
finalizers wait forever: 4 of 10 fast runs never exited)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from bot.rlm import engine
from tests.conftest import py

EXIT_AFTER_OUTCOME = 30.0  # seconds; generous for a loaded 2-core CI machine, finite unlike a hang


def warm_up_threads(model: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"rlm-warm-up:{model}"]


def test_warm_up_is_not_a_daemon_and_is_over_when_a_run_ends(
    make_repo, write_script, make_config, monkeypatch
):
    """A warm-up slower than the run (as litellm's lazy imports are on a busy machine): the run
    waits for it, so no warm-up is left running when the caller exits."""
    from bot.rlm import llm

    release = threading.Event()
    real_warm_up = llm.warm_up
    monkeypatch.setattr(llm, "warm_up", lambda cfg: (release.wait(30), real_warm_up(cfg)))
    repo, _ = make_repo({"a.txt": "a\n"})
    config = make_config(write_script([{"task": "", "responses": [py('FINAL("ok")')]}]))
    prepared = engine.prepare(config, str(repo))
    (thread,) = warm_up_threads(config.model.name)
    assert not thread.daemon
    threading.Timer(0.5, release.set).start()
    result = engine.run(config, prepared, "tiny")
    assert result.status == "completed" and release.is_set()
    assert warm_up_threads(config.model.name) == []


def start_rlm(args: list[str], cwd: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def seconds_from_outcome_to_exit(proc: subprocess.Popen, outcome_prefix: str) -> tuple[float, str]:
    """Reads stderr until the outcome line, then times how long the process takes to exit.
    Returns (seconds, the whole stderr)."""
    lines = []
    outcome_at = None
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(line)
        if line.startswith(outcome_prefix):
            outcome_at = time.monotonic()
            break
    assert outcome_at is not None, "".join(lines)
    try:
        rest = proc.communicate(timeout=EXIT_AFTER_OUTCOME)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        return float("inf"), "".join(lines) + proc.communicate()[1]
    return time.monotonic() - outcome_at, "".join(lines) + rest


def test_fast_runs_exit_promptly_after_their_outcome(make_repo, write_script, tmp_path):
    """Real `rlm` processes, run at once: a tiny task, a run that fails at once (timeout), a repository
    that cannot be fetched; each exits within EXIT_AFTER_OUTCOME of printing its outcome."""
    repo, _ = make_repo({"a.txt": "a\n"})
    script = write_script([{"task": "", "responses": [py('FINAL("ok")')]}])
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    common = ["--model", f"scripted/{script}", "-q", "--results-dir", str(tmp_path / "results")]
    cases = {
        "tiny": (["run", str(repo), "-p", "tiny", *common], "results:", 0),
        "fails-at-once": (["run", str(repo), "-p", "tiny", "--timeout", "0.01", *common], "results:", 1),
        "no-repo": (["run", str(tmp_path / "missing"), "-p", "x", *common], "error", 2),
    }
    procs = {name: start_rlm(args, tmp_path, env) for name, (args, _, _) in cases.items()}
    try:
        for name, (_, prefix, code) in cases.items():
            seconds, stderr = seconds_from_outcome_to_exit(procs[name], prefix)
            assert seconds < EXIT_AFTER_OUTCOME, (
                f"{name}: still running {EXIT_AFTER_OUTCOME}s after\n{stderr}"
            )
            assert procs[name].returncode == code, (name, stderr)
            assert "Traceback" not in stderr and "Exception in thread" not in stderr, stderr
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


# Run as a process's main module: report, from an exit hook (after the entry point has returned and
# before the interpreter's final collections), how many objects the entry point froze.
_FROZEN_AT_EXIT = """
import atexit, gc, runpy, sys
atexit.register(lambda: print("frozen", gc.get_freeze_count(), file=sys.stderr, flush=True))
sys.argv = [sys.argv[1], *sys.argv[2:]]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def frozen_at_exit(module: str, args: list[str], env: dict) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-c", _FROZEN_AT_EXIT, module, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    counts = [int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("frozen ")]
    assert counts, proc.stderr
    return counts[-1], proc.stderr


def test_entry_points_skip_the_final_garbage_collection(tmp_path):
    """`rlm` and the Action's step freeze the heap once their outcome is out: the interpreter's last
    collections over litellm's object graph took 3-12 s at exit on a loaded machine, longer than
    the 7.5 s a cancelled workflow allows (the flaky test_cancelling_the_workflow_stops_the_tree)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "INPUT_"))}
    frozen, stderr = frozen_at_exit("bot", ["--help"], env)
    assert frozen > 0, stderr
    frozen, stderr = frozen_at_exit("action", [], {**env, "GITHUB_OUTPUT": str(tmp_path / "out")})
    assert frozen > 0, stderr
