"""`rlm eval TASKS.yaml`: run a task set through the one run pipeline and judge each patch for real.

    from bot.evaluate import load_tasks, Evaluation, EvalSettings, variants_of
    task_set = load_tasks(Path("bench/tasks/tasks.yaml"))
    results = Evaluation(task_set, variants_of(task_set, []), settings).run()

tasks.py reads the tasks file; runner.py runs and judges; judge.py judges one patch in a fresh
sandbox; report.py writes the table, report.json and report.md. docs/eval.md is the user's guide.
"""

from .judge import JudgeResult, Verdict, judge
from .report import text_table, write_reports
from .runner import EvalSettings, Evaluation, TaskOutcome, TaskResult, Variant, check_configs, variants_of
from .tasks import Task, TasksError, TaskSet, VariantSpec, load_tasks, parse_variant

__all__ = [
    "EvalSettings",
    "Evaluation",
    "JudgeResult",
    "TaskOutcome",
    "Task",
    "TaskResult",
    "TaskSet",
    "TasksError",
    "Variant",
    "VariantSpec",
    "Verdict",
    "check_configs",
    "judge",
    "load_tasks",
    "parse_variant",
    "text_table",
    "variants_of",
    "write_reports",
]
