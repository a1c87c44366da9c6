"""`/rlm` commands in comment text.

A command is the first line that starts with the prefix. `/rlm <task>` takes the rest of that line
and every line after it as the task; `help`, `status` and `cancel` are keywords; `review [focus]`
asks for a review (its task is the focus, maybe empty); an unknown flag or an empty task is
`invalid` (answered with the help text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.common.enums import StrEnum

DEFAULT_PREFIX = "/rlm"

HELP_TEXT = """\
**rlm-bot** runs a recursive agent on this repository and opens a pull request with its changes.

| command | what it does |
|---|---|
| `{prefix} <task>` | start a run; every line after the command is part of the task. A question gets its answer here |
| `{prefix} review [focus]` | on a pull request: review its changes and post one review with inline comments (nothing is pushed) |
| `{prefix} status` | show the progress of the run on this issue or pull request |
| `{prefix} cancel` | stop the run on this issue or pull request and all its sub-agents |
| `{prefix} help` | show this message |

Only people with write access to the repository can use these commands."""


class CommandKind(StrEnum):
    RUN = "run"
    REVIEW = "review"  # `review [focus]`: a review on a pull request (a task elsewhere)
    HELP = "help"
    STATUS = "status"
    CANCEL = "cancel"
    INVALID = "invalid"  # an unknown flag or an empty task


KEYWORDS = (CommandKind.HELP, CommandKind.STATUS, CommandKind.CANCEL)
REVIEW_WORD = CommandKind.REVIEW


@dataclass(frozen=True)
class Command:
    kind: CommandKind
    task: str = ""


def help_text(prefix: str = DEFAULT_PREFIX) -> str:
    return HELP_TEXT.format(prefix=prefix)


def parse_command(text: str | None, prefix: str = DEFAULT_PREFIX) -> Command | None:
    """The command in `text`, or None when no line starts with `prefix` (then the comment is
    not for us). Quoted lines (`> /rlm ...`) and code blocks are not commands."""
    if not text:
        return None
    lines = text.replace("\r\n", "\n").split("\n")
    fenced = False
    pattern = re.compile(rf"^{re.escape(prefix)}(?=\s|$)(.*)$")
    for i, raw in enumerate(lines):
        line = raw.strip()
        if line.startswith("```") or line.startswith("~~~"):
            fenced = not fenced
            continue
        if fenced:
            continue
        m = pattern.match(line)
        if not m:
            continue
        first = m.group(1).strip()
        rest = "\n".join(lines[i + 1 :]).strip()
        word = first.split()[0].lower() if first else ""
        if word in KEYWORDS and first.lower() == word:
            return Command(CommandKind(word))
        if word.startswith("-"):
            return Command(CommandKind.INVALID, first)
        if word == REVIEW_WORD:  # `review [focus]`: a review on a pull request (a task elsewhere)
            focus = "\n".join(p for p in (first[len(word) :].strip(), rest) if p).strip()
            return Command(CommandKind.REVIEW, focus)
        task = "\n".join(part for part in (first, rest) if part).strip()
        return Command(CommandKind.RUN, task) if task else Command(CommandKind.INVALID, "")
    return None
