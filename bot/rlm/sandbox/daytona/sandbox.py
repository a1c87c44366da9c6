"""One agent's Daytona sandbox: the checkout from an uploaded bundle, the driver in a session
command, the patch written by git in the sandbox and made canonical on the host.

The sandbox gets what it needs from its provider through `SandboxHost` (provider.py implements it).
"""

from __future__ import annotations

import logging
import shlex
import tempfile
from pathlib import Path
from typing import Any, Protocol

from daytona import DaytonaError, SessionExecuteRequest

from ...config import Config
from ...environment import Environment
from ...errors import SandboxError
from ...patch import DIFF_FLAGS, PATCH_TOO_LARGE, PatchTooLarge, read_bounded
from ...repl.session import DRIVER_PATH
from ...repo import SAFE_GIT, PreparedRepo, git, git_env
from ..base import DriverSlot, driver_limits
from . import client as dc
from .transport import SessionTransport, driver_command

log = logging.getLogger(__name__)
PROVISION_TIMEOUT = 600
# git in the sandbox: no hooks or fsmonitor, and a diff format `git apply` on the host reads.
_SANDBOX_GIT_CONFIG = ("diff.noprefix=false", "diff.mnemonicPrefix=false", "diff.relative=false")
SANDBOX_GIT = shlex.join(["git", *SAFE_GIT, *(arg for kv in _SANDBOX_GIT_CONFIG for arg in ("-c", kv))])

# What setup generated in its checkout (daytona/env.py KEEP_LAYER), copied in and kept out of the
# patch by the checkout's own info/exclude.
LAYER_INTO_CHECKOUT = (
    "if [ -d {layer} ]; then cp -R {layer}/. . && mkdir -p .git/info && (cd {layer} && find . -type f -o -type l) "
    "| sed 's|^\\./|/|' >> .git/info/exclude; fi"
)


class SandboxHost(Protocol):
    """What a Daytona sandbox needs from the provider that made it."""

    config: Config
    repo: PreparedRepo
    environment: Environment | None  # what setup built, if anything

    def forget(self, sandbox: DaytonaSandbox) -> None:
        """The sandbox is gone: stop tracking it."""
        ...


class DaytonaSandbox:
    def __init__(self, provider: SandboxHost, agent_id: str, remote: Any):
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
            f"cd {q(self.workdir)}; git fetch --quiet --no-tags {q(base + '/repo.bundle')} '+refs/rlm/*:refs/rlm-base/*' "
            "'+refs/tags/*:refs/tags/*'; "
            f"git -c advice.detachedHead=false checkout --quiet --detach {commit}; "
            "git for-each-ref --format='delete %(refname)' refs/rlm-base | git update-ref --stdin; "
            f"{LAYER_INTO_CHECKOUT.format(layer=q(base + '/layer'))}; "
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
