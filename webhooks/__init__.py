"""The GitHub App. Started only by `rlm serve` (intake, and workers unless `--workers 0`) and
`rlm worker` (workers only).

- intake.py: POST /webhook — verify, parse (payload.py), route, record the job, answer 202.
- routing.py + one module per event (issue_comment.py, review_comment.py; comment_command.py is the
  behaviour both share): validate and build the job (a `RunRequest` payload), never touch GitHub.
- kinds.py: `JobKind` and the App's decisions the job store asks for (busy, resume or report).
- handler.py: what a worker does with a job (replies, acceptance, the run through bot.pipeline).
- worker.py: the worker pool and the `rlm worker` process; serve.py: `rlm serve`; startup.py: what
  both check at start; settings.py: the App's settings, read once; observability.py: the probes.
"""

from .intake import create_app
from .settings import ServerConfig

__all__ = ["ServerConfig", "create_app"]
