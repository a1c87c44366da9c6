"""`rlm eval`: every task under every variant through the ONE run pipeline, then judged.

    before-check (per task: the judge on the bare base commit must FAIL, else the task is invalid)
    → run (pipeline.run: fetch, setup, rollout, `<run_id>.patch` beside the results)
    → judge (the patch in a fresh sandbox: the judge must PASS for "resolved")

Tasks run in parallel where the backend allows: local sandboxes share this machine, so a small
pool; Daytona spreads them. Cancellation (Ctrl-C) reaches every run and judge.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.cli_run import CLI_WORDS
from bot.common.enums import StrEnum
from bot.pipeline import NullReporter, OutcomeKind, RunOutcome, RunRequest, RunSettings, RunState, Target
from bot.pipeline import run as run_pipeline
from bot.rlm import Config, ConfigError, RLMError, load_config, prepare

from .judge import JudgeResult, Verdict, judge
from .tasks import Task, TaskSet, VariantSpec

log = logging.getLogger(__name__)

SCRIPTED_PER_TASK = "scripted"  # model name meaning "each task's own `script:`"
DEFAULT_JOBS = {"local": 2, "daytona": 8}
NO_SCRIPT = "task {task} has no 'script:', so the model name 'scripted' has nothing to replay; give it one."
JUDGE_FAILED = "with the patch, `{command}` {how} (report.json has its output)"
NO_PATCH = "the run changed no file (it ended {status}{error})"
INTERNAL_ERROR = "internal error ({error}); see the log"
INVALID_TASK = "the judge's commands already pass on the base commit, so they cannot tell a fix apart"


class TaskOutcome(StrEnum):
    """How one task ended in one variant (a column of the report; not the engine's run `Status`)."""

    RESOLVED = "resolved"  # the judge passed on the run's patch
    UNRESOLVED = "unresolved"  # the judge failed on it (or there was no patch)
    INVALID = "invalid"  # the judge passes before any patch: the task proves nothing
    JUDGE_ERROR = "judge_error"  # the judging itself broke (sandbox, setup): no verdict
    RUN_ERROR = "run_error"  # the run never reached a rollout (fetch, config, setup)
    CANCELLED = "cancelled"


@dataclass
class Variant:
    name: str
    overrides: dict[str, Any]


@dataclass
class EvalSettings:
    config_path: Path | None
    base_overrides: dict[str, Any]  # the command line's (model, sandbox, timeout, ...)
    results_dir: Path  # each run's trace and patch go here
    jobs: int | None = None  # runs at once; None = by backend
    api_key: str | None = None
    daytona_api_key: str | None = None


@dataclass
class TaskResult:
    task: str
    variant: str
    status: TaskOutcome
    run_status: str | None = None  # the rollout's: completed, timeout, budget, error, ...
    message: str = ""
    run_id: str | None = None
    results_path: str | None = None
    patch_path: str | None = None
    patch_files: int = 0
    agents: int = 0
    iterations: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0  # the run's wall time (fetch to patch), judging apart
    judge: JudgeResult | None = None
    before: JudgeResult | None = None
    upstream: dict[str, Any] = field(default_factory=dict)

    @property
    def resolved(self) -> bool:
        return self.status is TaskOutcome.RESOLVED

    def as_dict(self) -> dict:
        return {
            "task": self.task,
            "variant": self.variant,
            "status": str(self.status),
            "resolved": self.resolved,
            "run_status": self.run_status,
            "message": self.message,
            "run_id": self.run_id,
            "results": self.results_path,
            "patch": self.patch_path,
            "patch_files": self.patch_files,
            "agents": self.agents,
            "iterations": self.iterations,
            "tokens": self.tokens,
            "cost_usd": round(self.cost_usd, 6),
            "seconds": round(self.seconds, 2),
            "judge": self.judge.as_dict() if self.judge else None,
            "before": self.before.as_dict() if self.before else None,
            "upstream": self.upstream,
        }


def variants_of(task_set: TaskSet, cli: list[VariantSpec]) -> list[Variant]:
    """The command line's variants, else the file's, else one named `default`."""
    specs = cli or task_set.variants
    return [Variant(v.name, v.overrides) for v in specs] or [Variant("default", {})]


def task_config(settings: EvalSettings, task: Task, variant: Variant) -> Config:
    """Config file < command line < the task's setup < the variant's settings; raises ConfigError."""
    overrides: dict[str, Any] = dict(settings.base_overrides)
    if task.setup:
        overrides["sandbox.setup"] = task.setup
    overrides.update(variant.overrides)
    config = load_config(settings.config_path, overrides)
    if config.model.name == SCRIPTED_PER_TASK:
        if task.script is None:
            raise ConfigError(NO_SCRIPT.format(task=task.name))
        config = load_config(settings.config_path, {**overrides, "model.name": f"scripted/{task.script}"})
    return config


def check_configs(settings: EvalSettings, task_set: TaskSet, variants: list[Variant]) -> list[Config]:
    """Every (task, variant) config, checked before anything runs; raises ConfigError naming it."""
    configs = []
    for variant in variants:
        for task in task_set.tasks:
            try:
                configs.append(task_config(settings, task, variant))
            except ConfigError as e:
                raise ConfigError(f"task {task.name}, variant {variant.name}: {e}") from None
    return configs


class _PatchKept:
    """The eval's Deliverer: the patch stays where the pipeline wrote it (`<run_id>.patch`)."""

    def __init__(self, commit: str):
        self.commit = commit

    def target(self, request: RunRequest) -> Target:
        return Target(self.commit)

    def deliver(self, state: RunState) -> RunOutcome:
        return RunOutcome(state.run_id, OutcomeKind.PATCH, f"patch kept at {state.patch_path}")


class _Events(NullReporter):
    """Forwards the run's phases as one line each to the harness's progress callback."""

    def __init__(self, say: Callable[[str], None], label: str):
        self.say, self.label = say, label

    def phase(self, phase, detail: str = "") -> None:
        self.say(f"{self.label}: {phase}{' ' + detail if detail else ''}")


class Evaluation:
    def __init__(
        self,
        task_set: TaskSet,
        variants: list[Variant],
        settings: EvalSettings,
        cancel: threading.Event | None = None,
        say: Callable[[str], None] = lambda line: None,
    ):
        self.task_set, self.variants, self.settings = task_set, variants, settings
        self.cancel = cancel or threading.Event()
        self.say = say
        self._before: dict[str, JudgeResult] = {}
        self._lock = threading.Lock()

    def jobs(self) -> int:
        if self.settings.jobs:
            return self.settings.jobs
        backend = task_config(self.settings, self.task_set.tasks[0], self.variants[0]).sandbox.backend
        return DEFAULT_JOBS.get(backend, 2)

    def run(self) -> list[TaskResult]:
        """Every task under every variant; results in (variant, task) order."""
        tasks = self.task_set.tasks
        with ThreadPoolExecutor(max_workers=self.jobs(), thread_name_prefix="rlm-eval") as pool:
            before = dict(zip([t.name for t in tasks], pool.map(self._before_check, tasks), strict=True))
            self._before.update(before)
            pairs = [(t, v) for v in self.variants for t in tasks]
            return list(pool.map(lambda pair: self._guarded(*pair), pairs))

    def _guarded(self, task: Task, variant: Variant) -> TaskResult:
        """One task's result, whatever happens: a bug is logged with its traceback and reported as
        that task's error, and the other tasks go on."""
        try:
            return self._one(task, variant)
        except Exception as e:
            log.exception("rlm eval: %s [%s] failed unexpectedly", task.name, variant.name)
            message = INTERNAL_ERROR.format(error=f"{type(e).__name__}: {e}")
            return TaskResult(
                task.name, variant.name, TaskOutcome.RUN_ERROR, message=message, upstream=task.upstream
            )

    # ------------------------------------------------------------------ one task

    def _config(self, task: Task, variant: Variant) -> Config:
        return task_config(self.settings, task, variant)

    def _before_check(self, task: Task) -> JudgeResult:
        """The judge on the bare base commit (once per task, with the first variant's sandbox)."""
        if self.cancel.is_set():
            return JudgeResult(Verdict.ERROR, error="cancelled")
        self.say(f"{task.name}: checking that the judge fails before any patch")
        config = self._config(task, self.variants[0])
        try:
            prepared = prepare(config, task.repo, commit=task.commit)
            result = judge(config, prepared, task.judge, None, self.cancel, self.settings.daytona_api_key)
        except RLMError as e:
            return JudgeResult(Verdict.ERROR, error=str(e))
        except Exception as e:
            log.exception("rlm eval: the before-check of %s failed unexpectedly", task.name)
            return JudgeResult(Verdict.ERROR, error=INTERNAL_ERROR.format(error=f"{type(e).__name__}: {e}"))
        self.say(f"{task.name}: before the patch the judge says {result.verdict}")
        return result

    def _one(self, task: Task, variant: Variant) -> TaskResult:
        label = f"{task.name} [{variant.name}]"
        result = TaskResult(task.name, variant.name, TaskOutcome.RUN_ERROR, upstream=task.upstream)
        result.before = before = self._before[task.name]
        if self.cancel.is_set():
            result.status, result.message = TaskOutcome.CANCELLED, "cancelled before it started"
            return result
        if before.verdict is Verdict.PASS:
            result.status, result.message = TaskOutcome.INVALID, INVALID_TASK
            return result
        if before.verdict is Verdict.ERROR:
            result.status, result.message = (
                TaskOutcome.JUDGE_ERROR,
                f"judging the base commit failed: {before.error}",
            )
            return result
        config = self._config(task, variant)
        request = RunRequest(
            task=task.prompt, clone_url=task.repo, commit=task.commit, context=task.issue or None
        )
        run_settings = RunSettings(
            config=config,
            words=CLI_WORDS,
            results_dir=self.settings.results_dir,
            api_key=self.settings.api_key,
            daytona_api_key=self.settings.daytona_api_key,
        )
        self.say(f"{label}: running ({config.model.name})")
        started = time.monotonic()
        outcome = run_pipeline(
            request, _Events(self.say, label), _PatchKept(task.commit), self.cancel, settings=run_settings
        )
        result.seconds = time.monotonic() - started
        result.run_id = outcome.run_id
        result.message = outcome.message
        self._usage(result, outcome)
        if outcome.result is None:  # it never reached a rollout
            result.status = (
                TaskOutcome.CANCELLED if outcome.kind is OutcomeKind.CANCELLED else TaskOutcome.RUN_ERROR
            )
            result.message = outcome.error or outcome.message
            return result
        patch = outcome.result.patch
        if self.cancel.is_set():
            result.status = TaskOutcome.CANCELLED
            return result
        if not patch.strip():
            result.status = TaskOutcome.UNRESOLVED
            error = f": {outcome.result.error}" if outcome.result.error else ""
            result.message = NO_PATCH.format(status=outcome.result.status, error=error)
            return result
        self.say(f"{label}: judging the patch in a fresh sandbox")
        try:
            prepared = prepare(config, task.repo, commit=task.commit)
        except RLMError as e:
            result.status, result.message = TaskOutcome.JUDGE_ERROR, str(e)
            return result
        result.judge = verdict = judge(
            config, prepared, task.judge, patch, self.cancel, self.settings.daytona_api_key
        )
        result.status = {
            Verdict.PASS: TaskOutcome.RESOLVED,
            Verdict.FAIL: TaskOutcome.UNRESOLVED,
            Verdict.ERROR: TaskOutcome.JUDGE_ERROR,
        }[verdict.verdict]
        if verdict.verdict is Verdict.ERROR:
            result.message = f"judging failed: {verdict.error}"
        elif verdict.applied is False:
            result.message = f"the patch does not apply to the base commit: {verdict.error}"
        elif verdict.verdict is Verdict.FAIL:
            failed = next(c for c in verdict.commands if c.exit_code != 0)
            how = "timed out" if failed.exit_code is None else f"exited {failed.exit_code}"
            result.message = JUDGE_FAILED.format(command=failed.command, how=how)
        else:
            result.message = ""
        self.say(f"{label}: {result.status}")
        return result

    @staticmethod
    def _usage(result: TaskResult, outcome: RunOutcome) -> None:
        rollout = outcome.result
        if rollout is None:
            return
        totals = rollout.results.get("totals") or {}
        result.run_status = rollout.status
        result.results_path = str(rollout.results_path) if rollout.results_path else None
        result.patch_path = str(outcome.patch_path) if outcome.patch_path else None
        result.patch_files = int((rollout.results.get("patch") or {}).get("files") or 0)
        result.agents = int(totals.get("agents") or 0)
        result.iterations = int(totals.get("iterations") or 0)
        result.tokens = int(totals.get("prompt_tokens") or 0) + int(totals.get("completion_tokens") or 0)
        result.cost_usd = float(totals.get("cost_usd") or 0.0)
