"""Everything the bot writes for people to read: status comment, PR title and body, replies.

Every user-facing sentence is an UPPER_CASE constant here; tests assert against these constants.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from bot.common.version import VERSION
from bot.pipeline import OutcomeWords
from bot.rlm import (
    SetupStatus,
    Status,
    cost_cap_of,
    count,
    fmt_duration,
    fmt_spend,
    fmt_spend_of_cap,
    summary_markdown,
    totals_line,
)

from .commands import DEFAULT_PREFIX

if TYPE_CHECKING:  # the engine (and litellm) is not imported just to word a reply
    from bot.rlm import RolloutResult

# ---------------------------------------------------------------- reactions
REACTION_SEEN = "eyes"
REACTION_DONE = "rocket"
REACTION_FAILED = "confused"

# ---------------------------------------------------------------- status comment
STATUS_HEADER = "### 🤖 rlm-bot run `{run_id}`"
STATUS_TASK = "> {task}"
STATUS_QUEUED = "⏳ Queued: waiting for a free worker."
STATUS_PREPARING = "📥 Fetching the repository at `{commit}`…"
STATUS_RUNNING = (
    "⏳ Running: {running} running, {finished} finished · max depth {depth} · "
    "{iterations} · {elapsed} elapsed · {cost}"
)
STATUS_OPENING_PR = "📝 Opening a pull request…"
STATUS_SETTING_UP = "🧰 Setting up the environment…"
STATUS_SETUP_DONE = "🧰 Environment ready{how}"
SETUP_CACHED, SETUP_BUILT = " (cached)", " (built in {duration})"
STATUS_STARTING = "⏳ Starting the agents…"
STATUS_RESTARTED = "🔁 The server restarted while this run was in progress; it was started again."
STATUS_FOOTER = "Stop it with `{prefix} cancel`; see progress with `{prefix} status`."
STATUS_VERSION = "<sub>rlm-bot {version}</sub>"
STATUS_TRACE = "[Trace]({url})"

# ---------------------------------------------------------------- outcomes (end of the status comment)
OUTCOME_PR = "✅ Opened {url}"
OUTCOME_PATCH_COMMENT = (
    "✅ Done. This pull request comes from a fork, which the app cannot push to, so the patch is in "
    "{url}. Apply it with `git apply`."
)
OUTCOME_BRANCH = (
    "⚠️ The change is on branch `{branch}` ({compare}), but GitHub refused to open the pull request: "
    "{error} Open it from that link, or apply the patch: {patch}"
)
OUTCOME_PR_REFUSED = "❌ GitHub refused to open the pull request: {error} The change is in the patch: {patch}"
OUTCOME_PR_EXISTING = "✅ The change is in {url} (it was already open from `{branch}`)."
FORK_UNTRUSTED = (
    "This pull request comes from a fork, so its code is not trusted: the environment setup ran on "
    "the base commit `{base}` and the agents follow that commit's `AGENTS.md`, not the fork's; the "
    "fork's code runs only inside the agents' sandboxes."
)
PATCH_SAVED = "The patch is saved: {where}."
PATCH_LINK = "[{name}]({url})"
PATCH_ON_SERVER = "`{name}` in the server's results directory"
ACK_REACTION_FAILED = "⚠️ Could not add the 👀 reaction to the command ({error}); the run goes on."
CUT_MARKER = "\n\n… cut here: GitHub allows {limit} characters. The rest is at {url}"
CUT_MARKER_LOCAL = "\n\n… cut here: GitHub allows {limit} characters. The rest is in the server's results."
OUTCOME_NO_CHANGES = "✅ Done, but the agents changed no files, so there is no pull request."
OUTCOME_ANSWER = "💬 Answered; no files were changed."
ANSWER_REPORT = "<details><summary>📋 Report from the agents</summary>\n\n{report}\n\n</details>"
OUTCOME_ONLY_WORKFLOWS = (
    "⚠️ Done, but every change was under `.github/workflows/`, which this app may not push. The patch: {patch}"
)
OUTCOME_TIMEOUT = "⏱️ The run hit its time limit before finishing; no pull request was opened."
OUTCOME_BUDGET = "⛔ The run used up its budget (sandboxes, iterations or cost); no pull request was opened."
OUTCOME_COST_CAP = (
    "⛔ The run reached its cost cap of ${cap:.2f} before it finished, and had changed no files; "
    "no pull request was opened."
)
# The cost cap stopped the tree after it changed files: they are delivered all the same, marked partial.
PARTIAL_NOTE = (
    "the run reached its cost cap of {cap} ({spent} spent) before it finished, so this is the work "
    "done until then"
)
OUTCOME_PARTIAL = "⚠️ Partial: {note}. {outcome}"
PR_PARTIAL = "> [!WARNING]\n> **Partial change:** {note}. Check it with care before merging."
OUTCOME_CANCELLED = "🚫 Cancelled by `{prefix} cancel`; no pull request was opened."
OUTCOME_ERROR = "❌ The run failed: {error}"
INTERNAL_ERROR = "an internal error in rlm-bot (the server log has the details)"
OUTCOME_GITHUB_ERROR = "❌ GitHub's API kept failing, so the run could not finish: {error}"
OUTCOME_INTERRUPTED = (
    "❌ The server stopped while this run was in progress and it could not be resumed. "
    "Comment `{prefix} <task>` to start it again."
)
WORKFLOW_FILES_SKIPPED = (
    "⚠️ Changes to these workflow files were left out because the app has no `workflows` permission: {files}"
)
TRIGGER_NOT_CONFIGURED = "This label or assignment is not a trigger in `.github/rlm.yml`."
REPO_CONFIG_PROBLEM = "⚠️ `.github/rlm.yml` was ignored: {reason}"

# How the App and the Action word the outcomes the pipeline decides itself.
GITHUB_WORDS = OutcomeWords(
    timeout=OUTCOME_TIMEOUT,
    budget=OUTCOME_BUDGET,
    cost_cap=OUTCOME_COST_CAP,
    cancelled=OUTCOME_CANCELLED,
    no_changes=OUTCOME_NO_CHANGES,
    answered=OUTCOME_ANSWER,
    error=OUTCOME_ERROR,
    internal_error=INTERNAL_ERROR,
    delivery_error=OUTCOME_GITHUB_ERROR,
    patch_saved=PATCH_SAVED,
    prefix=DEFAULT_PREFIX,
)

# ---------------------------------------------------------------- replies
BUSY = (
    "A run is already in progress on this issue (`{run_id}`). Wait for it, or stop it with `{prefix} cancel`."
)
CANCEL_REQUESTED = "🚫 Cancelling run `{run_id}` and all its sub-agents."
NOTHING_TO_CANCEL = "There is no run in progress here to cancel."
NOTHING_RUNNING = "There is no run in progress here. Start one with `{prefix} <task>`."
STATUS_REPLY = "Run `{run_id}` is {state}. {progress}"
INVALID_COMMAND = "I did not understand that command."

# ---------------------------------------------------------------- pull request and patch comment
PR_TITLE_PREFIX = "rlm: "
PR_TITLE_LIMIT = 72
PR_ANSWER_HEADER = "## Summary"
PR_NO_ANSWER = "_The root agent gave no summary._"
PR_REQUESTED_BY = "Requested by @{requester} in {source}."
PR_TRACE = "🔎 Full trace of every agent: {url}"
PR_TRACE_LOCAL = "🔎 The full trace is `{name}` in the server's results directory."
PATCH_COMMENT = (
    "Here is the patch for run `{run_id}` (this pull request comes from a fork, so I cannot push to it):"
)
PATCH_TOO_LONG = "\n… the patch is longer than a comment can hold; the full patch: {url}"
PATCH_TOO_LONG_LOCAL = (
    "\n… the patch is longer than a comment can hold; the full patch is `{name}` in the results."
)
PATCH_LIMIT = 60000
PR_CLOSES = "Closes #{number}"
PR_REPORT = "<details><summary>📋 Report from the agents</summary>\n\n{report}\n\n</details>"
PR_FOLLOW_UP = "🔁 Updated by follow-up run `{run_id}`, requested by @{requester}: {task}"
PR_EARLIER = "<details><summary>Earlier description</summary>\n\n{body}\n\n</details>"
OUTCOME_PUSHED = "✅ Pushed {sha} onto `{branch}`, updating {url}"
OUTCOME_PUSH_MOVED = (
    "⚠️ `{branch}` moved while the agents worked, so the new commit could not be pushed onto it; "
    "run the command again to work on the branch's new head."
)
REVIEW_REQUEST_FAILED = "⚠️ Could not ask @{requester} to review the pull request: {error}"
PR_UPDATE_FAILED = "⚠️ Could not update the description of {url}: {error}"
CONTEXT_UNAVAILABLE = (
    "⚠️ Could not read the text and discussion of {source} ({error}); the agents see only the command."
)
BODY_LIMIT = 65536  # GitHub's limit for an issue comment or pull request body, in characters


def pr_title(task: str) -> str:
    first = " ".join(task.strip().splitlines()[0].split()) if task.strip() else "changes"
    title = PR_TITLE_PREFIX + first
    return title if len(title) <= PR_TITLE_LIMIT else title[: PR_TITLE_LIMIT - 1] + "…"


def _answer_title(answer: str | None) -> tuple[str, int] | None:
    """The title line of the root's answer (the prompt asks for a commit-subject first line), as
    (title without markdown, its line index), or None when the answer has none."""
    for i, line in enumerate((answer or "").strip().splitlines()):
        text = " ".join(re.sub(r"^[#>*\-\s]+", "", line).replace("**", "").split()).rstrip(".")
        if text.lower().rstrip(":") in ("summary", "changes", "what changed"):
            continue
        return (text, i) if len(text) >= 8 else None
    return None


def pr_title_from(answer: str | None, task: str) -> str:
    """The title a person would write: the first line of the root's answer, without markdown;
    the task's first line when the answer has none."""
    found = _answer_title(answer)
    if found is None:
        return pr_title(task)
    text = found[0]
    return text if len(text) <= PR_TITLE_LIMIT else text[: PR_TITLE_LIMIT - 1] + "…"


def summary_text(answer: str | None) -> str:
    """The answer for the PR body's summary: without the line that became the title (and the
    headings before it), so the description does not open by repeating the title."""
    answer = (answer or "").strip()
    found = _answer_title(answer)
    if found is None or len(found[0]) > PR_TITLE_LIMIT:
        return answer
    rest = "\n".join(answer.splitlines()[found[1] + 1 :]).strip()
    return rest or answer


def report_section(report: str | None) -> str:
    return PR_REPORT.format(report=report.strip()) if report and report.strip() else ""


def follow_up_body(new_body: str, old_body: str | None, *, run_id: str, requester: str, task: str) -> str:
    """A follow-up's PR description: the new summary first, the earlier one collapsed, within GitHub's limit."""
    line = PR_FOLLOW_UP.format(run_id=run_id, requester=requester, task=" ".join(task.split())[:200])
    body = f"{line}\n\n{new_body.strip()}\n"
    room = BODY_LIMIT - len(body) - 200
    if old_body and old_body.strip() and room > 500:
        old = old_body.strip()
        old = old if len(old) <= room else old[:room] + "\n…"
        body += "\n" + PR_EARLIER.format(body=old) + "\n"
    return body[:BODY_LIMIT]


def trace_line(trace_url: str | None, run_id: str) -> str:
    if trace_url:
        return PR_TRACE.format(url=trace_url)
    return PR_TRACE_LOCAL.format(name=f"{run_id}.json")


def pr_body(
    result: RolloutResult,
    trace_url: str | None,
    *,
    requester: str | None = None,
    source: str | None = None,
    notes: list[str] | None = None,
    closes: int | None = None,
    partial_note: str | None = None,
) -> str:
    """(A partial change's warning +) root answer + `Closes #N` + the report (collapsed) + agent-tree summary (with totals) + notes +
    how to see the trace, cut to GitHub's limit (the answer is what gives way; the trace link stays)."""
    answer = summary_text(result.answer)
    parts = [PR_PARTIAL.format(note=partial_note), ""] if partial_note else []
    parts += [PR_ANSWER_HEADER, "", answer or PR_NO_ANSWER, ""]
    if closes:
        parts += [PR_CLOSES.format(number=closes), ""]
    report = report_section(getattr(result, "report", None))
    if report:
        room = BODY_LIMIT - len(answer) - 8000  # the tree summary and trace line keep their place
        parts += [
            report if len(report) <= room else report_section(result.report[: max(0, room - 200)] + "\n…"),
            "",
        ]
    if requester and source:
        parts += [PR_REQUESTED_BY.format(requester=requester, source=source), ""]
    parts += [summary_markdown(result.results), ""]
    tail = [*(notes or []), "", trace_line(trace_url, result.run_id)]
    body = "\n".join(parts).strip() + "\n\n" + "\n".join(tail).strip() + "\n"
    if len(body) <= BODY_LIMIT:
        return body
    end = "\n\n" + "\n".join(tail).strip() + "\n"
    return cut("\n".join(parts).strip(), trace_url, BODY_LIMIT - len(end)) + end


def setup_status(results: dict) -> str | None:
    """The environment setup's line of the status comment (docs/environment.md), if it had one:
    "Setting up…" while it runs, "Environment ready (built in 7.8s)" once it is done."""
    setup = results.get("setup") or {}
    if setup.get("status") == SetupStatus.RUNNING:
        return STATUS_SETTING_UP
    if setup.get("status") == SetupStatus.OK:
        if setup.get("cached"):
            return STATUS_SETUP_DONE.format(how=SETUP_CACHED)
        return STATUS_SETUP_DONE.format(how=SETUP_BUILT.format(duration=fmt_duration(setup.get("duration"))))
    return None


def setup_pending(results: dict) -> bool:
    """The run has a setup whose first event has not arrived yet (the rollout's config says so)."""
    sandbox = (results.get("config") or {}).get("sandbox") or {}
    return bool(sandbox.get("setup")) and results.get("setup") is None


def progress_line(results: dict, started: float, now: float | None = None) -> str | None:
    """The status comment's live lines: the setup's, then "Starting the agents…" once setup is
    done, then the running tree's counts. None while nothing is worth an edit yet."""
    if results.get("started_at") is None or setup_pending(results):
        return None
    setup = setup_status(results)
    if setup == STATUS_SETTING_UP:
        return setup
    if results.get("agents"):
        line = _running_line(results, started, now)
    else:
        line = STATUS_STARTING
    return f"{setup}\n{line}" if setup else line


def _running_line(results: dict, started: float, now: float | None) -> str:
    agents = results.get("agents", [])
    running = sum(1 for a in agents if a.get("status") == Status.RUNNING)
    totals = results["totals"]
    return STATUS_RUNNING.format(
        running=count(running, "agent"),
        finished=len(agents) - running,
        depth=totals["max_depth"],
        iterations=count(totals["iterations"], "iteration"),
        elapsed=fmt_duration((now or time.time()) - started),
        cost=fmt_spend_of_cap(results),
    )


def fmt_dollars(usd: float) -> str:
    return f"${usd:.2f}"


def partial_note(results: dict) -> str:
    """Why a delivered change is partial (the cost cap stopped the tree)."""
    cap = cost_cap_of(results)
    return PARTIAL_NOTE.format(cap=fmt_dollars(cap or 0.0), spent=fmt_spend(results.get("totals") or {}))


def status_body(
    run_id: str,
    task: str,
    lines: list[str],
    *,
    prefix: str = "/rlm",
    trace_url: str | None = None,
    final: bool = False,
) -> str:
    """The live status comment: header, task, the current state lines, and a footer while running."""
    quoted = "\n".join(STATUS_TASK.format(task=line) for line in task.strip().splitlines()[:10])
    parts = [STATUS_HEADER.format(run_id=run_id), "", quoted, "", *lines]
    if trace_url:
        parts += ["", STATUS_TRACE.format(url=trace_url)]
    if not final:
        parts += ["", STATUS_FOOTER.format(prefix=prefix)]
    parts += ["", STATUS_VERSION.format(version=VERSION)]
    return "\n".join(parts)


def answer_lines(result: RolloutResult) -> list[str]:
    """The answer, then the report collapsed, for the status comment of a run that answered (the
    status comment is cut to GitHub's limit with a link to the rest: `cut`)."""
    lines = ["", (result.answer or "").strip()]
    report = (getattr(result, "report", None) or "").strip()
    if report:
        lines += ["", ANSWER_REPORT.format(report=report)]
    return [*lines, ""]


def final_totals(results: dict) -> str:
    return totals_line(results)


def patch_comment(run_id: str, patch: str, patch_url: str | None = None) -> str:
    shown = patch if len(patch) <= PATCH_LIMIT else patch[:PATCH_LIMIT]
    fence = "````" if "```" in shown else "```"
    tail = ""
    if len(patch) > PATCH_LIMIT:
        tail = (
            PATCH_TOO_LONG.format(url=patch_url)
            if patch_url
            else PATCH_TOO_LONG_LOCAL.format(name=f"{run_id}.patch")
        )
    return f"{PATCH_COMMENT.format(run_id=run_id)}\n\n{fence}diff\n{shown}\n{fence}{tail}\n"


def cut(text: str, url: str | None, limit: int = BODY_LIMIT) -> str:
    """`text` within GitHub's `limit`, ending with where the rest is when it had to be cut."""
    if len(text) <= limit:
        return text
    marker = CUT_MARKER.format(limit=limit, url=url) if url else CUT_MARKER_LOCAL.format(limit=limit)
    return text[: limit - len(marker)] + marker
