"""`rlm eval` behind the command line: options → evaluation → table on stdout, reports on disk.

Exit codes (as `rlm run`'s, read for a task set):
  0  every task was run and judged (resolved or not: the table says which)
  1  some task could not be judged: an invalid task (its tests pass before the patch), a judge
     error, or a run that never reached its rollout
  2  bad usage: the tasks file, a variant, the config or an option
  130  interrupted; every sandbox was removed
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console

from bot.pipeline import MissingKey, missing_keys
from bot.rlm import ConfigError, load_config
from bot.rlm.sandbox import DAYTONA_MISSING_KEY

from .report import notes, text_table, write_reports
from .runner import EvalSettings, Evaluation, TaskOutcome, check_configs, variants_of
from .tasks import TasksError, load_tasks, parse_variant

EXIT_OK, EXIT_NOT_JUDGED, EXIT_INTERRUPTED = 0, 1, 130
UNKNOWN_TASK = "--task {name}: the tasks file has no such task (it has: {names})."
REPORTS_WRITTEN = "reports: {json} and {md}"
LLM_KEY_MISSING = (
    "warning: LLM_API_KEY is not set; the model's provider may refuse the calls (set it, or pass --env-file)."
)


class EvalUsageError(ValueError):
    """A problem with what the user gave (tasks file, variant, config, option): one sentence."""


@dataclass
class EvalOptions:
    tasks_file: Path
    variants: list[str] = field(default_factory=list)
    only: list[str] = field(default_factory=list)
    config_path: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    jobs: int | None = None
    out: Path | None = None
    quiet: bool = False
    llm_api_key: str | None = None
    daytona_api_key: str | None = None


def run_eval(options: EvalOptions, err: Console, cancel: threading.Event) -> int:
    """Run the evaluation; raises EvalUsageError for bad input. Returns the exit code."""
    try:
        task_set = load_tasks(options.tasks_file)
        cli_variants = [parse_variant(v) for v in options.variants]
    except TasksError as e:
        raise EvalUsageError(str(e)) from None
    if options.only:
        names = [t.name for t in task_set.tasks]
        for name in options.only:
            if name not in names:
                raise EvalUsageError(UNKNOWN_TASK.format(name=name, names=", ".join(names)))
        task_set.tasks[:] = [t for t in task_set.tasks if t.name in options.only]
    if options.jobs is not None and options.jobs < 1:
        raise EvalUsageError("--jobs must be 1 or more.")
    variants = variants_of(task_set, cli_variants)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    overrides = {k: v for k, v in options.overrides.items() if v is not None}
    try:
        base = _base_results(options.config_path, overrides)
    except ConfigError as e:
        raise EvalUsageError(str(e)) from None
    out = options.out or base / f"eval-{stamp}"
    settings = EvalSettings(
        config_path=options.config_path,
        base_overrides=overrides,
        results_dir=out / "runs",
        jobs=options.jobs,
        api_key=options.llm_api_key or None,
        daytona_api_key=options.daytona_api_key or None,
    )
    try:
        configs = check_configs(settings, task_set, variants)
    except ConfigError as e:
        raise EvalUsageError(str(e)) from None
    missing = {
        key
        for config in configs
        for key in missing_keys(config, options.llm_api_key, options.daytona_api_key)
    }
    if MissingKey.DAYTONA in missing:
        raise EvalUsageError(DAYTONA_MISSING_KEY)
    if MissingKey.LLM in missing:
        err.print(LLM_KEY_MISSING, markup=False)
    say = (lambda line: None) if options.quiet else (lambda line: err.print(line, markup=False))
    say(
        f"rlm eval: {len(task_set.tasks)} task(s) × {len(variants)} variant(s) "
        f"({', '.join(v.name for v in variants)}) → {out}"
    )
    evaluation = Evaluation(task_set, variants, settings, cancel, say)
    results = evaluation.run()
    json_path, md_path = write_reports(
        results,
        out,
        task_set.path,
        {"variants": [{"name": v.name, "set": v.overrides} for v in variants], "overrides": overrides},
    )
    print(text_table(results))
    for line in notes(results):
        err.print(line, markup=False)
    err.print(REPORTS_WRITTEN.format(json=json_path, md=md_path), markup=False)
    if cancel.is_set():
        return EXIT_INTERRUPTED
    judged = (TaskOutcome.RESOLVED, TaskOutcome.UNRESOLVED)
    return EXIT_OK if all(r.status in judged for r in results) else EXIT_NOT_JUDGED


def _base_results(config_path: Path | None, overrides: dict[str, Any]) -> Path:
    return Path(load_config(config_path, overrides).results_dir)
