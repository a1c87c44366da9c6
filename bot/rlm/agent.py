"""One agent's loop: query the model, run its code blocks in the REPL, until a block calls FINAL.

`step() = execute(query())`. Limits are checked by the rollout in one place (`Limits.check_agent`);
the loop ends only by an `AgentEnded` exception, and the caller records the ending in a finally.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import prompts
from .errors import Submitted
from .repl.session import ReplSession

if TYPE_CHECKING:
    from .prep import SandboxPrep
    from .rollout import Rollout

# A fenced block tagged python or py; the closing fence must start a line.
CODE_BLOCK = re.compile(r"```(?:python|py)[ \t]*\r?\n(.*?)(?:^|\n)[ \t]*```", re.S | re.M)


def extract_code(text: str) -> list[str]:
    return [m.group(1) for m in CODE_BLOCK.finditer(text or "") if m.group(1).strip()]


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
    status: str = "running"
    answer: str | None = None
    error: str | None = None
    patch: str = ""  # a sub-agent's changes, taken by the host when it finished
    patch_error: str | None = None

    def next_child_id(self) -> str:
        return f"{self.id}.{len(self.children) + 1}"


class Agent:
    def __init__(self, rollout: Rollout, node: AgentNode, prep: SandboxPrep):
        self.rollout = rollout
        self.node = node
        self.prep = prep  # the sandbox and REPL, made in the background
        self.session: ReplSession | None = None
        r = rollout
        facts = r.facts(node)
        # The runtime facts (Python, tools) come from the first driver that started; an agent
        # whose prompt was written before that hears them with its first results.
        self.facts_untold = facts.python is None
        self.messages: list[dict[str, str]] = [
            {
                "role": "system",
                "content": prompts.system_prompt(
                    node.depth,
                    r.config.rlm.max_depth,
                    r.repo.commit,
                    r.prompt,
                    r.config.rlm.result_truncation_limit,
                    facts=facts,
                    instructions=r.repo_facts.instructions_for(node.task),
                    context=r.context if node.depth == 0 else None,
                ),
            },
        ]

    def repl(self) -> ReplSession:
        if self.session is None:
            self.session = self.prep.wait()
            self.rollout.note_ready(self.prep.ready)
        return self.session

    def restart_repl(self) -> None:
        if self.session is not None:
            self.session.close()
        self.session = self.prep.start_session()

    def run(self) -> None:
        """Loop until FINAL (raises Submitted) or a limit/failure (raises another AgentEnded)."""
        self.messages.append(
            {
                "role": "user",
                "content": prompts.first_message(
                    self.node.task, self._budget(1), self.rollout.context if self.node.depth == 0 else None
                ),
            }
        )
        while True:
            self.rollout.limits.check_agent(self.node)
            self.node.iterations += 1
            self.step(self.node.iterations)

    def step(self, n: int) -> None:
        text = self.rollout.query_model(self.node, n, self.messages)
        self.messages.append({"role": "assistant", "content": text})
        blocks = extract_code(text)
        if not blocks:
            self.messages.append(
                {
                    "role": "user",
                    "content": prompts.NO_CODE_MESSAGE + "\n\n" + prompts.budget_text(self._budget(n + 1)),
                }
            )
            return
        self.repl()
        outputs = []
        for i, code in enumerate(blocks):
            result = self.rollout.execute(self, n, i, code)
            outputs.append(result.as_dict())
            if result.repl_lost:
                self.restart_repl()
            if result.final is not None:
                raise Submitted(result.final)
        message = prompts.results_message(outputs, self._budget(n + 1))
        if self.facts_untold and self.rollout.facts(self.node).python is not None:
            self.facts_untold = False
            message = prompts.runtime_facts_note(self.rollout.facts(self.node)) + "\n\n" + message
        self.messages.append({"role": "user", "content": message})

    def _budget(self, iteration: int) -> prompts.Budget:
        return self.rollout.limits.budget(self.node, iteration)

    def close(self) -> None:
        """Stop the REPL (and every process the agent started in it)."""
        self.prep.settle()
        for session in {id(s): s for s in (self.session, self.prep.session) if s is not None}.values():
            session.close()
