"""Review findings: what agents record with `COMMENT(path, line, body, suggestion=None)`.

The REPL driver keeps an agent's findings and sends them with each block's `result` message; the
host checks them here (the driver runs model-written code, so what it sends is untrusted data),
and the rollout records each one as a `finding` event, so every agent's findings, at any depth,
are in the run's results (`results["findings"]`) in the order they were made.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bot.common.enums import StrEnum

MAX_FINDINGS_PER_BLOCK = 100  # what one code block may record (the driver stops at this too)
MAX_FINDINGS = 500  # what a whole run keeps; more are dropped (the model is told)
MAX_BODY = 8_000  # characters of a finding's text
MAX_SUGGESTION = 8_000  # characters of a suggested replacement
MAX_PATH = 1_000


class RunMode(StrEnum):
    """What a run is for: a change (the patch is delivered) or a review (findings, no patch)."""

    CHANGE = "change"
    REVIEW = "review"


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    body: str
    suggestion: str | None = None
    agent: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding | None:
        """A finding from recorded data (an event, the results), or None when it is not one."""
        return _checked(data, str(data.get("agent") or ""))


def _checked(raw: Any, agent: str) -> Finding | None:
    if not isinstance(raw, dict):
        return None
    path, line, body, suggestion = raw.get("path"), raw.get("line"), raw.get("body"), raw.get("suggestion")
    if not isinstance(path, str) or not isinstance(body, str) or not body.strip():
        return None
    if isinstance(line, bool) or not isinstance(line, int) or line < 1:
        return None
    path = path.strip().removeprefix("./")
    if not path or path.startswith("/") or len(path) > MAX_PATH or ".." in path.split("/"):
        return None
    if suggestion is not None and not isinstance(suggestion, str):
        return None
    return Finding(
        path=path,
        line=line,
        body=body.strip()[:MAX_BODY],
        suggestion=None if suggestion is None else suggestion[:MAX_SUGGESTION],
        agent=agent,
    )


def parse_findings(raw: Any, agent: str) -> list[Finding]:
    """The well-formed findings of one block's `result` message (anything else is dropped)."""
    if not isinstance(raw, list):
        return []
    found = (_checked(item, agent) for item in raw[:MAX_FINDINGS_PER_BLOCK])
    return [f for f in found if f is not None]
