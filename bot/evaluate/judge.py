"""Judging a patch: the task's tests run in a FRESH sandbox of the run's own backend, at the base
commit, after the task's setup (cached: the run built the same one), with no network.

One sandbox per verdict, nothing reused from the run: apply the patch (with the REPL's own
`apply_patch`, inside the sandbox: the patch is untrusted), then write the judge's files over
whatever the patch did to them (the agents never saw those files), then run each command. The
verdict is PASS when every command exits 0. `before` (no patch) must FAIL, or the task is invalid.

A failure of the judging machinery itself (the sandbox, the setup, the REPL) is a `JudgeError`,
reported apart from "not resolved".
"""

from __future__ import annotations

import base64
import enum
import json
import re
import threading
from dataclasses import dataclass, field

from bot.rlm.config import Config
from bot.rlm.environment import SetupFailed, setup_spec
from bot.rlm.errors import RLMError, SandboxError
from bot.rlm.repl.session import CallRefused, ReplSession
from bot.rlm.repo import PreparedRepo
from bot.rlm.run_id import new_run_id
from bot.rlm.sandbox import make_provider

from .tasks import Judge

OUTPUT_TAIL = 3000  # characters of each command's output kept in the report
_MARK = "rlm-eval-judge:"
JUDGE_NO_CALLS = "the judge's sandbox answers no calls"
JUDGE_NO_VERDICT = "the judge's code printed no verdict: {detail}"
COULD_NOT_RUN = "the judge's command `{command}` could not run in the sandbox (a missing tool: fix the task's setup): {output}"
_NO_MODULE = re.compile(r"^\S*python[\d.]*: No module named \S+$", re.MULTILINE)


class Verdict(str, enum.Enum):
    PASS = "pass"  # every command exited 0
    FAIL = "fail"  # some command failed (or timed out), or the patch did not apply
    ERROR = "error"  # the judging itself failed: sandbox, setup, REPL

    def __str__(self) -> str:
        return self.value


@dataclass
class CommandResult:
    command: str
    exit_code: int | None  # None: timed out
    seconds: float
    output: str  # the tail of stdout + stderr

    def as_dict(self) -> dict:
        return {
            "command": self.command,
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 2),
            "output": self.output,
        }


@dataclass
class JudgeResult:
    verdict: Verdict
    commands: list[CommandResult] = field(default_factory=list)
    applied: bool | None = None  # None: no patch to apply
    error: str | None = None  # why the patch did not apply, or what broke the judging
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "verdict": str(self.verdict),
            "applied": self.applied,
            "error": self.error,
            "seconds": round(self.seconds, 2),
            "commands": [c.as_dict() for c in self.commands],
        }


# Runs inside the judge's sandbox (its REPL namespace has `apply_patch`). Standard library only.
_JUDGE_CODE = """
import base64 as _b64, json as _json, os as _os, subprocess as _sp, time as _time
_spec = _json.loads(_b64.b64decode({spec!r}).decode("utf-8"))
_out = {{"applied": None, "error": None, "commands": []}}
if _spec["patch"]:
    try:
        apply_patch(_spec["patch"])
        _out["applied"] = True
    except Exception as _e:
        _out["applied"], _out["error"] = False, str(_e)
if _out["applied"] is not False:
    for _path, _data in _spec["files"].items():
        if _os.path.dirname(_path):
            _os.makedirs(_os.path.dirname(_path), exist_ok=True)
        if _os.path.islink(_path):
            _os.unlink(_path)
        with open(_path, "wb") as _f:
            _f.write(_b64.b64decode(_data))
    for _command in _spec["commands"]:
        _t0 = _time.monotonic()
        _p = _sp.Popen(_command, shell=True, stdout=_sp.PIPE, stderr=_sp.STDOUT, stdin=_sp.DEVNULL,
                       start_new_session=True)
        try:
            _text, _ = _p.communicate(timeout=_spec["timeout"])
            _code = _p.returncode
        except _sp.TimeoutExpired:
            _os.killpg(_p.pid, 9)  # the whole group: a test's children must not hold the pipe open
            _text, _ = _p.communicate()
            _code, _text = None, _text + b"\\n[timed out after %ss]" % str(_spec["timeout"]).encode()
        _out["commands"].append({{"command": _command, "exit_code": _code, "seconds": _time.monotonic() - _t0,
                                  "output": _text.decode("utf-8", "replace")[-_spec["tail"]:]}})
print({mark!r} + _json.dumps(_out))
"""


def _could_not_run(result: CommandResult) -> bool:
    """The command's tool is missing (shell: not found / not executable; `python -m` of a module
    that is not installed): no verdict about the code, so a judge error, not a failure."""
    if result.exit_code in (126, 127):
        return True
    return result.exit_code == 1 and bool(_NO_MODULE.search(result.output)) and len(result.output) < 400


def _refuse(fn: str, args: dict) -> None:
    raise CallRefused(JUDGE_NO_CALLS)


def judge(
    config: Config,
    prepared: PreparedRepo,
    spec: Judge,
    patch: str | None,
    cancel: threading.Event | None = None,
    daytona_api_key: str | None = None,
) -> JudgeResult:
    """Run the judge's commands on the base commit plus `patch` (None or '' = the base as it is)."""
    import time

    cancel = cancel or threading.Event()
    started = time.monotonic()
    payload = {
        "patch": patch or "",
        "files": {dest: base64.b64encode(src.read_bytes()).decode() for dest, src in spec.files.items()},
        "commands": list(spec.commands),
        "timeout": spec.timeout,
        "tail": OUTPUT_TAIL,
    }
    code = _JUDGE_CODE.format(spec=base64.b64encode(json.dumps(payload).encode()).decode(), mark=_MARK)
    provider = None
    session = None
    try:
        provider = make_provider(config, prepared, f"judge-{new_run_id()}", daytona_api_key)
        setup = setup_spec(config, prepared)
        if setup is not None:
            provider.setup_environment(setup, cancel)
        sandbox = provider.create("judge")
        session = ReplSession(sandbox.start_driver())
        session.start(
            {
                "task": "judge",
                "root": False,
                "context": "",
                "output_limit": 10 * OUTPUT_TAIL * (len(spec.commands) + 2) + len(patch or "") + 10_000,
                "limits": sandbox.init_limits(),
            }
        )

        def check() -> None:
            if cancel.is_set():
                raise SandboxError("the evaluation was cancelled")

        exec_timeout = spec.timeout * max(1, len(spec.commands)) + 120
        result = session.execute(code, exec_timeout, _refuse, check)
    except (SetupFailed, RLMError) as e:
        return JudgeResult(Verdict.ERROR, error=str(e), seconds=time.monotonic() - started)
    finally:
        if session is not None:
            session.close()
        if provider is not None:
            provider.close()
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith(_MARK)), None)
    if line is None:
        detail = (result.error or result.stderr or result.stdout or "no output").strip()[-OUTPUT_TAIL:]
        return JudgeResult(
            Verdict.ERROR, error=JUDGE_NO_VERDICT.format(detail=detail), seconds=time.monotonic() - started
        )
    out = json.loads(line[len(_MARK) :])
    commands = [
        CommandResult(c["command"], c["exit_code"], float(c["seconds"]), c["output"]) for c in out["commands"]
    ]
    missing = next((c for c in commands if _could_not_run(c)), None)
    if missing is not None:
        return JudgeResult(
            Verdict.ERROR,
            commands=commands,
            applied=out["applied"],
            error=COULD_NOT_RUN.format(command=missing.command, output=missing.output.strip()[-300:]),
            seconds=time.monotonic() - started,
        )
    passed = out["applied"] is not False and all(c.exit_code == 0 for c in commands)
    return JudgeResult(
        Verdict.PASS if passed else Verdict.FAIL,
        commands=commands,
        applied=out["applied"],
        error=out["error"],
        seconds=time.monotonic() - started,
    )
