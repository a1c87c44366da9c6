"""The Daytona backend's provider: one Daytona sandbox per agent (sandbox.py), the same driver and protocol as local.

Creation: from `sandbox.daytona.image` (with resources) or `.snapshot` (default: Daytona's python
snapshot), ephemeral, network blocked unless an allow-list is set, no environment variables,
labelled for reaping (client.py). Failures the platform may get over (rate limits, quota,
5xx, timeouts) are retried with backoff; what persists becomes a SandboxError sentence.

The repository arrives as a git bundle of the pinned commit made on the host from its cache and
uploaded; the sandbox fetches from that file, so no credential or URL ever enters it.

The patch: git in the sandbox (hooks, fsmonitor and global config off, a throwaway index) writes a
binary diff against the base to a file the host downloads. The host then applies it to the base
commit in ITS cache with a throwaway index and re-generates the diff there, so what the rollout
gets is made by host git from host objects; a diff that does not apply to the real base is refused.
"""

from __future__ import annotations

import logging
import math
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from daytona import (
    CreateSandboxFromImageParams,
    CreateSandboxFromSnapshotParams,
    DaytonaError,
    Resources,
)

from ...config import Config
from ...environment import Environment, SetupSpec
from ...errors import SandboxError
from ...repo import PreparedRepo, bundle_commit
from . import client as dc
from .env import DaytonaEnvironment
from .sandbox import DaytonaSandbox

__all__ = ["DaytonaSandboxProvider"]

log = logging.getLogger(__name__)
LIFETIME_MARGIN = 600  # seconds a sandbox may outlive the rollout's deadline before reaping


class DaytonaSandboxProvider:
    name = "daytona"
    prompt_note = ""  # nothing of the host reaches a Daytona sandbox

    def __init__(
        self,
        config: Config,
        repo: PreparedRepo,
        rollout_id: str,
        client: Any = None,
        api_key: str | None = None,
    ):
        """`api_key`: the Daytona key, read by the front end (DAYTONA_API_KEY or its own input)."""
        self.config = config
        self.settings = config.sandbox.daytona
        self.repo = repo
        self.rollout_id = rollout_id
        self.client = client if client is not None else dc.make_client(self.settings, api_key)
        self._lock = threading.Lock()
        self._bundle_lock = threading.Lock()
        self._bundle: Path | None = None
        self._tmp = Path(tempfile.mkdtemp(prefix="rlm-daytona-"))
        self._sandboxes: dict[str, DaytonaSandbox] = {}
        self._closed = threading.Event()
        limit = self.settings.create_concurrency
        self._create_slots = threading.BoundedSemaphore(limit) if limit else None
        # Creation never outlasts the rollout's own time limit (the rollout started just now).
        setup_time = config.sandbox.setup_timeout if config.sandbox.setup else 0
        self._deadline = time.monotonic() + config.rlm.global_timeout + setup_time
        self.environment: Environment | None = None
        self.env_snapshot: str | None = None
        dc.mark_live(rollout_id, True)

    # ------------------------------------------------------------------ creation

    def lifetime_minutes(self) -> int:
        return math.ceil((self.config.rlm.global_timeout + LIFETIME_MARGIN) / 60)

    def params(
        self, agent_id: str, attempt: str, network: bool = False
    ) -> CreateSandboxFromSnapshotParams | CreateSandboxFromImageParams:
        """`network`: the environment setup's sandbox only, when sandbox.setup_network is on."""
        s = self.settings
        minutes = self.lifetime_minutes()
        labels = {
            dc.LABEL_APP: dc.APP_VALUE,
            dc.LABEL_ROLLOUT: self.rollout_id,
            dc.LABEL_AGENT: agent_id,
            dc.LABEL_OWNER: dc.owner_label(),
            dc.LABEL_EXPIRES: str(int(time.time() + minutes * 60)),
            dc.LABEL_ATTEMPT: attempt,
        }
        fields: dict[str, Any] = {
            "language": "python",
            "labels": labels,
            "env_vars": {},
            "public": False,
            "network_block_all": not s.network_allow_list and not network,
            "network_allow_list": s.network_allow_list or None,
            "auto_stop_interval": s.auto_stop_minutes or minutes,
            "ttl_minutes": minutes,
        }
        if s.ephemeral:
            fields["ephemeral"] = True
        else:
            fields["auto_delete_interval"] = s.auto_delete_minutes
        if self.env_snapshot is not None:  # the setup's result is every agent's starting point
            fields = {k: v for k, v in fields.items() if k in CreateSandboxFromSnapshotParams.model_fields}
            return CreateSandboxFromSnapshotParams(snapshot=self.env_snapshot, **fields)
        cls = CreateSandboxFromImageParams if s.image else CreateSandboxFromSnapshotParams
        fields = {k: v for k, v in fields.items() if k in cls.model_fields}  # older SDKs lack some
        if s.image:
            resources = None
            if s.cpu or s.memory_gb or s.disk_gb:
                resources = Resources(cpu=s.cpu, memory=s.memory_gb, disk=s.disk_gb)
            return CreateSandboxFromImageParams(image=s.image, resources=resources, **fields)
        return CreateSandboxFromSnapshotParams(snapshot=s.snapshot, **fields)

    def create(self, agent_id: str) -> DaytonaSandbox:
        if self._closed.is_set():
            raise SandboxError("the rollout is over; no new sandbox")
        bundle = self.bundle_path()
        remote = self.create_remote(agent_id)
        sandbox = DaytonaSandbox(self, agent_id, remote)
        with self._lock:
            closed = self._closed.is_set()
            if not closed:
                self._sandboxes[sandbox.id] = sandbox
        if closed:
            sandbox.destroy()
            raise SandboxError("the rollout is over; no new sandbox")
        try:
            sandbox.provision(bundle)
        except (DaytonaError, SandboxError) as e:
            sandbox.destroy()
            raise SandboxError(
                f"could not prepare Daytona sandbox {sandbox.id} for {agent_id}: {e}"
            ) from None
        return sandbox

    def setup_environment(self, spec: SetupSpec, cancel: threading.Event) -> Environment:
        """Run the setup once in its own sandbox and snapshot it (env.py)."""
        self.environment, self.env_snapshot = DaytonaEnvironment(self).setup(spec, cancel)
        return self.environment

    def create_remote(self, agent_id: str, network: bool = False) -> Any:
        attempts = 0

        def once() -> Any:
            nonlocal attempts
            attempts += 1
            nonce = uuid.uuid4().hex[:12]
            left = self._deadline - time.monotonic()
            if left <= 1:
                raise SandboxError(f"the rollout's time limit is reached; no sandbox for {agent_id}")
            try:
                with self._create_slots or nullcontext():
                    timeout = min(self.settings.create_timeout, left)
                    return self.client.create(self.params(agent_id, nonce, network), timeout=timeout)
            except DaytonaError as e:
                self._drop_half_created(e, nonce)
                raise

        def sleep(seconds: float) -> None:
            if self._closed.wait(seconds):
                raise SandboxError("the rollout is over; no new sandbox")

        try:
            return dc.with_retries(
                once,
                tries=self.settings.create_retries + 1,
                base=self.settings.retry_backoff,
                describe=f"creating a sandbox for {agent_id}",
                sleep=sleep,
                deadline=lambda wait: wait >= self._deadline - time.monotonic(),
            )
        except DaytonaError as e:
            tries = f" after {attempts} attempts" if attempts > 1 else ""
            raise SandboxError(
                f"Daytona could not create a sandbox for {agent_id}{tries}: {e}. Check the key, the "
                "image/snapshot and your organization's quota (docs/daytona.md)."
            ) from None

    def _drop_half_created(self, e: DaytonaError, nonce: str) -> None:
        """A timed-out or dropped creation may have left a sandbox behind: find it by its label."""
        if dc.retryable(e) and getattr(e, "status_code", None) in (429, 503):
            return  # refused outright: nothing was made
        try:
            for remote in dc.list_labelled(self.client, {dc.LABEL_ATTEMPT: nonce}):
                dc.delete_quietly(remote)
        except DaytonaError as err:
            log.warning("could not look for a half-created sandbox (%s); the reaper will", err)

    def bundle_path(self) -> Path:
        with self._bundle_lock:
            if self._bundle is None:
                try:
                    self._bundle = bundle_commit(self.repo, self._tmp / "repo.bundle")
                except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
                    raise SandboxError(f"could not bundle commit {self.repo.commit[:12]}: {e}") from None
            return self._bundle

    # ------------------------------------------------------------------ cleanup

    def forget(self, sandbox: DaytonaSandbox) -> None:
        with self._lock:
            self._sandboxes.pop(sandbox.id, None)

    def close(self) -> None:
        with self._lock:
            self._closed.set()
            sandboxes = list(self._sandboxes.values())
        if sandboxes:
            with ThreadPoolExecutor(
                max_workers=min(16, len(sandboxes)), thread_name_prefix="daytona-rm"
            ) as pool:
                list(pool.map(lambda s: s.destroy(), sandboxes))
        shutil.rmtree(self._tmp, ignore_errors=True)
        dc.mark_live(self.rollout_id, False)
