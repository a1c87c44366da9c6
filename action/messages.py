"""Everything the Action says to people (log annotations, step summary, replies), and its conclusions.

Text shared with the App (status comment, PR body, outcomes) lives in bot.github.messages; these
are the sentences only the Action needs. Tests assert against these constants.
"""

from __future__ import annotations

# ---------------------------------------------------------------- conclusions (the `conclusion` output)
PR_CREATED = "pr-created"
PATCH_IN_COMMENT = "patch-in-comment"
CHANGES = "changes"  # changes made, create-pr is false: see the patch-file output
NO_CHANGES = "no-changes"
ANSWERED = "answered"  # the run answered (in the status comment) and changed no files
REVIEWED = "reviewed"  # mode review: a review was posted on the pull request
TIMEOUT = "timeout"
BUDGET = "budget"
CANCELLED = "cancelled"
FAILED = "failed"
SKIPPED = "skipped"
NOT_ALLOWED = "not-allowed"
MISSING_KEY = "missing-key"
MISSING_PERMISSIONS = "missing-permissions"
INVALID_INPUT = "invalid-input"

CONCLUSIONS = (
    PR_CREATED,
    PATCH_IN_COMMENT,
    CHANGES,
    NO_CHANGES,
    ANSWERED,
    REVIEWED,
    TIMEOUT,
    BUDGET,
    CANCELLED,
    FAILED,
    SKIPPED,
    NOT_ALLOWED,
    MISSING_KEY,
    MISSING_PERMISSIONS,
    INVALID_INPUT,
)
# Conclusions that fail the step: the workflow's owner has something to fix.
FAILING = (TIMEOUT, BUDGET, FAILED, MISSING_KEY, MISSING_PERMISSIONS, INVALID_INPUT)

# ---------------------------------------------------------------- why nothing ran
NOT_CREATED = "The comment was {action}, not created; only new comments start a run."
IGNORED_BOT = "The comment is by the bot account {user}; bots cannot start runs."
NO_COMMAND = (
    "The comment has no `{prefix}` command (a line starting with `{prefix} <task>`), so nothing ran. "
    "Add `if: contains(github.event.comment.body, '{prefix}')` to the job to skip such comments."
)
NOT_PERMITTED = (
    "@{user} has {permission} permission on {repo}; starting a run needs write, maintain or admin."
)
REVIEW_NEEDS_A_PULL_REQUEST = (
    "Input 'mode' is review, but this {event} event is not about a pull request: run it on "
    "`pull_request` events, or comment `{prefix} review` on a pull request."
)
NO_PROMPT = (
    "There is no task: set the action's `prompt` input for {event} events "
    "(only comment events can take the task from a `{prefix} <task>` comment)."
)
HELP_ANSWERED = "Answered `{prefix} help`; nothing ran."
INVALID_ANSWERED = "The `{prefix}` command was not understood; replied with the help text, nothing ran."
NO_STATUS_IN_ACTION = (
    "Runs started by the rlm-bot Action are followed in the workflow run's log and summary: {url}"
)
NO_CANCEL_IN_ACTION = "Runs started by the rlm-bot Action are cancelled from the Actions tab: {url}"
KEYWORD_ANSWERED = "Answered `{prefix} {word}` with a link to the workflow runs; nothing ran."

# ---------------------------------------------------------------- configuration problems
MISSING_LLM_KEY = (
    "No LLM API key: pass one with `llm-api-key: ${{{{ secrets.<NAME> }}}}` (or set LLM_API_KEY in the "
    "job's env). The model {model} needs it."
)
MISSING_DAYTONA_KEY = (
    "sandbox is daytona but there is no Daytona API key: pass `daytona-api-key: ${{{{ secrets.<NAME> }}}}`."
)
MISSING_TOKEN = "No GitHub token: leave `github-token` at its default (${{ github.token }}) or pass a token."
CONFIG_PROBLEM = "The rlm-bot configuration is invalid: {reason}"
INTERNAL_ERROR = "rlm-bot stopped on an unexpected error ({error}); the log above has the details."
REPLY_NOT_CONFIGURED = "⚠️ rlm-bot could not start: {reason} See {url}"

# ---------------------------------------------------------------- missing token permissions
NEEDS_PERMISSION = (
    "The workflow's token may not {what}: add `{permission}` to the job's `permissions:` "
    "(GitHub answered {status}: {message})."
)
ACTIONS_MAY_NOT_CREATE_PRS = (
    "GitHub Actions may not open pull requests in this repository: enable Settings → Actions → "
    'General → "Allow GitHub Actions to create and approve pull requests", or pass a token that may.'
)

# ---------------------------------------------------------------- outcome of a run without a pull request
OUTCOME_PATCH_ARTIFACT = (
    "✅ Done. `create-pr` is false, so no pull request was opened: the patch is in the "
    "workflow run's artifact and its `patch-file` output. {url}"
)

OUTCOME_RUN_CANCELLED = (
    "🚫 The workflow run was cancelled; the agents were stopped and no pull request was opened."
)

# ---------------------------------------------------------------- step summary
SUMMARY_HEADER = "## 🤖 rlm-bot"
SUMMARY_OUTCOME = "**Outcome:** {outcome}"
SUMMARY_NOTHING_RAN = "Nothing ran: {reason}"
SUMMARY_REPORT = "### 📋 Report from the agents"
PATCH_IN_ARTIFACT = "`{name}` in the `rlm-bot-{run_id}` artifact of {url}"
SUMMARY_ARTIFACT = "The results JSON, the event log and the patch are in the `rlm-bot-{run_id}` artifact."
