"""One agent's place in the tree: id, task, depth, parent, children, and how it ended."""

from __future__ import annotations

from dataclasses import dataclass, field

from .status import Status


@dataclass
class AgentNode:
    id: str
    task: str
    depth: int
    parent: AgentNode | None = None
    parent_iteration: int | None = None
    index: int | None = None
    iterations: int = 0
    children: list[AgentNode] = field(default_factory=list)
    status: Status = Status.RUNNING
    answer: str | None = None
    error: str | None = None
    patch: str = ""  # a sub-agent's changes, taken by the host when it finished
    patch_error: str | None = None

    def next_child_id(self) -> str:
        return f"{self.id}.{len(self.children) + 1}"
