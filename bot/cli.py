"""The `rlm` command.

Exit codes of `rlm run` and `rlm demo`:
  0  the root agent finished with an answer (with or without changes)
  1  the run ended without an answer (timeout, budget, model or sandbox error)
  2  bad usage: invalid config or option, repository that cannot be fetched, unknown model, missing
     scripted file or API key (all but the fetch are checked before anything is fetched)
  130  interrupted (Ctrl-C / SIGTERM); every sandbox was removed and the trace written
With `--json`, every exit prints exactly one JSON object on stdout (usage errors included).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from .cli_run import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE
from .common.envfile import EnvFileError, load_env_file
from .common.logging import CLI_FORMAT, setup_logging
from .common.secrets import REDACTOR
from .common.signals import Interrupts
from .rlm import Config, ConfigError, RLMError, Status, load_config

STOPPING = "[yellow]stopping: cancelling every agent and removing sandboxes…[/yellow]"
app = typer.Typer(
    name="rlm",
    help="Run deep recursive language-model agents on a git repository.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _show_version(value: bool) -> None:
    if value:
        from .common.version import VERSION

        print(f"rlm-bot {VERSION}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """Run deep recursive language-model agents on a git repository."""


class JsonOut:
    """`--json`: the one JSON object on stdout, whichever way the command ends."""

    def __init__(self) -> None:
        self.printed = False
        self.error: str | None = None

    def print(self, data: dict) -> None:
        if not self.printed:
            self.printed = True
            print(json.dumps(data, ensure_ascii=False, indent=1), flush=True)


JSON_OUT = JsonOut()


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    message = REDACTOR.redact(message)
    JSON_OUT.error = message
    err.print(f"[red]error:[/red] {escape(message)}", markup=True)
    return typer.Exit(code)


def _wants_json(args: list[str]) -> bool:
    return "--json" in (args[: args.index("--")] if "--" in args else args)


APP_EXTRA_MISSING = (
    "rlm {command} needs the GitHub App's libraries ({module} is not installed); "
    "install them with: pip install 'rlm-bot[app]'"
)
APP_MODULES = (
    "flask",
    "werkzeug",
    "waitress",
    "github",
    "gidgethub",
    "prometheus_client",
    "cryptography",
    "jwt",
)


def _needs_app(command: str, error: ModuleNotFoundError) -> typer.Exit:
    """`pip install rlm-bot` is the CLI alone: an App command without the [app] extra says so."""
    module = (error.name or "").split(".")[0]
    if module not in APP_MODULES:
        raise error
    return fail(APP_EXTRA_MISSING.format(command=command, module=module))


def _config(config_path: Path | None, overrides: dict) -> Config:
    try:
        return load_config(config_path, overrides)
    except ConfigError as e:
        raise fail(str(e)) from None


@dataclass(frozen=True)
class CliEnv:
    """Everything the `rlm` command reads from its environment (after --env-file), read once."""

    llm_api_key: str | None
    daytona_api_key: str | None
    github_api_url: str | None  # GitHub Enterprise behind a proxy (`rlm app register`)

    @classmethod
    def read(cls, environ: Mapping[str, str] | None = None) -> CliEnv:
        env = os.environ if environ is None else environ
        return cls(
            llm_api_key=env.get("LLM_API_KEY", "").strip() or None,
            daytona_api_key=env.get("DAYTONA_API_KEY", "").strip() or None,
            github_api_url=env.get("GITHUB_API_URL") or None,
        )


def _load_env_file(path: Path | None) -> CliEnv:
    """Load the --env-file (THE .env reader), then read the command's environment once."""
    try:
        load_env_file(path)
    except EnvFileError as e:
        raise fail(str(e)) from None
    return CliEnv.read()


def execute(
    config: Config,
    repo: str,
    prompt: str,
    *,
    branch: str | None,
    commit: str | None,
    output: Path | None,
    results_dir: Path,
    title: str,
    quiet: bool = False,
    context: str | None = None,
    report: Path | None = None,
    as_json: bool = False,
) -> int:
    """Run the pipeline with live progress, write the patch and print the summary. Returns the exit code.
    With `-o`, stdout carries the root's answer; with `as_json`, a JSON summary instead."""
    from .cli_run import (
        CLI_WORDS,
        PATCH_NONE,
        CliReporter,
        exit_code,
        json_summary,
        outcome_lines,
        run_cli,
        write_report,
    )
    from .pipeline import OutcomeKind, Phase, RunRequest, RunSettings
    from .rlm import summary_markdown

    env = CliEnv.read()
    cancel = threading.Event()
    request = RunRequest(task=prompt, clone_url=repo, branch=branch, commit=commit, context=context)
    settings = RunSettings(
        config=config,
        words=CLI_WORDS,
        results_dir=results_dir,
        api_key=env.llm_api_key,
        daytona_api_key=env.daytona_api_key,
    )
    reporter = CliReporter(
        err,
        title,
        f"commit {{commit}} · model {config.model.name} · sandbox {config.sandbox.backend}",
        quiet=quiet,
    )
    err.print(f"fetching {repo} …", markup=False)
    with Interrupts(cancel, on_first=lambda: err.print(STOPPING), force_after_first=True) as interrupts:
        try:
            outcome = run_cli(settings, request, reporter, output, cancel, patch_to_stdout=not as_json)
        except KeyboardInterrupt:
            err.print("[red]interrupted[/red]")
            return EXIT_INTERRUPTED
    result = outcome.result
    if result is None:  # it ended before the rollout: the repository or the setup
        if outcome.kind is OutcomeKind.CANCELLED or interrupts.count:
            return EXIT_INTERRUPTED
        usage = reporter.last_phase in (None, Phase.PREPARING)
        raise fail(outcome.error or outcome.message, EXIT_USAGE if usage else EXIT_FAILED)
    err.print()
    err.print(summary_markdown(result.results), markup=False)
    err.print()
    status_style = "green" if result.status == Status.COMPLETED else "red"
    # A failed run's error is in the outcome's message below: said once, with its log tail.
    said_below = (
        outcome.kind is OutcomeKind.ERROR and result.error and result.error in (outcome.message or "")
    )
    err.print(
        f"status: [{status_style}]{result.status}[/{status_style}]"
        + (f" — {escape(result.error)}" if result.error and not said_below else "")
    )
    if result.answer:
        err.print("answer:", markup=False)
        err.print(result.answer, markup=False)
    lines = outcome_lines(outcome, config)
    for line in lines:
        err.print(line, markup=False)
    if outcome.patch_path is None and outcome.kind is not OutcomeKind.PATCH:
        err.print(PATCH_NONE, markup=False)
    if report is not None:
        err.print(write_report(report, result.report), markup=False)
    err.print(f"results: {result.results_path}", markup=False)
    code = exit_code(outcome, bool(interrupts.count))
    if as_json:
        JSON_OUT.print(json_summary(outcome, code, output or outcome.patch_path, " ".join(lines)))
    elif output is not None and result.answer:  # the patch is in the file: stdout is the answer
        print(result.answer)
    return code


@app.command()
def run(
    repo: str = typer.Argument(..., help="git URL or local path of the repository"),
    prompt: str = typer.Option(..., "--prompt", "-p", help="what the root agent should do"),
    branch: str | None = typer.Option(
        None, "--branch", "-b", help="branch to check out (default: the default branch)"
    ),
    commit: str | None = typer.Option(None, "--commit", help="exact commit SHA to check out"),
    config_path: Path | None = typer.Option(None, "--config", "-c", help="config.yaml"),
    output: Path | None = typer.Option(None, "--output", "-o", help="write the patch here instead of stdout"),
    model: str | None = typer.Option(None, "--model", help="litellm model name, or scripted/PATH.yaml"),
    sandbox: str | None = typer.Option(None, "--sandbox", help="local or daytona"),
    results_dir: Path | None = typer.Option(
        None,
        "--results-dir",
        help="where the trace and the patch are kept (default: ~/.cache/rlm-bot/results, or $XDG_CACHE_HOME)",
    ),
    max_depth: int | None = typer.Option(None, "--max-depth", help="override rlm.max_depth"),
    max_sandboxes: int | None = typer.Option(None, "--max-sandboxes", help="override rlm.max_sandboxes"),
    timeout: float | None = typer.Option(None, "--timeout", help="override rlm.global_timeout (seconds)"),
    max_cost: float | None = typer.Option(
        None,
        "--max-cost",
        help="US dollars the run may spend (rlm.max_cost_usd); the tree stops there and the patch so far is marked partial",
    ),
    env_file: Path | None = typer.Option(None, "--env-file", help="a .env file with LLM_API_KEY etc."),
    setup: list[str] | None = typer.Option(
        None, "--setup", help="a setup command run once into $RLM_ENV (repeatable), or 'auto'"
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no live progress"),
    context_file: Path | None = typer.Option(
        None, "--context-file", help="markdown the root agent reads as `context` (an issue, a spec)"
    ),
    report: Path | None = typer.Option(None, "--report", help="write the root agent's REPORT here"),
    as_json: bool = typer.Option(
        False, "--json", help="print one JSON object on stdout however the command ends (with the answer)"
    ),
) -> None:
    """Run a rollout on REPO (a URL, or a path anywhere inside a local repository: its last commit
    is what runs; uncommitted changes are named and left out). The patch goes to stdout (with -o:
    the file, and the answer to stdout), progress and summary to stderr; the trace to --results-dir.
    The model, its key and a scripted file are checked before anything is fetched."""
    _load_env_file(env_file)
    overrides = {
        "model.name": model,
        "sandbox.backend": sandbox,
        "rlm.max_depth": max_depth,
        "rlm.max_sandboxes": max_sandboxes,
        "rlm.global_timeout": timeout,
        "rlm.max_cost_usd": max_cost,
        "sandbox.setup": "auto" if setup == ["auto"] else setup or None,
    }
    config = _config(config_path, overrides)
    if branch and commit:
        raise fail("pass either --branch or --commit, not both.")
    repo, warning = _preflight(config, repo, check_tree=not (branch or commit))
    results = cli_results_dir(results_dir, config)
    context = None
    if context_file is not None:
        from .cli_run import read_context_file

        try:
            context = read_context_file(context_file)
        except ValueError as e:
            raise fail(str(e)) from None
    if warning:
        err.print(warning, style="yellow", markup=False)  # file names may hold [brackets]
    code = execute(
        config,
        repo,
        prompt,
        branch=branch,
        commit=commit,
        output=output,
        results_dir=results,
        title="rlm run",
        quiet=quiet,
        context=context,
        report=report,
        as_json=as_json,
    )
    raise typer.Exit(code)


@app.command()
def demo(
    results_dir: Path | None = typer.Option(
        None, "--results-dir", help="where the trace goes (default: ~/.cache/rlm-bot/results)"
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="write the patch here instead of stdout"),
) -> None:
    """The whole pipeline on a small bundled repository with a SCRIPTED model (no API key, no cost)."""
    from .rlm import DEMO_PROMPT, materialize_demo

    err.print(
        "[bold cyan]SCRIPTED DEMO[/bold cyan]: the model's replies are replayed from a bundled script; "
        "no model is called. The sandboxes, REPLs, sub-agents, patch and trace are real."
    )
    repo_dir, script = materialize_demo()
    config = _config(None, {"model.name": f"scripted/{script}"})
    code = execute(
        config,
        str(repo_dir),
        DEMO_PROMPT,
        branch=None,
        commit=None,
        output=output,
        results_dir=cli_results_dir(results_dir, config),
        title="rlm demo (scripted)",
    )
    raise typer.Exit(code)


@app.command("eval")
def eval_(
    tasks_file: Path = typer.Argument(..., help="the tasks file (docs/eval.md), e.g. bench/tasks/tasks.yaml"),
    variant: list[str] | None = typer.Option(
        None, "--variant", help="NAME=KEY=VALUE,... settings to compare (repeatable; replaces the file's)"
    ),
    only: list[str] | None = typer.Option(None, "--task", help="run only this task (repeatable)"),
    config_path: Path | None = typer.Option(None, "--config", "-c", help="config.yaml"),
    model: str | None = typer.Option(
        None, "--model", help="litellm model name, or 'scripted' for each task's own script"
    ),
    sandbox: str | None = typer.Option(None, "--sandbox", help="local or daytona"),
    timeout: float | None = typer.Option(None, "--timeout", help="override rlm.global_timeout per run"),
    jobs: int | None = typer.Option(None, "--jobs", "-j", help="runs at once (default: 2 local, 8 daytona)"),
    out: Path | None = typer.Option(None, "--out", help="report directory (default: results/eval-<time>)"),
    env_file: Path | None = typer.Option(None, "--env-file", help="a .env file with LLM_API_KEY etc."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress lines"),
) -> None:
    """Run every task of TASKS_FILE (under each variant), judge each patch in a fresh sandbox, and
    print resolved, agents, iterations, wall time, tokens and cost; report.json and report.md too."""
    from .evaluate.command import EvalOptions, run_eval

    env = _load_env_file(env_file)
    options = EvalOptions(
        tasks_file=tasks_file,
        variants=variant or [],
        only=only or [],
        config_path=config_path,
        overrides={"model.name": model, "sandbox.backend": sandbox, "rlm.global_timeout": timeout},
        jobs=jobs,
        out=out,
        quiet=quiet,
        llm_api_key=env.llm_api_key,
        daytona_api_key=env.daytona_api_key,
    )
    cancel = threading.Event()
    with Interrupts(cancel, on_first=lambda: err.print(STOPPING), force_after_first=True):
        try:
            code = run_eval(options, err, cancel)
        except ValueError as e:  # a bad tasks file, variant or config: one sentence
            raise fail(str(e)) from None
        except KeyboardInterrupt:
            err.print("[red]interrupted[/red]")
            code = EXIT_INTERRUPTED
    raise typer.Exit(code)


def _preflight(config: Config, repo: str, check_tree: bool) -> tuple[str, str | None]:
    """Before anything is fetched: the repository's root (a local path may be any subdirectory),
    the warning naming uncommitted changes (when the run starts from HEAD), the model and its key,
    and the Daytona key. Returns (what to fetch, warning)."""
    from .cli_checks import UsageError, check_model, local_repo, uncommitted_changes, uncommitted_warning
    from .pipeline import MissingKey, missing_keys

    env = CliEnv.read()
    missing = missing_keys(config, env.llm_api_key, env.daytona_api_key)
    try:
        local = local_repo(repo)
        check_model(config, llm_key_missing=MissingKey.LLM in missing)
    except UsageError as e:
        raise fail(str(e)) from None
    if MissingKey.DAYTONA in missing:
        from .rlm.sandbox import DAYTONA_MISSING_KEY

        raise fail(DAYTONA_MISSING_KEY)
    if local is None:
        return repo, None
    warning = None if local.bare or not check_tree else uncommitted_warning(uncommitted_changes(local.root))
    return str(local.root), warning


def cli_results_dir(option: Path | None, config: Config) -> Path:
    from .cli_checks import results_dir

    return results_dir(option, config)


def main() -> None:
    setup_logging(logging.WARNING, fmt=CLI_FORMAT)
    args = sys.argv[1:]
    as_json = _wants_json(args)
    try:
        code = app(args=args, standalone_mode=False)
    except typer.Abort:
        code = EXIT_INTERRUPTED
    except Exception as e:
        if not _is_usage_error(e):
            raise
        JSON_OUT.error = e.format_message()  # a usage error found by the parser, before any command ran
        _show_usage_error(e)
        code = e.exit_code
    finally:
        # The outcome is out: skip the interpreter's last collections over litellm's object graph,
        # which take seconds at exit (far more on a loaded machine).
        gc.freeze()
    code = code if isinstance(code, int) else 0
    if as_json and not JSON_OUT.printed and not _asked_for_help(args):
        from .cli_run import json_failure

        JSON_OUT.print(json_failure(code, JSON_OUT.error))
    sys.exit(code)


def _asked_for_help(args: list[str]) -> bool:
    return "--help" in args or "-h" in args


def _is_usage_error(e: Exception) -> bool:
    """click's ClickException (typer vendors click in newer versions, so it is recognised by its API)."""
    return callable(getattr(e, "format_message", None)) and isinstance(getattr(e, "exit_code", None), int)


def _show_usage_error(e) -> None:
    try:
        from typer import rich_utils

        rich_utils.rich_format_error(e)
    except Exception:  # typer without rich formatting: click's own
        e.show()


# ---------------------------------------------------------------------------------------------
# Commands contributed by other parts of rlm-bot (viewer, GitHub App server, sandbox reaping).


@app.command("view")
def view(
    target: Path | None = typer.Argument(
        None, help="results directory (default: `rlm run`'s, ~/.cache/rlm-bot/results) or one run's file"
    ),
    port: int = typer.Option(0, "--port", help="port on 127.0.0.1 (default: a free one)"),
    no_browser: bool = typer.Option(False, "--no-browser", help="print the URL, do not open a browser"),
) -> None:
    """Browse agent trees in a local web viewer (127.0.0.1 only); a running rollout is followed live."""
    from .cli_checks import user_results_dir
    from .viewer.server import ViewError, run_view

    try:
        run_view(target or user_results_dir(), port, open_browser=not no_browser)
    except ViewError as e:
        raise fail(str(e)) from None


sandboxes_app = typer.Typer(help="Sandboxes left behind by runs that were killed.", no_args_is_help=True)
app.add_typer(sandboxes_app, name="sandboxes")


@sandboxes_app.command("reap")
def sandboxes_reap(
    config_path: Path | None = typer.Option(None, "--config", "-c", help="config.yaml"),
    env_file: Path | None = typer.Option(None, "--env-file", help="a .env file with DAYTONA_API_KEY"),
) -> None:
    """Delete local sandbox directories and Daytona sandboxes of rollouts that are no longer running."""
    from .rlm.sandbox import reap_all

    env = _load_env_file(env_file)
    config = _config(config_path, {})
    try:
        counts = reap_all(config, daytona_api_key=env.daytona_api_key)
    except RLMError as e:
        raise fail(str(e), EXIT_FAILED) from None
    daytona = counts["daytona"] if env.daytona_api_key else "skipped (no DAYTONA_API_KEY)"
    typer.echo(
        f"reaped local sandboxes: {counts['local']}; Daytona sandboxes: {daytona}; "
        f"old environments: {counts['environments']}; idle shared checkouts: {counts['checkouts']}"
    )


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="address to bind (0.0.0.0 in a container)"),
    port: int = typer.Option(8080, "--port", help="port for POST /webhook, /healthz, /readyz and /metrics"),
    workers: int = typer.Option(
        2, "--workers", help="runs at once in this process; 0 = intake only (see `rlm worker`)"
    ),
    threads: int = typer.Option(8, "--threads", help="HTTP threads"),
    config_path: Path | None = typer.Option(None, "--config", "-c", help="engine config.yaml"),
    db: str | None = typer.Option(
        None,
        "--db",
        help="job database: a SQLite path or a postgresql:// URL (default: RLM_DB or rlm-jobs.sqlite3)",
    ),
    env_file: Path | None = typer.Option(None, "--env-file", help="a .env file with the GITHUB_* settings"),
    drain: float = typer.Option(
        5.0, "--drain", help="on SIGTERM, seconds running jobs may finish before they are handed back"
    ),
    log_json: bool = typer.Option(False, "--log-json", help="JSON log lines (or RLM_LOG_FORMAT=json)"),
) -> None:
    """Serve the GitHub App: verify webhooks, queue `/rlm` commands, run them, open pull requests."""
    try:
        from bot.github.auth import AppSettingsError
        from webhooks.serve import serve as serve_app
        from webhooks.startup import ServeError, build_config
    except ModuleNotFoundError as e:
        raise _needs_app("serve", e) from None

    _load_env_file(env_file)
    try:
        server_config = build_config(_config(config_path, {}), workers=workers, db=db)
        setup_logging(logging.INFO, json_lines=log_json)
        serve_app(server_config, host, port, threads, drain=drain)
    except (AppSettingsError, ServeError) as e:
        raise fail(str(e)) from None


@app.command("worker")
def worker(
    workers: int = typer.Option(2, "--workers", help="runs at once in this process"),
    control_workers: int = typer.Option(
        1, "--control-workers", help="threads for replies and acknowledgements"
    ),
    config_path: Path | None = typer.Option(None, "--config", "-c", help="engine config.yaml"),
    db: str | None = typer.Option(
        None, "--db", help="job database (default: RLM_DB); the one `rlm serve` uses"
    ),
    env_file: Path | None = typer.Option(None, "--env-file", help="a .env file with the GITHUB_* settings"),
    metrics_host: str = typer.Option("127.0.0.1", "--metrics-host", help="address for the probes"),
    metrics_port: int | None = typer.Option(
        None, "--metrics-port", help="serve /metrics, /healthz, /readyz here"
    ),
    drain: float = typer.Option(
        5.0, "--drain", help="on SIGTERM, seconds running jobs may finish before they are handed back"
    ),
    log_json: bool = typer.Option(False, "--log-json", help="JSON log lines (or RLM_LOG_FORMAT=json)"),
) -> None:
    """Run App jobs from the job database; scale with more workers beside `rlm serve --workers 0`."""
    try:
        from bot.github.auth import AppSettingsError
        from webhooks.startup import ServeError, build_config
        from webhooks.worker import run_worker
    except ModuleNotFoundError as e:
        raise _needs_app("worker", e) from None

    _load_env_file(env_file)
    setup_logging(logging.INFO, json_lines=log_json)
    try:
        server_config = build_config(_config(config_path, {}), workers=workers, db=db)
    except AppSettingsError as e:
        raise fail(str(e)) from None
    if server_config.app is None or workers + control_workers < 1:
        raise fail(WORKER_NEEDS_APP if server_config.app is None else WORKER_NEEDS_THREADS)
    try:
        run_worker(
            server_config,
            control_workers=control_workers,
            drain=drain,
            metrics_host=metrics_host,
            metrics_port=metrics_port,
        )
    except ServeError as e:
        raise fail(str(e)) from None
    # The unfinished jobs were handed back; their threads (and sandboxes) end with the process now.
    logging.shutdown()
    os._exit(0)


WORKER_NEEDS_APP = (
    "rlm worker needs the App's settings: set GITHUB_APP_ID and GITHUB_PRIVATE_KEY (or --env-file)."
)
WORKER_NEEDS_THREADS = "rlm worker needs at least one worker: set --workers or --control-workers above 0."

app_app = typer.Typer(help="The GitHub App itself.", no_args_is_help=True)
app.add_typer(app_app, name="app")


@app_app.command("register")
def app_register(
    webhook_url: str = typer.Option(
        ..., "--webhook-url", help="where GitHub will send deliveries: https://HOST/webhook"
    ),
    name: str = typer.Option("rlm-bot", "--name", help="the App's name (unique on GitHub)"),
    github_url: str = typer.Option(
        "https://github.com", "--github-url", help="GitHub, or a GitHub Enterprise Server"
    ),
    org: str | None = typer.Option(
        None, "--org", help="register under this organization instead of your account"
    ),
    output: Path = typer.Option(Path("app.env"), "--output", "-o", help="env file to write (mode 0600)"),
    port: int = typer.Option(0, "--port", help="local port for the page (default: a free one)"),
    no_browser: bool = typer.Option(False, "--no-browser", help="print the URL, do not open a browser"),
    public: bool = typer.Option(False, "--public", help="let other accounts install the App"),
) -> None:
    """Create the GitHub App from a manifest in one step; writes its id, key and webhook secret."""
    try:
        from .github.register import RegisterError, register
    except ModuleNotFoundError as e:
        raise _needs_app("app register", e) from None

    try:
        path = register(
            webhook_url=webhook_url,
            name=name,
            github_url=github_url,
            org=org,
            output=output,
            port=port,
            open_browser=not no_browser,
            public=public,
            api_url=CliEnv.read().github_api_url,
        )
    except RegisterError as e:
        raise fail(str(e), EXIT_FAILED) from None
    typer.echo(f"wrote {path}; start the server with: rlm serve --env-file {path}")
