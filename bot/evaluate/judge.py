"""Judging a patch: the task's tests in a FRESH sandbox of the run's own backend, at the base
commit, after the task's setup (cached: the run built the same one), with no network.

One sandbox per verdict, nothing reused from the run (the engine's `check_patch`): the patch is
applied inside the sandbox, the judge's files are written over whatever the patch did to them (the
agents never saw those files), then each command runs. PASS when the patch applied and every
command exited 0. `before` (no patch) must FAIL, or the task is invalid.

A failure of the judging itself (the sandbox, the setup, a judge command whose tool is missing) is
Verdict.ERROR, reported apart from "not resolved".
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field

from bot.common.enums import StrEnum
from bot.rlm import CommandResult, Config, PreparedRepo, RLMError, check_patch

from .tasks import Judge

COULD_NOT_RUN = "the judge's command `{command}` could not run in the sandbox (a missing tool: fix the task's setup): {output}"
_NO_MODULE = re.compile(r"^\S*python[\d.]*: No module named \S+$", re.MULTILINE)


class Verdict(StrEnum):
    PASS = "pass"  # the patch applied and every command exited 0
    FAIL = "fail"  # some command failed (or timed out), or the patch did not apply
    ERROR = "error"  # the judging itself failed: sandbox, setup, a missing tool


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


def _could_not_run(result: CommandResult) -> bool:
    """The command's tool is missing (shell: not found / not executable; `python -m` of a module
    that is not installed): no verdict about the code, so a judge error, not a failure."""
    if result.exit_code in (126, 127):
        return True
    return result.exit_code == 1 and bool(_NO_MODULE.search(result.output)) and len(result.output) < 400


def judge(
    config: Config,
    prepared: PreparedRepo,
    spec: Judge,
    patch: str | None,
    cancel: threading.Event | None = None,
    daytona_api_key: str | None = None,
) -> JudgeResult:
    """The judge's verdict on the base commit plus `patch` (None or '' = the base as it is)."""
    started = time.monotonic()
    files = {dest: src.read_bytes() for dest, src in spec.files.items()}
    try:
        check = check_patch(
            config,
            prepared,
            spec.commands,
            patch=patch,
            files=files,
            timeout=spec.timeout,
            cancel=cancel,
            daytona_api_key=daytona_api_key,
        )
    except RLMError as e:
        return JudgeResult(Verdict.ERROR, error=str(e), seconds=time.monotonic() - started)
    result = JudgeResult(
        Verdict.PASS if check.passed else Verdict.FAIL,
        commands=check.commands,
        applied=check.applied,
        error=check.apply_error,
        seconds=time.monotonic() - started,
    )
    missing = next((c for c in check.commands if _could_not_run(c)), None)
    if missing is not None:
        result.verdict = Verdict.ERROR
        result.error = COULD_NOT_RUN.format(command=missing.command, output=missing.output.strip()[-300:])
    return result
