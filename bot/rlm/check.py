"""Check a patch: shell commands in a FRESH sandbox at the prepared commit, plus a patch and files.

    result = check_patch(config, prepared, ["python3 -m unittest tests.test_x"], patch=diff,
                         files={"tests/test_x.py": data})

The sandbox is made by the configured backend exactly as an agent's is (the same setup, cached,
no network, the same limits), and removed afterwards. Inside it: the patch is applied with the
REPL's own `apply_patch` (the patch is untrusted, so it is applied in the sandbox, never on the
host), then `files` are written over whatever the patch did to them, then each command runs in the
checkout's root with its own timeout; a command that outlives it is killed with its whole process
group. Used by `rlm eval` to judge patches with tests the agents never saw.

A failure of the machinery (sandbox, setup, REPL) raises RLMError; a command that fails or a patch
that does not apply is a result, not an error.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field

from .config import Config
from .environment import setup_spec
from .errors import SandboxError
from .repl.session import CallRefused, ReplSession
from .repo import PreparedRepo
from .run_id import new_run_id
from .sandbox import make_provider

OUTPUT_TAIL = 3000  # characters of each command's output kept
_MARK = "rlm-check-result:"
NO_CALLS = "this sandbox answers no calls"
NO_RESULT = "the check printed no result: {detail}"
CANCELLED = "the check was cancelled"
GRACE = 120.0  # seconds the REPL may take beyond the commands' own timeouts


@dataclass
class CommandResult:
    command: str
    exit_code: int | None  # None: killed at its timeout
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
class PatchCheck:
    applied: bool | None  # None: there was no patch
    apply_error: str | None  # why it did not apply (then no command ran)
    commands: list[CommandResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.applied is not False and all(c.exit_code == 0 for c in self.commands)


# Runs inside the sandbox's REPL (whose namespace has `apply_patch`). Standard library only.
_CODE = """
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


def _refuse(fn: str, args: dict) -> None:
    raise CallRefused(NO_CALLS)


def check_patch(
    config: Config,
    prepared: PreparedRepo,
    commands: list[str] | tuple[str, ...],
    *,
    patch: str | None = None,
    files: dict[str, bytes] | None = None,
    timeout: float = 600.0,
    cancel: threading.Event | None = None,
    daytona_api_key: str | None = None,
) -> PatchCheck:
    """Run `commands` on the prepared commit + `patch` + `files` in a fresh sandbox (see above).
    `timeout` is per command. Raises RLMError (SandboxError, SetupFailed) when the sandbox fails."""
    cancel = cancel or threading.Event()
    started = time.monotonic()
    payload = {
        "patch": patch or "",
        "files": {path: base64.b64encode(data).decode() for path, data in (files or {}).items()},
        "commands": list(commands),
        "timeout": timeout,
        "tail": OUTPUT_TAIL,
    }
    code = _CODE.format(spec=base64.b64encode(json.dumps(payload).encode()).decode(), mark=_MARK)
    provider = make_provider(config, prepared, f"check-{new_run_id()}", daytona_api_key)
    session = None
    try:
        spec = setup_spec(config, prepared)
        if spec is not None:
            provider.setup_environment(spec, cancel)
        sandbox = provider.create("check")
        session = ReplSession(sandbox.start_driver())
        output_limit = 2 * OUTPUT_TAIL * (len(payload["commands"]) + 1) + len(patch or "") + 10_000
        session.start(
            {
                "task": "check",
                "root": False,
                "context": "",
                "output_limit": output_limit,
                "limits": sandbox.init_limits(),
            }
        )

        def check_cancel() -> None:
            if cancel.is_set():
                raise SandboxError(CANCELLED)

        result = session.execute(
            code, timeout * max(1, len(payload["commands"])) + GRACE, _refuse, check_cancel
        )
    finally:
        if session is not None:
            session.close()
        provider.close()
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith(_MARK)), None)
    if line is None:
        detail = (result.error or result.stderr or result.stdout or "no output").strip()[-OUTPUT_TAIL:]
        raise SandboxError(NO_RESULT.format(detail=detail))
    out = json.loads(line[len(_MARK) :])
    return PatchCheck(
        applied=out["applied"],
        apply_error=out["error"],
        commands=[
            CommandResult(c["command"], c["exit_code"], float(c["seconds"]), c["output"])
            for c in out["commands"]
        ],
        seconds=time.monotonic() - started,
    )
