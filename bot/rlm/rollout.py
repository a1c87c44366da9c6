"""The agent tree: limits, deadline, cancellation, concurrency, sub-agents, events, the patch.

Concurrency cannot deadlock: a slot (LLM call or sandbox creation) is held only for the call
itself, never while a parent waits for its children. Every agent inherits one deadline and one
cancellation event; the sandboxes are destroyed in a finally whatever ends the run.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bot.common.text import clean_text

from . import prompts
from .agent import Agent
from .call_pool import CallPool
from .config import Config
from .environment import Environment, SetupFailed, prepare_environment, prompt_note
from .errors import AgentEnded, AgentFailed, LLMError, SandboxError, Submitted
from .findings import MAX_FINDINGS, Finding, RunMode, parse_findings
from .fold import EventKind
from .instructions import RepoFacts, read_trusted_facts
from .limits import Limits
from .llm import CallContext, ModelClient, UsageMeter
from .node import AgentNode
from .patch import PatchError, check_applies, patch_stats
from .prep import SandboxPrep
from .repl.driver import truncate
from .repl.session import POLL, CallRefused, ExecResult
from .repo import PreparedRepo
from .sandbox.base import Sandbox, SandboxProvider
from .status import SetupStatus, Status
from .trace import Trace

REPORT_LIMIT = 60000  # characters of the root's REPORT kept (a PR body holds 65,536)
CHILD_PATCH_TRACE_LIMIT = 200_000  # characters of a sub-agent's diff recorded in the trace
REPORT_SAVED = "report saved ({size} characters)"
REPORT_CUT = "report saved, but cut to {limit} characters (it had {size}): keep it shorter"
FINDINGS_DROPPED = "The run keeps at most {limit} findings: {dropped} of this block's were dropped."
REPORT_ROOT_ONLY = "REPORT is for the root agent only; put your findings in your FINAL answer"


@dataclass
class RolloutResult:
    run_id: str
    status: Status
    answer: str | None
    error: str | None
    patch: str
    results: dict
    results_path: Path | None
    events_path: Path | None
    report: str | None = None  # what the root handed back with REPORT(markdown)
    findings: list[Finding] = field(default_factory=list)  # COMMENT's, from every agent, in order
    mode: RunMode = RunMode.CHANGE

    @property
    def has_changes(self) -> bool:
        return bool(self.patch.strip())


class Rollout:
    def __init__(
        self,
        config: Config,
        model: ModelClient,
        repo: PreparedRepo,
        prompt: str,
        provider_factory: Callable[[str], SandboxProvider],
        trace: Trace,
        cancel: threading.Event | None = None,
        context: str | None = None,
        mode: RunMode = RunMode.CHANGE,
    ):
        self.config = config
        self.mode = RunMode(mode)
        self._findings = 0  # recorded so far (bounded by MAX_FINDINGS)
        self.model = model
        self.repo = repo
        self.prompt = prompt
        self.context = context or ""  # the request's context: the root's REPL variable `context`
        self.report: str | None = None
        self.repo_facts = RepoFacts()
        self._runtime_facts: dict | None = None  # from the first driver that started
        self._facts_untold: set[str] = set()  # agents whose system prompt was written before that
        self._lock = threading.Lock()
        self.trace = trace
        self.run_id = trace.run_id
        self.cancel = cancel or threading.Event()
        self.meter = UsageMeter()
        self.limits = Limits(config.rlm, self.cancel, self.meter)
        self._provider_factory = provider_factory
        self.provider: SandboxProvider | None = None
        self._llm_slots = threading.BoundedSemaphore(config.rlm.max_concurrency)
        self._create_slots = threading.BoundedSemaphore(config.rlm.max_concurrency)
        # A finished child's processes are stopped at once (Agent.close); deleting its files is
        # left to this pool, so the parent does not wait for it.
        self._destroyer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rlm-destroy")
        self._calls = CallPool(config.rlm.max_concurrency, name="rlm-llm")
        self.root: AgentNode | None = None
        self.environment: Environment | None = None  # what setup produced, if anything

    # ------------------------------------------------------------------ the run

    def run(self) -> RolloutResult:
        self.limits.start()
        cfg = self.config
        self.trace.emit(
            EventKind.ROLLOUT_STARTED,
            run_id=self.run_id,
            repo=self.repo.source,
            commit=self.repo.commit,
            branch=self.repo.branch,
            prompt=self.prompt,
            model=cfg.model.name,
            sandbox=cfg.sandbox.backend,
            config=cfg.model_dump(mode="json"),
            mode=self.mode.value,
        )
        self.root = AgentNode(id="root", task=self.prompt, depth=0)
        status, error, patch, stats = Status.ERROR, None, "", None
        self.repo_facts = read_trusted_facts(self.repo)
        try:
            self.provider = self._provider_factory(self.run_id)
            # Before any model call; the tree's time limit starts once the environment is ready.
            self.environment = prepare_environment(cfg, self.repo, self.provider, self.trace, self.cancel)
            self.limits.start()
            if not self.limits.reserve_sandbox():
                raise AgentFailed("max_sandboxes leaves no sandbox for the root agent")
            sandbox = self._run_agent(self.root, keep_sandbox=True)
            status, error = self.root.status, self.root.error
            if sandbox is not None and self.mode is RunMode.REVIEW:
                stats = patch_stats("").as_dict()  # a review is read-only: scratch edits are not kept
            elif sandbox is not None:
                patch = sandbox.diff()
                check_applies(self.repo.cache, self.repo.commit, patch)
                stats = patch_stats(patch).as_dict()
        except SetupFailed as e:
            status, error = (Status.CANCELLED if e.status is SetupStatus.CANCELLED else Status.ERROR), str(e)
        except (SandboxError, PatchError, AgentEnded) as e:
            status, error = getattr(e, "status", Status.ERROR), str(e)
        finally:
            self._calls.close()
            self._destroyer.shutdown(wait=True)
            if self.provider is not None:
                self.provider.close()
            if status == Status.COMPLETED and stats is None:
                stats = patch_stats("").as_dict()
            self.trace.emit(
                EventKind.ROLLOUT_FINISHED,
                status=status,
                error=error,
                answer=self.root.answer,
                patch=stats,
                report=self.report,
            )
            self.trace.write_results()
            self.trace.close()
        redact = self.trace.redactor.redact
        answer = clean_text(redact(self.root.answer)) if self.root.answer is not None else None
        error = clean_text(redact(error)) if error else None
        report = clean_text(redact(self.report)) if self.report is not None else None
        snapshot = self.trace.snapshot()
        findings = [f for f in map(Finding.from_dict, snapshot.get("findings") or []) if f is not None]
        return RolloutResult(
            self.run_id,
            status,
            answer,
            error,
            patch,
            snapshot,
            self.trace.results_path,
            self.trace.events_path,
            report=report,
            findings=findings,
            mode=self.mode,
        )

    def _run_agent(self, node: AgentNode, keep_sandbox: bool = False) -> Sandbox | None:
        """Run one agent to its end; records the ending. Returns the sandbox if kept."""
        self._started(node)
        prep = SandboxPrep(
            create=lambda: self._create_sandbox(node),
            init=lambda sandbox: {
                "task": node.task,
                "root": node.depth == 0,
                "context": self.context if node.depth == 0 else "",
                "output_limit": self.config.rlm.output_truncation_limit,
                "limits": sandbox.init_limits(),
                "packages": [list(p) for p in self.repo_facts.packages],
            },
            check_alive=self.limits.check_alive,
            on_created=lambda sandbox, seconds: self.trace.emit(
                EventKind.SANDBOX_CREATED, agent=node.id, sandbox=sandbox.id, duration=round(seconds, 4)
            ),
        )
        agent = Agent(self, node, prep, self._system_prompt(node), self.context if node.depth == 0 else None)
        try:
            agent.run()
        except Submitted as s:
            node.status, node.answer = s.status, s.answer
        except AgentEnded as e:
            node.status, node.error = e.status, str(e)
        except (SandboxError, LLMError) as e:
            node.status, node.error = Status.ERROR, str(e)
        finally:
            agent.close()
            if node.status == Status.RUNNING:  # an unexpected exception is on its way up
                node.status, node.error = Status.ERROR, "internal error"
            sandbox = prep.settle()
            if prep.failed:
                self.limits.release_sandbox()  # a failed creation does not consume budget
            if sandbox is not None and not keep_sandbox:
                node.patch = self._child_patch(node, sandbox)
            self._finished(node)
            if sandbox is not None and not keep_sandbox:
                self._destroyer.submit(sandbox.destroy)
        return sandbox

    def _system_prompt(self, node: AgentNode) -> str:
        rlm = self.config.rlm
        facts = self.facts(node)
        if facts.python is None:  # no driver has reported yet: the agent hears it with its first results
            with self._lock:
                self._facts_untold.add(node.id)
        environment = " ".join(filter(None, [prompt_note(self.environment), self.provider.prompt_note]))
        return prompts.system_prompt(
            node.depth,
            rlm.max_depth,
            self.repo.commit,
            self._root_goal(),
            rlm.result_truncation_limit,
            facts=facts,
            instructions=self.repo_facts.instructions_for(node.task),
            context=self.context if node.depth == 0 else None,
            environment=environment,
            mode=self.mode,
        )

    def _create_sandbox(self, node: AgentNode) -> Sandbox:
        self._acquire(self._create_slots)
        try:
            self.limits.check_alive()
            return self.provider.create(node.id)
        except AgentEnded as e:
            raise SandboxError(str(e)) from None
        finally:
            self._create_slots.release()

    def _started(self, node: AgentNode) -> None:
        self.trace.emit(
            EventKind.AGENT_STARTED,
            agent=node.id,
            parent=node.parent.id if node.parent else None,
            depth=node.depth,
            parent_iteration=node.parent_iteration,
            index=node.index,
            task=node.task,
        )

    def _finished(self, node: AgentNode) -> None:
        extra = {}
        if node.depth > 0:
            shown = (
                node.patch
                if len(node.patch) <= CHILD_PATCH_TRACE_LIMIT
                else node.patch[:CHILD_PATCH_TRACE_LIMIT]
            )
            extra = {"patch": shown, "patch_stats": patch_stats(node.patch).as_dict() if node.patch else None}
        self.trace.emit(
            EventKind.AGENT_FINISHED,
            agent=node.id,
            status=node.status,
            result=node.answer,
            error=node.error,
            **extra,
        )

    def _child_patch(self, node: AgentNode, sandbox: Sandbox) -> str:
        """What a finished sub-agent changed, taken by the host from its checkout (new files
        included) before the sandbox goes; handed to its parent with the answer."""
        try:
            return sandbox.diff()
        except (SandboxError, PatchError, OSError, subprocess.SubprocessError) as e:
            node.patch_error = f"its changes could not be read: {e}"
            return ""

    # ------------------------------------------------------------------ what agents are told

    def facts(self, node: AgentNode) -> prompts.SandboxFacts:
        """The sandbox facts for an agent's prompt (runtime ones once a driver has reported them)."""
        cfg = self.config.rlm
        runtime = self._runtime_facts or {}
        return prompts.SandboxFacts(
            exec_timeout=cfg.exec_timeout,
            output_limit=cfg.output_truncation_limit,
            max_sandboxes=cfg.max_sandboxes,
            can_delegate=node.depth < cfg.max_depth,
            python=runtime.get("python"),
            executable=runtime.get("executable"),
            tools=tuple(runtime.get("tools") or ()),
            modules=tuple(runtime.get("modules") or ()),
            path_python=runtime.get("path_python"),
            checkout=runtime.get("checkout"),
            packages=tuple(p for p in runtime.get("packages") or () if isinstance(p, dict)),
        )

    def _root_goal(self) -> str:
        """What sub-agents are told of the root's goal: its task, and the request's first line (a
        bare command such as "fix this" says little without it)."""
        title = next((line.strip() for line in self.context.splitlines() if line.strip()), "")
        return f"{self.prompt}\n(The request: {title[:300]})" if title else self.prompt

    def repl_ready(self, node: AgentNode, ready: dict | None) -> str | None:
        facts = (ready or {}).get("facts")
        with self._lock:
            if self._runtime_facts is None and isinstance(facts, dict):
                self._runtime_facts = facts
            untold = node.id in self._facts_untold and self._runtime_facts is not None
            self._facts_untold.discard(node.id)
        return prompts.runtime_facts_note(self.facts(node)) if untold else None

    # ------------------------------------------------------------------ services for agents

    def _acquire(self, slot: threading.BoundedSemaphore) -> None:
        while not slot.acquire(timeout=POLL):
            self.limits.check_alive()

    def check_agent(self, node: AgentNode) -> None:
        self.limits.check_agent(node)

    def budget(self, node: AgentNode, iteration: int) -> prompts.Budget:
        return self.limits.budget(node, iteration)

    def _complete(self, messages: list[dict], ctx: CallContext):
        """One model call on the bounded call pool, waited for while honouring the deadline and
        cancellation (an abandoned call finishes in the background; its result is dropped)."""
        self._acquire(self._llm_slots)
        try:
            call = lambda: self.model.complete(messages, ctx, self.limits.deadline)  # noqa: E731
            completion = self._calls.wait(call, self.limits.check_alive, POLL)
        finally:
            self._llm_slots.release()
        self.meter.record(completion.usage)
        return completion

    def query_model(self, node: AgentNode, iteration: int, messages: list[dict]) -> str:
        try:
            completion = self._complete(messages, CallContext(task=node.task, agent_id=node.id))
        except LLMError as e:
            raise AgentFailed(str(e)) from None
        self.trace.emit(
            EventKind.LLM_CALL,
            agent=node.id,
            iteration=iteration,
            prompt=messages[-1]["content"],
            response=completion.text,
            usage=completion.usage.as_dict(),
            duration=round(completion.duration, 4),
            attempts=completion.attempts,
            timeouts=completion.timeouts,
        )
        return completion.text

    def execute(self, agent: Agent, iteration: int, index: int, code: str) -> ExecResult:
        node = agent.node
        timeout = min(self.config.rlm.exec_timeout, max(1.0, self.limits.seconds_left()))
        result = agent.repl().execute(
            code,
            timeout,
            lambda fn, args: self._on_call(node, iteration, fn, args),
            self.limits.check_alive,
            label=agent.blocks_run,
        )
        self.trace.emit(
            EventKind.CODE_EXECUTED,
            agent=node.id,
            iteration=iteration,
            block=index,
            code=code,
            **result.as_dict(),
        )
        self._record_findings(node, iteration, result)
        return result

    def _record_findings(self, node: AgentNode, iteration: int, result: ExecResult) -> None:
        """Each checked finding of the block becomes a `finding` event (so it is in the results,
        whichever agent made it); past MAX_FINDINGS the block's output says they were dropped."""
        found = parse_findings(result.findings, node.id)
        with self._lock:
            room = max(0, MAX_FINDINGS - self._findings)
            kept, self._findings = found[:room], self._findings + min(room, len(found))
        for finding in kept:
            self.trace.emit(EventKind.FINDING.value, iteration=iteration, **finding.as_dict())
        if len(kept) < len(found):
            result.stderr += "\n" + FINDINGS_DROPPED.format(
                limit=MAX_FINDINGS, dropped=len(found) - len(kept)
            )

    def _on_call(self, node: AgentNode, iteration: int, fn: str, args: dict):
        if fn == "rlm_query":
            return self.spawn(node, iteration, [str(args.get("task", ""))])[0]
        if fn == "rlm_query_batched":
            tasks = args.get("tasks")
            if not isinstance(tasks, list):
                raise CallRefused("rlm_query_batched takes a list of task strings")
            return self.spawn(node, iteration, [str(t) for t in tasks])
        if fn == "llm_query":
            return self._llm_query(node, str(args.get("prompt", "")))
        if fn == "report":
            return self._save_report(node, str(args.get("markdown", "")))
        raise CallRefused(f"unknown function {fn!r}")

    def _llm_query(self, node: AgentNode, prompt: str) -> str:
        refusal = self.limits.refuse_llm_query()
        if refusal:
            return "Error: " + refusal
        try:
            completion = self._complete(
                [{"role": "user", "content": prompt}],
                CallContext(task=prompt, agent_id=f"{node.id}:llm_query"),
            )
        except LLMError as e:
            return f"Error: llm_query failed: {e}"
        self.trace.emit(
            EventKind.LLM_QUERY,
            agent=node.id,
            prompt=prompt,
            response=completion.text,
            usage=completion.usage.as_dict(),
            duration=round(completion.duration, 4),
        )
        return completion.text

    def _save_report(self, node: AgentNode, markdown: str) -> str:
        if node.depth != 0:
            raise CallRefused(REPORT_ROOT_ONLY)
        self.report = markdown[:REPORT_LIMIT]
        self.trace.emit(EventKind.REPORT, agent=node.id, size=len(markdown))
        if len(markdown) > REPORT_LIMIT:
            return REPORT_CUT.format(limit=REPORT_LIMIT, size=len(markdown))
        return REPORT_SAVED.format(size=len(markdown))

    # ------------------------------------------------------------------ sub-agents

    def spawn(self, parent: AgentNode, iteration: int, tasks: list[str]) -> list:
        refusal = self.limits.refuse_children(parent)
        if refusal:
            return ["Error: " + refusal] * len(tasks)
        answers: list[str | dict | None] = [None] * len(tasks)
        nodes: list[tuple[int, AgentNode]] = []
        for i, task in enumerate(tasks):
            if not self.limits.reserve_sandbox():
                answers[i] = "Error: " + self.limits.sandboxes_exhausted()
                continue
            node = AgentNode(
                id=parent.next_child_id(),
                task=task,
                depth=parent.depth + 1,
                parent=parent,
                parent_iteration=iteration,
                index=i,
            )
            parent.children.append(node)
            self.trace.emit(
                EventKind.CHILD_SPAWNED,
                agent=parent.id,
                child=node.id,
                iteration=iteration,
                index=i,
                task=task,
            )
            nodes.append((i, node))
        if len(nodes) == 1:
            self._run_agent(nodes[0][1])
        elif nodes:
            with ThreadPoolExecutor(max_workers=len(nodes), thread_name_prefix=f"rlm-{parent.id}") as pool:
                list(pool.map(lambda item: self._run_agent(item[1]), nodes))
        for i, node in nodes:
            answers[i] = self._child_answer(node)
        return [a or "" for a in answers]

    def _child_answer(self, node: AgentNode) -> dict:
        """The answer (truncated, with its mark), the sub-agent's diff and its id; the driver
        turns this into a str that carries `.patch`."""
        limit = self.config.rlm.result_truncation_limit
        if node.status == Status.COMPLETED and node.answer is not None:
            answer, truncated = truncate(node.answer, limit), len(node.answer) > limit
        else:
            answer, truncated = (
                f"Error: sub-agent {node.id} ended without an answer ({node.status}): {node.error}",
                False,
            )
        if node.patch_error:
            answer += f"\n(Note: {node.patch_error})"
        return {"answer": answer, "patch": node.patch, "truncated": truncated, "agent": node.id}
