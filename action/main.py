"""The Action's step: mask secrets, decide whether to run, run, then outputs, summary and exit code.

Order matters: secrets are masked before anything is printed; the trust check and the
configuration checks come before any model call; outputs and the summary are written on every
path, so `conclusion` always says how the step ended.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from bot.common.logging import setup_logging
from bot.common.secrets import REDACTOR
from bot.common.signals import Interrupts
from bot.github.api import GitHubAPI, GitHubError
from bot.github.auth import basic_auth_header
from bot.pipeline import MissingKey, missing_keys
from bot.rlm import Config, ConfigError, apply_overrides, load_config

from . import messages as m
from .agent_logs import AgentLogs
from .context import ActionContext, ContextError
from .inputs import InputError, InputReader, Inputs
from .outputs import RunFiles, conclusion_for, outputs
from .summary import run_summary, stopped_summary
from .token_permissions import missing_permission
from .trust import Stop, Trigger, decide
from .workflow import Runner

if TYPE_CHECKING:
    from bot.pipeline import RunOutcome

log = logging.getLogger("rlm-bot.action")
SECRET_INPUTS = ("llm-api-key", "github-token", "daytona-api-key")
SECRET_ENV = ("LLM_API_KEY", "DAYTONA_API_KEY")
INPUTS = "the action's inputs"


def _mask_secrets(runner: Runner, reader: InputReader, environ: Mapping[str, str]) -> None:
    """Mask every secret value (and the git auth header made from the token) before any output."""
    values = [reader.get(name) for name in SECRET_INPUTS] + [environ.get(name, "") for name in SECRET_ENV]
    token = reader.get("github-token")
    if token:
        values.append(basic_auth_header(token).split()[-1])
    runner.add_mask(*values)
    REDACTOR.add(*values)


class Step:
    """One execution of the action: a runner to talk to, the context, and how it ends."""

    def __init__(self, runner: Runner, environ: Mapping[str, str]):
        self.runner = runner
        self.environ = environ

    # ------------------------------------------------------------------ endings

    def stopped(self, conclusion: str, message: str) -> int:
        """End without a run: annotation, summary, outputs."""
        failing = conclusion in m.FAILING
        if failing:
            self.runner.error(message, title="rlm-bot")
        elif conclusion == m.NOT_ALLOWED:
            self.runner.warning(message, title="rlm-bot")
        else:
            self.runner.notice(message, title="rlm-bot")
        self.runner.append_summary(stopped_summary(message))
        self.runner.set_outputs(outputs(conclusion))
        return 1 if failing else 0

    def reply(self, api: GitHubAPI, ctx: ActionContext, body: str) -> None:
        """Best effort: the step's message already says the same thing."""
        if not ctx.issue_number:
            return
        try:
            api.create_comment(ctx.repository, ctx.issue_number, body)
        except GitHubError as e:
            self.runner.warning(missing_permission(str(e)) or str(e), title="rlm-bot")

    # ------------------------------------------------------------------ the step

    def run(self) -> int:
        reader = InputReader(self.environ)
        _mask_secrets(self.runner, reader, self.environ)
        try:
            inputs = Inputs.read(reader)
            ctx = ActionContext.from_env(self.environ)
        except (InputError, ContextError) as e:
            return self.stopped(m.INVALID_INPUT, str(e))
        if not inputs.github_token:
            return self.stopped(m.INVALID_INPUT, m.MISSING_TOKEN)
        api = GitHubAPI(inputs.github_token, api_url=ctx.api_url)
        try:
            trigger = decide(ctx, inputs, api)
        except Stop as stop:
            if stop.reply:
                self.reply(api, ctx, stop.reply)
            return self.stopped(stop.conclusion, stop.message)
        except GitHubError as e:
            refused = missing_permission(str(e))
            return self.stopped(m.MISSING_PERMISSIONS if refused else m.FAILED, refused or str(e))
        try:
            config = self.config(inputs, ctx)
        except ConfigError as e:
            return self.stopped(m.INVALID_INPUT, m.CONFIG_PROBLEM.format(reason=e))
        missing = missing_keys(config, inputs.llm_api_key, inputs.daytona_api_key)
        if missing:
            problem = (
                m.MISSING_LLM_KEY.format(model=config.model.name)
                if missing[0] is MissingKey.LLM
                else m.MISSING_DAYTONA_KEY
            )
            self.reply(api, ctx, m.REPLY_NOT_CONFIGURED.format(reason=problem, url=ctx.run_url))
            return self.stopped(m.MISSING_KEY, problem)
        return self.execute(ctx, inputs, api, config, trigger)

    def config(self, inputs: Inputs, ctx: ActionContext) -> Config:
        """The config file's (or the defaults) with the inputs that were set. `.github/rlm.yml` goes
        between the two once the run knows its default branch (RepoConfigStage, as in the App)."""
        return apply_overrides(self.base_config(inputs, ctx), inputs.config_overrides(), INPUTS)

    def base_config(self, inputs: Inputs, ctx: ActionContext) -> Config:
        path = None
        if inputs.config:
            path = Path(inputs.config)
            path = path if path.is_absolute() else ctx.workspace / path
        config = load_config(path, environ=dict(self.environ))
        if config.sandbox.cache_dir is None:
            config.sandbox.cache_dir = str(ctx.temp_dir / "cache")
        return config

    def execute(
        self,
        ctx: ActionContext,
        inputs: Inputs,
        api: GitHubAPI,
        config: Config,
        trigger: Trigger,
    ) -> int:
        # The engine (and litellm, seconds to import) loads only now: a step that runs nothing
        # (no command, not allowed, missing key) never loads it.
        from bot.github.messages import GITHUB_WORDS
        from bot.github.repo_config import CostCap, RepoConfigStage, RepoPolicy
        from bot.github.request_context import RequestContextStage
        from bot.pipeline import RunSettings, new_run_id

        from . import flow

        run_id = new_run_id()
        directory = flow.results_dir(ctx, run_id)
        directory.mkdir(parents=True, exist_ok=True)
        # Known now, so the artifact step uploads whatever exists even if this process is killed.
        self.runner.set_outputs({"run-id": run_id, "artifact-dir": str(directory)})
        plan_deliverer = flow.deliverer(
            inputs.create_pr, inputs.draft, ctx.run_url or None, api, review=trigger.mode == "review"
        )
        base = self.base_config(inputs, ctx)
        # The repository is its own operator here: any model, and no cost ceiling but the inputs'.
        policy = RepoPolicy(
            cost=CostCap(base.rlm.max_cost_usd or CostCap().default_usd, None), any_model=True
        )
        repo_config = RepoConfigStage(
            api,
            policy,
            on_prefs=getattr(plan_deliverer, "use_prefs", None),
            overrides=inputs.config_overrides(),
        )
        settings = RunSettings(
            config=base,  # + .github/rlm.yml + the inputs, in RepoConfigStage
            words=GITHUB_WORDS.with_prefix(inputs.trigger),
            results_dir=directory,
            auth_header=basic_auth_header(inputs.github_token),
            api_key=inputs.llm_api_key or None,
            before_fetch=[repo_config, RequestContextStage(api)],
            daytona_api_key=inputs.daytona_api_key or None,
            patch_link=flow.patch_link(ctx.run_url),
        )
        request = flow.make_request(ctx, trigger, inputs.base_branch, run_id)
        cancel = Interrupts().install().event  # the runner's "cancel workflow"
        self.runner.log(f"rlm-bot run {run_id}: {config.model.name}, sandbox {config.sandbox.backend}")
        plan = flow.Plan(
            request=request,
            settings=settings,
            create_pr=inputs.create_pr,
            draft=inputs.draft,
            run_url=ctx.run_url or None,
            deliverer=plan_deliverer,
        )
        outcome = flow.run(plan, api, cancel, logs=AgentLogs(self.runner))
        return self.finished(trigger, outcome, inputs.create_pr, directory)

    def finished(self, trigger: Trigger, outcome: RunOutcome, create_pr: bool, directory: Path) -> int:
        files = RunFiles.collect(directory, outcome)
        conclusion, message = conclusion_for(outcome, create_pr, files)
        self.runner.append_summary(run_summary(trigger.task, outcome.run_id, message, files.results))
        self.runner.set_outputs(outputs(conclusion, outcome.pr_url, files))
        if conclusion in m.FAILING:
            self.runner.error(message, title="rlm-bot")
            return 1
        self.runner.notice(message, title="rlm-bot")
        return 0


def main(environ: Mapping[str, str] | None = None) -> int:
    environ = dict(os.environ if environ is None else environ)
    runner = Runner(environ.get("GITHUB_OUTPUT"), environ.get("GITHUB_STEP_SUMMARY"))
    setup_logging(
        logging.WARNING,
        fmt="%(levelname)s %(name)s: %(message)s",
        handler=logging.StreamHandler(sys.stderr),
        loud=("bot", "action", log.name),
    )
    # Child processes (git, sandboxes) need none of these; the values stay in `environ`.
    for name in [*(f"INPUT_{n.upper()}" for n in SECRET_INPUTS), *SECRET_ENV]:
        os.environ.pop(name, None)
    step = Step(runner, environ)
    try:
        return step.run()
    except Exception as e:  # a bug, not a user error: full traceback in the log, and still a conclusion
        log.exception("rlm-bot stopped on an unexpected error")
        return step.stopped(
            m.FAILED, m.INTERNAL_ERROR.format(error=REDACTOR.redact(f"{type(e).__name__}: {e}"))
        )
