"""The daytona backend's ready environment (see bot/rlm/environment.py): one setup sandbox, one snapshot.

The setup runs once in a Daytona sandbox made like an agent's (same base, same checkout path
`~/.rlm/repo`, no environment variables), with the network open only when `setup_network` is on.
`$RLM_ENV` is `~/.rlm/env`. When the commands succeed, the checkout and the driver are removed,
`$RLM_ENV` is made read-only, and the sandbox's filesystem becomes the snapshot `rlm-env-<key>`
(`Sandbox.create_snapshot`); every agent's sandbox of this and later rollouts starts from it and
checks its own checkout out at the same path, so an editable install resolves to the agent's own
files, and the tree never pays for the setup again. The snapshot's name carries the cache key, so
an existing active snapshot is a cache hit; a small local record keeps its log tail.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Protocol

from daytona import DaytonaError, DaytonaNotFoundError

from ...config import Config, DaytonaSettings
from ...environment import (
    SETUP_CANCELLED,
    SETUP_FAILED,
    SETUP_TIMED_OUT,
    Environment,
    SetupFailed,
    SetupSpec,
    failed_command,
    failure_cause,
    layout,
    python_ok,
    tail,
)
from ...repo import PreparedRepo, bundle_commit
from ...status import SetupStatus
from ..environments import envs_root
from . import client as dc
from .sandbox import DaytonaSandbox

# The files setup created in its checkout (untracked at the commit, ignored ones included: a
# generated version file, in-place builds) move to ~/.rlm/layer, into the snapshot; every agent's
# provision copies them into its checkout, outside its patch (sandbox.py, LAYER_INTO_CHECKOUT).
KEEP_LAYER = (
    "(cd repo && git ls-files --others -z | tar --null --no-recursion -T - -cf -) > layer.tar && "
    "mkdir -p layer && tar -C layer -xf layer.tar && rm -f layer.tar"
)
SNAPSHOT_PREFIX = "rlm-env-"
ACTIVE_WAIT = 600  # seconds for a new snapshot to become usable
NO_SNAPSHOTS = (
    "this Daytona SDK cannot snapshot a sandbox, which the environment setup needs; upgrade it "
    "(pip install -U 'daytona<2') or run without sandbox.setup."
)
SNAPSHOT_FAILED = "Daytona could not snapshot the environment setup's sandbox: {error}"


def snapshot_name(key: str) -> str:
    return SNAPSHOT_PREFIX + key[:24]


class SetupHost(Protocol):
    """What the environment setup needs from the Daytona provider (provider.py implements it)."""

    config: Config
    repo: PreparedRepo
    settings: DaytonaSettings
    client: Any

    def create_remote(self, agent_id: str, network: bool = False) -> Any:
        """A new Daytona sandbox for `agent_id`, network open only when asked."""
        ...

    def bundle_path(self) -> Path:
        """The git bundle of the pinned commit, made once per rollout."""
        ...

    def forget(self, sandbox: DaytonaSandbox) -> None: ...


def base_of(provider: SetupHost) -> str:
    s = provider.settings
    return f"daytona:{s.api_url or dc.API_URL}:{s.image or ''}:{s.snapshot or 'default'}"


def _state(snapshot: Any) -> str:
    state = getattr(snapshot, "state", "active")
    return str(getattr(state, "value", state)).lower()


class DaytonaEnvironment:
    def __init__(self, provider: SetupHost):
        self.provider = provider
        self.client = provider.client

    def _record_path(self, key: str) -> Path:
        return envs_root(self.provider.config.cache_root()) / f"daytona-{key[:32]}.json"

    def setup(self, spec: SetupSpec, cancel: threading.Event) -> tuple[Environment, str]:
        """(the environment, the snapshot every agent starts from)."""
        key = spec.key(base_of(self.provider))
        if not spec.shared:  # this run's alone: a name no other run can compute
            key = hashlib.sha256(f"{key}:{uuid.uuid4().hex}".encode()).hexdigest()
        name = snapshot_name(key)
        if spec.shared and self._usable(name, spec.timeout, cancel):
            record = self._read_record(key)
            return self._environment(key, record, spec, cached=True), name
        record = self._build(spec, name, cancel)
        path = self._record_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
        return self._environment(key, record, spec, cached=False), name

    def _usable(self, name: str, timeout: float, cancel: threading.Event) -> bool:
        """An active snapshot of that name exists (waiting for one another rollout is making)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                state = _state(self.client.snapshot.get(name))
            except DaytonaNotFoundError:
                return False
            except DaytonaError as e:
                raise SetupFailed(SNAPSHOT_FAILED.format(error=e), SetupStatus.FAILED) from None
            if state == "active":
                return True
            if state in ("error", "build_failed") or time.monotonic() > deadline:
                try:
                    self.client.snapshot.delete(name)
                except DaytonaError:
                    pass
                return False
            if cancel.wait(2):
                raise SetupFailed(SETUP_CANCELLED, SetupStatus.CANCELLED)

    def _read_record(self, key: str) -> dict:
        try:
            return json.loads(self._record_path(key).read_text())
        except (OSError, ValueError):  # made on another machine: the usual layout, no log
            return {
                "home": "/home/daytona",
                "duration": 0.0,
                "log_tail": "",
                "python_ok": True,
                "present": ["venv/bin", "bin", "venv/bin/python"],
            }

    def _environment(self, key: str, record: dict, spec: SetupSpec, cached: bool) -> Environment:
        root = f"{record['home']}/.rlm/env"
        present = set(record.get("present", []))
        dirs, python, node = layout(root, present.__contains__, record.get("python_ok", False))
        return Environment(
            key=key,
            path=root,
            path_dirs=dirs,
            python=python,
            node_path=node,
            cached=cached,
            duration=record.get("duration", 0.0),
            log_tail=record.get("log_tail", ""),
            commands=spec.commands,
        )

    def _build(self, spec: SetupSpec, name: str, cancel: threading.Event) -> dict:
        provider = self.provider
        started = time.monotonic()
        remote = provider.create_remote("setup", network=spec.network)
        sandbox = DaytonaSandbox(provider, "setup", remote)
        try:
            if spec.commit and spec.commit != provider.repo.commit:  # a fork's base, not its head
                with tempfile.TemporaryDirectory(prefix="rlm-setup-bundle-") as tmp:
                    bundle = bundle_commit(provider.repo.at(spec.commit), Path(tmp) / "setup.bundle")
                    sandbox.provision(bundle, spec.commit)
            else:
                sandbox.provision(provider.bundle_path())
            env = f"{sandbox._base}/env"
            q = shlex.quote
            prefix = (
                f"mkdir -p {q(env)} && export RLM_ENV={q(env)} && "
                f'export PATH="$RLM_ENV/venv/bin:$RLM_ENV/bin:$PATH" && cd {q(sandbox.workdir)}\n'
            )
            code, log = self._run(remote, prefix + spec.script(), spec.timeout, cancel)
            duration = time.monotonic() - started
            if code != 0:
                raise SetupFailed(
                    SETUP_FAILED.format(
                        code=code,
                        command=failed_command(log),
                        cause=failure_cause(log, spec.network),
                        tail=tail(log) or "(empty)",
                    ),
                    SetupStatus.FAILED,
                    tail(log),
                    duration,
                )
            probe = " ".join(
                f"[ -e {q(env + '/' + p)} ] && echo {q(p)};"
                for p in ("venv/bin", "bin", "venv/bin/python", "node/node_modules")
            )
            present = sandbox._exec(f"{probe} true", "inspecting the environment").split()
            # What agents must not inherit: the setup's checkout, driver, home and scratch files.
            b = q(sandbox._base)
            sandbox._exec(
                f"chmod -R a-w {q(env)}; cd {b} && {KEEP_LAYER} && rm -rf repo home tmp driver.py driver.log",
                "cleaning up after setup",
            )
            self._snapshot(remote, name)
            home = sandbox._base.rsplit("/.rlm", 1)[0]
            return {
                "home": home,
                "duration": duration,
                "log_tail": tail(log),
                "python_ok": python_ok(log),
                "present": present,
            }
        except DaytonaError as e:
            raise SetupFailed(SNAPSHOT_FAILED.format(error=e), SetupStatus.FAILED) from None
        finally:
            sandbox.destroy()

    def _run(self, remote: Any, script: str, timeout: float, cancel: threading.Event) -> tuple[int, str]:
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["response"] = remote.process.exec(
                    f"sh -c {shlex.quote(script)}", timeout=max(1, int(timeout))
                )
            except DaytonaError as e:
                box["error"] = e

        worker = threading.Thread(target=target, daemon=True, name="rlm-daytona-setup")
        worker.start()
        while worker.is_alive():
            if cancel.wait(0.2):
                raise SetupFailed(SETUP_CANCELLED, SetupStatus.CANCELLED)  # deleting the sandbox stops it
        if "error" in box:
            if "timed out" in str(box["error"]).lower() or "timeout" in type(box["error"]).__name__.lower():
                raise SetupFailed(
                    SETUP_TIMED_OUT.format(timeout=timeout, tail="(not available)"), SetupStatus.TIMEOUT
                )
            raise box["error"]
        response = box["response"]
        return response.exit_code, response.result or ""

    def _snapshot(self, remote: Any, name: str) -> None:
        make = getattr(remote, "create_snapshot", None) or getattr(
            remote, "_experimental_create_snapshot", None
        )
        if make is None:
            raise SetupFailed(NO_SNAPSHOTS, SetupStatus.FAILED)
        make(name, timeout=ACTIVE_WAIT)
        deadline = time.monotonic() + ACTIVE_WAIT
        while _state(self.client.snapshot.get(name)) != "active":
            if time.monotonic() > deadline:
                raise SetupFailed(
                    SNAPSHOT_FAILED.format(error=f"{name} did not become active"), SetupStatus.FAILED
                )
            time.sleep(2)
