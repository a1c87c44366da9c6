"""One run, whatever started it: the CLI, the GitHub App worker and the Action are adapters of this.

    from bot.pipeline import RunRequest, RunSettings, run
    outcome = run(request, reporter, deliverer, cancel, settings=settings)

- `RunRequest` (request.py) is the job payload itself: `to_payload()` / `from_payload()` give the
  JSON object a job store keeps verbatim. `request.context` carries the request's context
  (issue/PR text, thread, diff; the CLI's `--context-file`) for the root agent.
- `Reporter` hears the run (acknowledge, request_changed, phase, note, event, finished); `Deliverer`
  says where it starts (`target`) and delivers a completed change (`deliver`). Both are
  Protocols (reporter.py, state.py); `Reporters(a, b)` fans out to several reporters.
- `RunOutcome` / `OutcomeKind` (outcome.py) say how it ended and where the change is.
  The patch is always written beside the results as `<run_id>.patch` before delivery.

Where new steps plug in (state.py, `RunSettings`):
- `before_fetch` stages run once the target commit is known, before the fetch (the App's
  `.github/rlm.yml` stage: it may replace `state.config`).
- `before_rollout` stages run after the fetch, before the rollout: environment setup goes here.
  A stage gets `(state, reporter)`, may call `reporter.phase(Phase.SETTING_UP, ...)` and
  `reporter.note(...)`, may replace `state.config`, and raises RLMError to end the run.
- Request context: fill `request.context` in the adapter (or in a `before_fetch` stage that
  reads the issue). It is stored with the payload; the engine does not take it yet (issue 11
  passes it from `_execute` in run.py to `engine.run`, next to `request.task`).
"""

from .outcome import OutcomeKind, RunOutcome, Target
from .reporter import Deliverer, NullReporter, Phase, Reporter, Reporters, Stage
from .request import RunRequest
from .run import acknowledge, new_run_id, patch_path, rollout_outcome, run, write_patch
from .state import RunSettings, RunState

__all__ = [
    "Deliverer",
    "NullReporter",
    "OutcomeKind",
    "Phase",
    "Reporter",
    "Reporters",
    "RunOutcome",
    "RunRequest",
    "RunSettings",
    "RunState",
    "Stage",
    "Target",
    "acknowledge",
    "new_run_id",
    "patch_path",
    "rollout_outcome",
    "run",
    "write_patch",
]
