"""The bubblewrap command line of a local sandbox, and the minimal /etc it sees.

`bwrap_argv(BwrapOptions(...), command)` is the one place the sandbox's view of the machine is
decided, so other features (a shared read-only environment, a setup sandbox with network) extend
it by adding options rather than editing a list.

What holds, whoever starts it (root included):
- a new user namespace in which the agent is an unprivileged user (`SANDBOX_UID`), with every
  capability dropped (`--cap-drop ALL`), no new privileges (bwrap always sets NO_NEW_PRIVS) and no
  further user namespaces (`--disable-userns`), so no mount can be made or remounted writable;
- the host's program directories, the interpreter and the repository cache read-only; the
  checkout writable; `/tmp` and `/dev/shm` size-limited tmpfs; `/`, `/dev` and `/proc/sys`
  read-only; a generated `/etc` (no shadow, sudoers or keys);
- no network, its own PID/IPC/UTS namespaces, an empty environment but for what is set here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

SANDBOX_UID = 1000
SANDBOX_GID = 1000
SANDBOX_USER = "rlm"
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Copied or linked from the host's /etc: what dynamic linking, locales and tools need to start.
ETC_KEEP = (
    "ld.so.cache",
    "ld.so.conf",
    "localtime",
    "mime.types",
    "protocols",
    "services",
    "os-release",
    "debian_version",
)
# Bound read-only from the host's /etc: public data only (never /etc/ssl/private: the sandbox's
# uid maps to the host's, so as root a 0600 key there would be readable).
ETC_BIND = ("alternatives", "ssl/certs", "ca-certificates")


@dataclass
class BwrapOptions:
    """Everything a sandbox's bwrap command line depends on."""

    workdir: str  # the writable checkout, also the working directory
    etc_dir: Path  # a generated /etc (see `write_etc`)
    ro_binds: list[tuple[str, str]] = field(default_factory=list)  # (host path, sandbox path)
    rw_binds: list[tuple[str, str]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # on top of the base environment
    path_prefix: list[str] = field(default_factory=list)  # directories put first on PATH
    tmp_bytes: int | None = None  # size of /tmp; None = tmpfs default (half the RAM)
    network: bool = (
        False  # share the network namespace bwrap starts in (setup: its own, see setup_network.py)
    )
    resolv_conf: str | None = None  # with the network: the /etc/resolv.conf to bind (default the host's)
    user_namespace: bool = True  # False only where bwrap is setuid and cannot make one (non-root)


def _try(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@lru_cache(maxsize=1)
def user_namespaces() -> bool | None:
    """None: bwrap cannot run here (containers often forbid it). True: it runs with its own user
    namespace. False: only without one (a setuid bwrap on a host that forbids user namespaces:
    bwrap then drops to the calling user itself)."""
    exe = shutil.which("bwrap")
    if not exe:
        return None
    base = [exe, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "--cap-drop", "ALL"]
    if _try([*base, "--unshare-user", "--disable-userns", "true"]):
        return True
    if os.getuid() != 0 and _try([*base, "true"]):
        return False
    return None


def bwrap_works() -> bool:
    """bwrap is installed and can create its namespaces here."""
    return user_namespaces() is not None


def python_exe() -> str:
    """The base interpreter: the driver needs only the standard library, not our venv."""
    base = Path(sys.base_prefix)
    for name in (f"python{sys.version_info.major}.{sys.version_info.minor}", "python3"):
        exe = base / "bin" / name
        if exe.exists():
            return str(exe)
    return os.path.realpath(sys.executable)


def write_etc(dest: Path) -> Path:
    """A minimal /etc for sandboxes in `dest`: the sandbox user and group, localhost, name service
    from files, and the host's linker cache and alternatives. No shadow, sudoers, ssh or keys."""
    dest.mkdir(mode=0o755, exist_ok=True)
    files = {
        "passwd": f"root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
        f"{SANDBOX_USER}:x:{SANDBOX_UID}:{SANDBOX_GID}:rlm sandbox:/tmp:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        "group": f"root:x:0:\n{SANDBOX_USER}:x:{SANDBOX_GID}:\nnogroup:x:65534:\n",
        "hosts": "127.0.0.1 localhost\n::1 localhost\n",
        "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
        "hostname": "sandbox\n",
        "resolv.conf": "",  # the host's is bound here only for a sandbox with network
    }
    for name, text in files.items():
        (dest / name).write_text(text)
        os.chmod(dest / name, 0o644)
    for name in ETC_KEEP:
        src = Path("/etc") / name
        if os.path.lexists(dest / name) or not os.path.lexists(src):
            continue
        if src.is_symlink():
            os.symlink(os.readlink(src), dest / name)
        elif src.is_file():
            shutil.copyfile(src, dest / name)
            os.chmod(dest / name, 0o644)
    for name in ETC_BIND:  # mount points for bwrap_argv
        if (Path("/etc") / name).is_dir():
            (dest / name).mkdir(mode=0o755, parents=True, exist_ok=True)
    return dest


def bwrap_argv(opts: BwrapOptions, command: list[str]) -> list[str]:
    argv = ["bwrap", "--die-with-parent", "--new-session", "--clearenv", "--unshare-all"]
    if opts.network:
        argv.append("--share-net")
    if opts.user_namespace:
        argv += ["--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID), "--disable-userns"]
    argv += ["--cap-drop", "ALL"]
    for top in SYSTEM_DIRS:
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    prefix = os.path.realpath(sys.base_prefix)
    if not prefix.startswith("/usr/"):
        argv += ["--ro-bind", prefix, prefix]
    argv += ["--ro-bind", str(opts.etc_dir), "/etc"]
    if opts.network and opts.resolv_conf:
        argv += ["--ro-bind", opts.resolv_conf, "/etc/resolv.conf"]
    elif opts.network and os.path.exists("/etc/resolv.conf"):
        argv += ["--ro-bind", os.path.realpath("/etc/resolv.conf"), "/etc/resolv.conf"]
    for name in ETC_BIND:
        if (Path("/etc") / name).is_dir() and (opts.etc_dir / name).is_dir():
            argv += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    # The sandbox's uid maps to the host's: when that is root, a sysctl file (0644, root's) would
    # be writable by its owner, e.g. kernel/core_pattern, which the host kernel runs as root.
    argv += ["--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys", "--dev", "/dev"]
    size = ["--size", str(opts.tmp_bytes)] if opts.tmp_bytes else []
    argv += [*size, "--tmpfs", "/dev/shm", "--remount-ro", "/dev", *size, "--tmpfs", "/tmp"]
    for src, dst in opts.ro_binds:
        argv += ["--ro-bind", src, dst]
    for src, dst in opts.rw_binds:
        argv += ["--bind", src, dst]
    argv += ["--remount-ro", "/"]  # the sandbox's own root: nothing new at the top level
    path = ":".join([*opts.path_prefix, SANDBOX_PATH])
    env = {
        "PATH": path,
        "HOME": "/tmp",
        "USER": SANDBOX_USER,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "GIT_CONFIG_NOSYSTEM": "1",
        **opts.env,
    }
    for key, value in env.items():
        argv += ["--setenv", key, value]
    argv += ["--chdir", opts.workdir, *command]
    return argv
