"""`/rlm review`: the agents' findings as ONE pull request review (`event: COMMENT`).

GitHub accepts an inline comment only on a line of the pull request's diff (RIGHT side: an added
line or a context line of a hunk), and refuses the whole review (422) for one line outside it.
So the findings are checked against the diff's hunks first: duplicates are dropped, a finding on
a line outside the diff goes into the review's body, and a `suggestion` becomes a
```` ```suggestion ```` block GitHub offers as a one-click change. Should GitHub still refuse the
comments (the pull request moved meanwhile), the review is posted with every finding in its body.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.pipeline import OutcomeKind, RunOutcome
from bot.rlm import Finding, summary_markdown

from .api import GitHubAPI, GitHubError

if TYPE_CHECKING:
    from bot.rlm import RolloutResult

log = logging.getLogger(__name__)

REVIEW_TASK = "Review this pull request."
REVIEW_TASK_FOCUS = "Review this pull request. Focus on: {focus}"
REVIEW_NO_SUMMARY = "_The root agent gave no summary._"
REVIEW_OUTSIDE_HEADER = "### Findings outside the diff"
REVIEW_OUTSIDE_NOTE = (
    "GitHub allows inline comments only on lines this pull request changed, so these are here:"
)
REVIEW_OUTSIDE_ITEM = "- `{path}` line {line}: {body}"
REVIEW_NO_FINDINGS = "No findings were recorded on the changed lines."
REVIEW_COUNT = "{inline} inline comment(s), {outside} finding(s) outside the diff."
REVIEW_MORE = "_… and {n} more finding(s); see the trace._"
REVIEW_FALLBACK = "_GitHub refused the inline comments ({error}), so every finding is listed here instead._"
REVIEW_TREE = "<details><summary>🌳 How the agents split the review</summary>\n\n{tree}\n\n</details>"
OUTCOME_REVIEW = "✅ Posted a review: {url} ({inline} inline comment(s), {outside} in its summary)."
OUTCOME_REVIEW_PARTIAL = (
    "⚠️ The review stopped early ({status}); the findings made until then are in {url} "
    "({inline} inline comment(s), {outside} in its summary)."
)
REVIEW_PARTIAL_NOTE = "⚠️ _This review stopped early ({status}): these are the findings made until then._"
OUTCOME_REVIEW_FALLBACK = (
    "⚠️ Posted a review: {url}. GitHub refused its inline comments, so all {outside} finding(s) are "
    "in its summary."
)
COMMENT_LIMIT = 65536  # characters of one review comment, and of the review's body
MAX_INLINE = 60  # inline comments in one review; the rest go into the body
MAX_LISTED = 100  # findings listed in the body

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")


def review_task(focus: str) -> str:
    """The task of a `/rlm review [focus]` run."""
    return REVIEW_TASK_FOCUS.format(focus=focus.strip()) if focus.strip() else REVIEW_TASK


def hunk_lines(patch: str) -> set[int]:
    """The RIGHT-side line numbers a file's `patch` (its diff hunks) shows: added and context lines."""
    lines: set[int] = set()
    new = None
    for row in patch.rstrip("\n").split("\n"):
        m = _HUNK.match(row)
        if m:
            new = int(m.group(1))
            continue
        if new is None or row.startswith("\\"):  # "\ No newline at end of file"
            continue
        if row.startswith("-"):
            continue
        if row.startswith(("+", " ")) or row == "":
            lines.add(new)
            new += 1
    return lines


def diff_lines(files: Iterable[dict]) -> dict[str, set[int]]:
    """path → commentable lines, from the pull request's files (GitHub's `GET …/pulls/N/files`).
    A file without a `patch` (binary, too large) has none."""
    return {f["filename"]: hunk_lines(f.get("patch") or "") for f in files if f.get("filename")}


def fence_for(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    return "`" * max(3, longest + 1)


def comment_body(finding: Finding) -> str:
    body = finding.body.strip()
    if finding.suggestion is not None:
        fence = fence_for(finding.suggestion)
        body += f"\n\n{fence}suggestion\n{finding.suggestion.rstrip(chr(10))}\n{fence}"
    return body[:COMMENT_LIMIT]


def _key(finding: Finding) -> tuple:
    return (finding.path, finding.line, " ".join(finding.body.split()).lower(), finding.suggestion)


def unique(findings: Iterable[Finding]) -> list[Finding]:
    """The findings without repeats (the same text, suggestion and line from two agents), in order."""
    seen: set[tuple] = set()
    kept = []
    for finding in findings:
        if _key(finding) not in seen:
            seen.add(_key(finding))
            kept.append(finding)
    return kept


@dataclass
class ReviewPlan:
    body: str
    comments: list[dict] = field(default_factory=list)  # GitHub's review comment objects
    inline: list[Finding] = field(default_factory=list)
    outside: list[Finding] = field(default_factory=list)


def plan_review(
    findings: Iterable[Finding], files: Iterable[dict], summary: str | None, footer: str = ""
) -> ReviewPlan:
    """The review to post: unique findings on diff lines inline, the rest listed in the body."""
    lines = diff_lines(files)
    inline: list[Finding] = []
    outside: list[Finding] = []
    for finding in unique(findings):
        on_diff = finding.line in lines.get(finding.path, ())
        (inline if on_diff and len(inline) < MAX_INLINE else outside).append(finding)
    comments = [{"path": f.path, "line": f.line, "side": "RIGHT", "body": comment_body(f)} for f in inline]
    return ReviewPlan(review_body(summary, outside, len(inline), footer), comments, inline, outside)


def review_body(
    summary: str | None, outside: list[Finding], inline: int, footer: str = "", note: str = ""
) -> str:
    parts = [(summary or "").strip() or REVIEW_NO_SUMMARY]
    if note:
        parts.append(note)
    if outside:
        listed = [
            REVIEW_OUTSIDE_ITEM.format(path=f.path, line=f.line, body=_indent(comment_body(f)))
            for f in outside[:MAX_LISTED]
        ]
        if len(outside) > MAX_LISTED:
            listed.append(REVIEW_MORE.format(n=len(outside) - MAX_LISTED))
        parts.append("\n".join([REVIEW_OUTSIDE_HEADER, "", REVIEW_OUTSIDE_NOTE, "", *listed]))
    parts.append(
        REVIEW_COUNT.format(inline=inline, outside=len(outside)) if inline or outside else REVIEW_NO_FINDINGS
    )
    tail = f"\n\n{footer.strip()}" if footer.strip() else ""
    body = "\n\n".join(parts)
    if len(body) + len(tail) > COMMENT_LIMIT:
        body = body[: COMMENT_LIMIT - len(tail) - 2] + "…"
    return body + tail


def _indent(text: str) -> str:
    """A multi-line comment inside a list item."""
    return text.replace("\n", "\n  ")


@dataclass
class PostedReview:
    url: str | None
    inline: int
    outside: int
    fell_back: bool = False  # GitHub refused the inline comments; every finding is in the body


def post_review(
    api: GitHubAPI,
    repo: str,
    number: int,
    commit: str,
    plan: ReviewPlan,
    summary: str | None,
    footer: str = "",
) -> PostedReview:
    """Post the review; on a 422 for its comments, post it again with them in the body."""
    try:
        data = api.create_review(repo, number, commit_id=commit, body=plan.body, comments=plan.comments)
        return PostedReview(data.get("html_url"), len(plan.comments), len(plan.outside))
    except GitHubError as e:
        if e.status != 422 or not plan.comments:
            raise
        log.warning("review on %s#%s: GitHub refused the inline comments: %s", repo, number, e)
        every = [*plan.inline, *plan.outside]
        note = REVIEW_FALLBACK.format(error=str(e).rstrip("."))
        body = review_body(summary, every, 0, footer, note=note)
        data = api.create_review(repo, number, commit_id=commit, body=body, comments=[])
        return PostedReview(data.get("html_url"), 0, len(every), fell_back=True)


def review_footer(result: RolloutResult, trace_line: str) -> str:
    """The agent tree (collapsed) and where the full trace is, at the end of the review's body."""
    return f"{REVIEW_TREE.format(tree=summary_markdown(result.results))}\n\n{trace_line}"


def deliver_review(
    api: GitHubAPI,
    repo: str,
    number: int,
    commit: str,
    result: RolloutResult,
    *,
    summary: str | None,
    footer: str = "",
) -> RunOutcome:
    """The review run's findings as one review on the pull request (read-only: nothing is pushed,
    so a fork's pull request gets its review too)."""
    files = api.list_pull_files(repo, number)
    partial = result.status != "completed"
    if partial:
        summary = "\n\n".join(p for p in (REVIEW_PARTIAL_NOTE.format(status=result.status), summary) if p)
    plan = plan_review(result.findings, files, summary, footer)
    posted = post_review(api, repo, number, commit, plan, summary, footer)
    url = posted.url or f"#{number}"
    if partial:
        message = OUTCOME_REVIEW_PARTIAL.format(
            status=result.status, url=url, inline=posted.inline, outside=posted.outside
        )
    elif posted.fell_back:
        message = OUTCOME_REVIEW_FALLBACK.format(url=url, outside=posted.outside)
    else:
        message = OUTCOME_REVIEW.format(url=url, inline=posted.inline, outside=posted.outside)
    return RunOutcome(result.run_id, OutcomeKind.REVIEW, message, result=result, review_url=posted.url)
