"""Ways to start a run besides a `/rlm` comment: `.github/rlm.yml`'s `triggers:` section.

    triggers:
      label: rlm        # labelling an issue or pull request `rlm` starts a run on it
      assign: true      # so does assigning it to the App's bot user

The run's task is the issue's title and body; the person who labelled or assigned must have write
access (as for a comment). The file is read from the default branch, like the rest of rlm.yml.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import yaml

TRIGGERS_KEY = "triggers"
TASK_LIMIT = 20_000  # characters of title and body taken as the task (the rest is in `context`)
BAD_TRIGGERS = "`triggers` must be a mapping with `label: <name>` and/or `assign: true`"
BAD_LABEL = "`triggers.label` must be a label's name"
BAD_ASSIGN = "`triggers.assign` must be `true` or `false`"
UNKNOWN_TRIGGER = "`triggers.{key}` is not a trigger (use `label` or `assign`)"
TRIGGER_TASK_EMPTY = "(the issue has no title or description)"
STARTED_BY_LABEL = "Started by @{sender}, who labelled it `{label}`"
STARTED_BY_ASSIGN = "Started by @{sender}, who assigned it to @{bot}"


class TriggerKind(str, enum.Enum):
    LABEL = "label"
    ASSIGN = "assign"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Triggers:
    label: str | None = None
    assign: bool = False

    def starts(self, kind: TriggerKind, value: str, bot_login: str | None) -> bool:
        """Whether this event (a label's name, or the assignee's login) starts a run."""
        if kind is TriggerKind.LABEL:
            return self.label is not None and value.strip().lower() == self.label.strip().lower()
        return self.assign and bot_login is not None and value.lower() == bot_login.lower()


def parse_triggers(text: str | None) -> tuple[Triggers, list[str]]:
    """The `triggers:` of an rlm.yml text (none when absent), and what was wrong with it."""
    try:
        data = yaml.safe_load(text or "")
    except yaml.YAMLError:
        return Triggers(), []  # the config stage already says the file is not YAML
    if not isinstance(data, dict) or data.get(TRIGGERS_KEY) is None:
        return Triggers(), []
    section = data[TRIGGERS_KEY]
    if not isinstance(section, dict):
        return Triggers(), [BAD_TRIGGERS]
    problems = [UNKNOWN_TRIGGER.format(key=k) for k in section if k not in ("label", "assign")]
    label, assign = section.get("label"), section.get("assign", False)
    if label is not None and not (isinstance(label, str) and label.strip()):
        problems.append(BAD_LABEL)
        label = None
    if not isinstance(assign, bool):
        problems.append(BAD_ASSIGN)
        assign = False
    return Triggers(label.strip() if label else None, assign), problems


def trigger_task(title: str | None, body: str | None) -> str:
    """The task of a run started by a label or an assignment: the issue's title and body."""
    text = "\n\n".join(part.strip() for part in (title or "", body or "") if part and part.strip())
    text = text or TRIGGER_TASK_EMPTY
    return text if len(text) <= TASK_LIMIT else text[: TASK_LIMIT - 1] + "…"


def bot_login(app_slug: str) -> str:
    """The login of an App's bot user (what an issue is assigned to)."""
    return f"{app_slug}[bot]"
