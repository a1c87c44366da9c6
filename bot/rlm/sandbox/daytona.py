"""The daytona sandbox: one Daytona sandbox per agent, the same driver and protocol as local.

Creation: from `sandbox.daytona.image` (with resources) or `.snapshot` (default: Daytona's python
snapshot), ephemeral, network blocked unless an allow-list is set, no environment variables,
labelled for reaping (daytona_client.py). Failures the platform may get over (rate limits, quota,
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
import shlex
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
    SessionExecuteRequest,
)

from ..config import Config
from ..environment import Environment, SetupSpec
from ..errors import SandboxError
from ..patch import DIFF_FLAGS, PATCH_TOO_LARGE, PatchTooLarge, read_bounded
from ..repl.session import DRIVER_PATH
from ..repo import SAFE_GIT, PreparedRepo, bundle_commit, git, git_env
from . import daytona_client as dc
from .base import DriverSlot, driver_limits
from .daytona_client import reap_orphans
from .daytona_env import DaytonaEnvironment
from .daytona_transport import SessionTransport, driver_command
from .reap import reap_all

__all__ = ["DaytonaSandbox", "DaytonaSandboxProvider", "canonical_patch", "reap_all", "reap_orphans"]

log = logging.getLogger(__name__)
LIFETIME_MARGIN = 600  # seconds a sandbox may outlive the rollout's deadline before reaping
PROVISION_TIMEOUT = 600
# git in the sandbox: no hooks or fsmonitor, and a diff format `git apply` on the host reads.
_SANDBOX_GIT_CONFIG = ("diff.noprefix=false", "diff.mnemonicPrefix=false", "diff.relative=false")
SANDBOX_GIT = shlex.join(["git", *SAFE_GIT, *(arg for kv in _SANDBOX_GIT_CONFIG for arg in ("-c", kv))])


class DaytonaSandboxProvider:
    name = "daytona"

    def __init__(
        self,
        config: Config,
        repo: PreparedRepo,
        rollout_id: str,
        client: Any = None,
        api_key: str | None = None,
    ):
        """`api_key`: the Daytona key when the caller holds it (the Action); else DAYTONA_API_KEY."""
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
        bundle = self._bundle_path()
        remote = self._create_remote(agent_id)
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
        """Run the setup once in its own sandbox and snapshot it (daytona_env.py)."""
        self.environment, self.env_snapshot = DaytonaEnvironment(self).setup(spec, cancel)
        return self.environment

    def _create_remote(self, agent_id: str, network: bool = False) -> Any:
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

    def _bundle_path(self) -> Path:
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


class DaytonaSandbox:
    def __init__(self, provider: DaytonaSandboxProvider, agent_id: str, remote: Any):
        self.provider = provider
        self.agent_id = agent_id
        self.remote = remote
        self.id: str = remote.id
        self.workdir = ""
        self._base = ""
        self._sessions = 0
        self._driver = DriverSlot()

    def _exec(self, script: str, what: str, timeout: int = PROVISION_TIMEOUT) -> str:
        resp = self.remote.process.exec(f"sh -c {shlex.quote(script)}", timeout=timeout)
        if resp.exit_code != 0:
            lines = (resp.result or "").strip().splitlines()
            raise SandboxError(f"{what} failed in the sandbox: {lines[-1][:300] if lines else 'no output'}")
        return resp.result or ""

    def provision(self, bundle: Path, commit: str | None = None) -> None:
        """Upload the bundle and the driver, check the commit (default the run's) out in a fresh
        repository."""
        home = self.remote.get_user_home_dir().rstrip("/")
        self._base = f"{home}/.rlm"
        self.workdir = f"{self._base}/repo"
        base, commit = self._base, commit or self.provider.repo.commit
        self.remote.fs.create_folder(base, "755")
        self.remote.fs.upload_file(str(bundle), f"{base}/repo.bundle")
        self.remote.fs.upload_file(DRIVER_PATH.read_bytes(), f"{base}/driver.py")
        q = shlex.quote
        self._exec(
            f"set -e; mkdir -p {q(base + '/home')} {q(base + '/tmp')}; git init --quiet {q(self.workdir)}; "
            f"cd {q(self.workdir)}; git fetch --quiet --no-tags {q(base + '/repo.bundle')} '+refs/*:refs/rlm-base/*'; "
            f"git -c advice.detachedHead=false checkout --quiet --detach {commit}; "
            "git for-each-ref --format='delete %(refname)' refs/rlm-base | git update-ref --stdin; "
            f"rm -f {q(base + '/repo.bundle')}",
            f"checking out {commit[:12]}",
        )

    # ------------------------------------------------------------------ driver

    def start_driver(self) -> SessionTransport:
        return self._driver.replace(self._spawn)

    def _spawn(self) -> SessionTransport:
        self._sessions += 1
        session_id = f"rlm-driver-{self._sessions}"
        b = self._base
        env = self.provider.environment
        python, variables = "python3", {}
        if env is not None:  # $RLM_ENV is at the same place under every sandbox's home
            root = f"{b}/env"
            variables = {name: value.replace(env.path, root) for name, value in env.variables().items()}
            variables["PATH"] = ":".join(d.replace(env.path, root) for d in env.path_dirs) + ":"
            python = env.python.replace(env.path, root) if env.python else python
        command = driver_command(
            python, f"{b}/driver.py", self.workdir, f"{b}/home", f"{b}/tmp", f"{b}/driver.log", variables
        )
        request = {"command": command, "run_async": True, "suppress_input_echo": True}
        request = {k: v for k, v in request.items() if k in SessionExecuteRequest.model_fields}
        process = self.remote.process
        try:
            process.create_session(session_id)
            resp = process.execute_session_command(session_id, SessionExecuteRequest(**request))
        except DaytonaError as e:
            raise SandboxError(f"could not start the sandbox's REPL: {e}") from None
        return SessionTransport(
            process,
            session_id,
            resp.cmd_id,
            on_kill=lambda: self._end_session(session_id),
            max_message_bytes=self.provider.config.sandbox.max_message_mb * 1024 * 1024,
        )

    def _end_session(self, session_id: str) -> None:
        if self._driver.destroyed:
            return  # deleting the sandbox ends every process in it
        try:
            self.remote.process.delete_session(session_id)
        except DaytonaError as e:
            log.debug("ending session %s of %s: %s", session_id, self.id, e)

    def init_limits(self) -> dict:
        return driver_limits(self.provider.config)

    # ------------------------------------------------------------------ results and cleanup

    def diff(self) -> str:
        base = self.provider.repo.commit
        out = f"{self._base}/tmp/rlm.diff"
        flags = " ".join(["--no-renames", *DIFF_FLAGS])
        env = f"GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 GIT_INDEX_FILE={self._base}/tmp/rlm.index"
        size = self._exec(
            f'set -e; cd {shlex.quote(self.workdir)}; export {env}; rm -f "$GIT_INDEX_FILE"; '
            f"{SANDBOX_GIT} read-tree {base}; {SANDBOX_GIT} add --all -- .; "
            f'{SANDBOX_GIT} diff --cached {flags} {base} > {out}; rm -f "$GIT_INDEX_FILE"; wc -c < {out}',
            "computing the diff",
        )
        limit = self.provider.config.rlm.max_patch_bytes
        if not size.strip().isdigit() or int(size) > limit:  # never downloaded past the cap
            raise PatchTooLarge(PATCH_TOO_LARGE.format(limit=limit))
        try:
            raw = self.remote.fs.download_file(out)
        except DaytonaError as e:
            raise SandboxError(f"could not read the diff back from sandbox {self.id}: {e}") from None
        if len(raw) > limit:
            raise PatchTooLarge(PATCH_TOO_LARGE.format(limit=limit))
        return canonical_patch(self.provider.repo, raw.decode("utf-8", "surrogateescape"), limit)

    def destroy(self) -> None:
        if not self._driver.close():
            return
        dc.delete_quietly(self.remote)
        self.provider.forget(self)


def canonical_patch(repo: PreparedRepo, raw: str, max_bytes: int | None = None) -> str:
    """Apply a diff from a sandbox to the base commit in the host cache (throwaway index) and
    return the diff host git makes of the result. Raises SandboxError if it does not apply."""
    if not raw.strip():
        return ""
    with tempfile.TemporaryDirectory(prefix="rlm-index-") as tmp:
        env = git_env()
        env["GIT_INDEX_FILE"] = str(Path(tmp) / "index")
        (Path(tmp) / "objects").mkdir()
        env["GIT_OBJECT_DIRECTORY"] = str(Path(tmp) / "objects")  # the cache is only read
        env["GIT_ALTERNATE_OBJECT_DIRECTORIES"] = str(repo.cache / "objects")
        git("read-tree", repo.commit, git_dir=repo.cache, env=env)
        proc = git(
            "apply",
            "--cached",
            "--binary",
            "-",
            git_dir=repo.cache,
            env=env,
            input=raw.encode("utf-8", "surrogateescape"),
            check=False,
            timeout=300,
        )
        if proc.returncode != 0:
            reason = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise SandboxError(
                f"the sandbox's diff does not apply to {repo.commit[:12]}: {reason[0] if reason else 'unknown'}"
            )
        cmd = ["git", *SAFE_GIT, f"--git-dir={repo.cache}", "diff", "--cached", *DIFF_FLAGS, repo.commit]
        diff = read_bounded(cmd, env, max_bytes, Path(tmp) / "stderr")
    return diff.decode("utf-8", "surrogateescape")
