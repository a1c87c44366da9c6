"""Per-sandbox control groups: a process cap and an aggregate memory cap that hold as root.

cgroup v2 (`/sys/fs/cgroup` with `pids` and `memory` controllers) where the host can write it,
else the v1 `pids` and `memory` hierarchies, else nothing (`available()` is False and the driver
falls back to per-process rlimits). Every sandbox cgroup lives under `rlm-bot/` and is named
`<owner pid>-<owner start time>@<sandbox id>`, so the groups of a process that is gone are found,
emptied and removed: a process inside one of our cgroups is provably one we started.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from pathlib import Path

from ....owned import process_start, same_process

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "rlm-bot"
JOIN_AND_EXEC = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 126; shift; done; shift; exec "$@"'


class CgroupKind(Enum):
    V2 = "v2"
    V1 = "v1"
    NONE = "none"


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _parents(kind: CgroupKind) -> list[Path]:
    if kind is CgroupKind.V2:
        return [CGROUP_ROOT / PARENT]
    if kind is CgroupKind.V1:
        return [CGROUP_ROOT / "pids" / PARENT, CGROUP_ROOT / "memory" / PARENT]
    return []


@lru_cache(maxsize=1)
def detect() -> CgroupKind:
    """Which cgroup hierarchy this process can create sandbox groups in (tried once)."""
    v2 = CGROUP_ROOT / "cgroup.controllers"
    if v2.exists():
        try:
            if {"pids", "memory"} <= set(v2.read_text().split()):
                wanted = "+pids +memory"
                _write(CGROUP_ROOT / "cgroup.subtree_control", wanted)
                (CGROUP_ROOT / PARENT).mkdir(exist_ok=True)
                _write(CGROUP_ROOT / PARENT / "cgroup.subtree_control", wanted)
                return CgroupKind.V2
        except OSError:
            pass
    if (CGROUP_ROOT / "pids" / "cgroup.procs").exists() and (
        CGROUP_ROOT / "memory" / "cgroup.procs"
    ).exists():
        try:
            for parent in _parents(CgroupKind.V1):
                parent.mkdir(exist_ok=True)
            return CgroupKind.V1
        except OSError:
            pass
    return CgroupKind.NONE


def available() -> bool:
    return detect() is not CgroupKind.NONE


@dataclass
class SandboxCgroup:
    """One sandbox's cgroup(s): attach a starting process, report caps hit, kill, remove."""

    kind: CgroupKind
    paths: list[Path]  # v2: one; v1: pids then memory

    def wrap(self, argv: list[str]) -> list[str]:
        """`argv` run from inside the group: a shell writes its pid into each group, then execs
        `argv`, so every process it starts is in the group from its first instruction."""
        procs = [str(path / "cgroup.procs") for path in self.paths]
        return ["/bin/sh", "-c", JOIN_AND_EXEC, "sh", *procs, "--", *argv]

    def _read(self, name: str) -> str:
        for path in self.paths:
            if (path / name).exists():
                try:
                    return (path / name).read_text()
                except OSError:
                    return ""
        return ""

    def memory_exhausted(self) -> bool:
        """True once the kernel killed a process of the group at its memory cap."""
        name = "memory.events" if self.kind is CgroupKind.V2 else "memory.oom_control"
        events = dict(line.split() for line in self._read(name).splitlines() if len(line.split()) == 2)
        return int(events.get("oom_kill", "0")) > 0

    def processes_exhausted(self) -> bool:
        if self.kind is CgroupKind.V2:
            events = dict(line.split() for line in self._read("pids.events").splitlines() if " " in line)
            return int(events.get("max", "0")) > 0
        text = self._read("pids.events").split()
        return len(text) == 2 and text[1] != "0"

    def pids(self) -> list[int]:
        found: set[int] = set()
        for path in self.paths:
            try:
                found.update(int(p) for p in (path / "cgroup.procs").read_text().split())
            except (OSError, ValueError):
                pass
        return sorted(found)

    def kill(self, wait: float = 5.0) -> None:
        """SIGKILL every process in the group until it is empty (a fork bomb races the first
        pass; with the process cap it cannot outrun a few)."""
        end = time.monotonic() + wait
        if self.kind is CgroupKind.V2 and (self.paths[0] / "cgroup.kill").exists():
            try:
                _write(self.paths[0] / "cgroup.kill", "1")
            except OSError:
                pass
        while True:
            pids = self.pids()
            if not pids or time.monotonic() > end:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.02)

    def remove(self) -> None:
        self.kill()
        for path in self.paths:
            for _ in range(50):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def create(name: str, max_processes: int, memory_bytes: int) -> SandboxCgroup | None:
    """A new cgroup with both caps set, or None when cgroups cannot be used here."""
    kind = detect()
    if kind is CgroupKind.NONE:
        return None
    paths = [parent / name for parent in _parents(kind)]
    try:
        for path in paths:
            path.mkdir()
        if kind is CgroupKind.V2:
            _write(paths[0] / "pids.max", str(max_processes))
            _write(paths[0] / "memory.max", str(memory_bytes))
            if (paths[0] / "memory.swap.max").exists():
                _write(paths[0] / "memory.swap.max", "0")
        else:
            _write(paths[0] / "pids.max", str(max_processes))
            _write(paths[1] / "memory.limit_in_bytes", str(memory_bytes))
            if (paths[1] / "memory.memsw.limit_in_bytes").exists():
                _write(paths[1] / "memory.memsw.limit_in_bytes", str(memory_bytes))
    except OSError:
        SandboxCgroup(kind, [p for p in paths if p.exists()]).remove()
        return None
    return SandboxCgroup(kind, paths)


def group_name(sandbox_id: str) -> str:
    """`<pid>-<start>@<sandbox id>`: names the process that owns the group."""
    return f"{os.getpid()}-{process_start(os.getpid())}@{sandbox_id}"


def reap() -> int:
    """Kill and remove the sandbox cgroups whose owning process is gone. Returns how many."""
    kind = detect()
    groups: dict[str, list[Path]] = {}
    for parent in _parents(kind):
        try:
            entries = list(parent.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir() and "@" in entry.name:
                groups.setdefault(entry.name, []).append(entry)
    reaped = 0
    for name, paths in groups.items():
        pid, _, start = name.split("@", 1)[0].partition("-")
        if not (pid.isdigit() and same_process([int(pid), start])):
            SandboxCgroup(kind, paths).remove()
            reaped += 1
    return reaped
