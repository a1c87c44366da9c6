"""One run, whatever started it: the CLI, the GitHub App worker and the Action are adapters of this.
It imports no front end (nothing of GitHub, Flask, the job store, webhooks/ or action/).

    from bot.pipeline import RunRequest, RunSettings, run
    outcome = run(request, reporter, deliverer, cancel, settings=settings)

- `RunRequest` (request.py) is the job payload itself: `to_payload()` / `from_payload()` give the
  JSON object a job store keeps verbatim. `request.context` carries the request's context
  (issue/PR text, thread, diff; the CLI's `--context-file`) for the root agent.
- `Reporter` (reporter.py) hears the run (acknowledge, request_changed, phase, note, event,
  finished); `Reporters(a, b)` fans out to several. Events are engine trace events: interpret them
  through the one fold (`bot.rlm.fold`). `Deliverer` (deliverer.py) says where a run starts
  (`target`) and delivers a completed change (`deliver`); a failure of its side is a
  `DeliveryError` (errors.py), which ends the run as `OutcomeKind.DELIVERY_ERROR`.
- `RunOutcome` / `OutcomeKind` (outcome.py) say how it ended and where the change is; each front
  end words the outcomes the pipeline decides itself through `RunSettings.words` (`OutcomeWords`).
  The patch is always written beside the results as `<run_id>.patch` before delivery.
- `accept` (run id + acknowledgement) and `resolve` (the target commit) each happen once per run:
  the App calls them when it accepts a command; `run` skips what the request says is done.

Where new steps plug in (state.py): `RunSettings.before_fetch` stages run once the target commit is
known, before the fetch (`.github/rlm.yml`, the request's context). A stage gets `(state, reporter)`,
may call `reporter.note(...)`, may replace `state.config`, and raises RLMError to end the run.
"""

from .deliverer import Deliverer
from .errors import DeliveryError
from .keys import MissingKey, missing_keys
from .outcome import OutcomeKind, OutcomeWords, RunOutcome, Target
from .reporter import NullReporter, Phase, Reporter, Reporters
from .request import RunRequest
from .run import accept, new_run_id, patch_path, resolve, rollout_outcome, run, write_patch
from .state import RunSettings, RunState, Stage

__all__ = [
    "Deliverer",
    "DeliveryError",
    "MissingKey",
    "NullReporter",
    "OutcomeKind",
    "OutcomeWords",
    "Phase",
    "Reporter",
    "Reporters",
    "RunOutcome",
    "RunRequest",
    "RunSettings",
    "RunState",
    "Stage",
    "Target",
    "accept",
    "missing_keys",
    "new_run_id",
    "patch_path",
    "resolve",
    "rollout_outcome",
    "run",
    "write_patch",
]
