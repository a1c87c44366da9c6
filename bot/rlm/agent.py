"""One agent's loop: query the model, run its code blocks in the REPL, until a block calls FINAL.

`step() = execute(query())`. Limits are checked by the rollout in one place (`Limits.check_agent`);
the loop ends only by an `AgentEnded` exception, and the caller records the ending in a finally.
An agent knows its tree only through the small `AgentHost` protocol.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Protocol

from . import prompts
from .errors import Submitted
from .node import AgentNode
from .repl.session import ExecResult, ReplSession

if TYPE_CHECKING:
    from .prep import SandboxPrep

# A fenced block tagged python or py; the closing fence must start a line.
CODE_BLOCK = re.compile(r"```(?:python|py)[ \t]*\r?\n(.*?)(?:^|\n)[ \t]*```", re.S | re.M)


OPENING = re.compile(r"^[ \t]*```(?:python|py)[ \t]*$", re.M)


def extract_code(text: str) -> list[str]:
    return [m.group(1) for m in CODE_BLOCK.finditer(text or "") if m.group(1).strip()]


def unclosed_fence(text: str) -> bool:
    """The reply opens a ```python block that no closing fence ends (e.g. the reply was cut off)."""
    return bool(OPENING.search(CODE_BLOCK.sub("", text or "")))


class AgentHost(Protocol):
    """What an agent needs from the tree it belongs to (the rollout provides it)."""

    def check_agent(self, node: AgentNode) -> None:
        """Raise the AgentEnded that ends this agent now (limits, deadline, cancellation)."""

    def budget(self, node: AgentNode, iteration: int) -> prompts.Budget:
        """What is left, as the model is told before an iteration."""

    def query_model(self, node: AgentNode, iteration: int, messages: list[dict[str, str]]) -> str:
        """One model call for this agent; returns the reply's text."""

    def execute(self, agent: Agent, iteration: int, index: int, code: str) -> ExecResult:
        """Run one code block in the agent's REPL."""

    def repl_ready(self, node: AgentNode, ready: dict | None) -> str | None:
        """The agent's REPL started (`ready`: the driver's message, with its Python and tools).
        Returns a note for the agent's next results message, or None."""


class Agent:
    def __init__(
        self,
        host: AgentHost,
        node: AgentNode,
        prep: SandboxPrep,
        system_prompt: str,
        context: str | None = None,
    ):
        self.host = host
        self.node = node
        self.prep = prep  # the sandbox and REPL, made in the background
        self.context = context  # the root's request context (named in its first message)
        self.session: ReplSession | None = None
        self.messages: list[dict[str, str]] = [{"role": "system", "content": system_prompt}]
        self._note: str | None = None  # said once, before the next results
        self.blocks_run = (
            0  # blocks sent to the REPL so far: `[block N]` in results, `<block N>` in tracebacks
        )

    def repl(self) -> ReplSession:
        if self.session is None:
            self.session = self.prep.wait()
            self._note = self.host.repl_ready(self.node, self.prep.ready)
        return self.session

    def restart_repl(self) -> None:
        if self.session is not None:
            self.session.close()
        self.session = self.prep.start_session()

    def run(self) -> None:
        """Loop until FINAL (raises Submitted) or a limit/failure (raises another AgentEnded)."""
        self.messages.append(
            {"role": "user", "content": prompts.first_message(self.node.task, self._budget(1), self.context)}
        )
        while True:
            self.host.check_agent(self.node)
            self.node.iterations += 1
            self.step(self.node.iterations)

    def step(self, n: int) -> None:
        text = self.host.query_model(self.node, n, self.messages)
        self.messages.append({"role": "assistant", "content": text})
        blocks = extract_code(text)
        if not blocks:
            said = prompts.UNCLOSED_FENCE_MESSAGE if unclosed_fence(text) else prompts.NO_CODE_MESSAGE
            self.messages.append(
                {"role": "user", "content": said + "\n\n" + prompts.budget_text(self._budget(n + 1))}
            )
            return
        self.repl()
        outputs = []
        for i, code in enumerate(blocks):
            self.blocks_run += 1
            result = self.host.execute(self, n, i, code)
            outputs.append({**result.as_dict(), "number": self.blocks_run})
            if result.repl_lost:
                self.restart_repl()
            if result.final is not None:
                raise Submitted(result.final)
        message = prompts.results_message(outputs, self._budget(n + 1))
        if self._note:
            message, self._note = self._note + "\n\n" + message, None
        self.messages.append({"role": "user", "content": message})

    def _budget(self, iteration: int) -> prompts.Budget:
        return self.host.budget(self.node, iteration)

    def close(self) -> None:
        """Stop the REPL (and every process the agent started in it)."""
        self.prep.settle()
        for session in {id(s): s for s in (self.session, self.prep.session) if s is not None}.values():
            session.close()
