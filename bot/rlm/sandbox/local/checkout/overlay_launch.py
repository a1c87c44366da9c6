"""Mount one agent's copy-on-write view, then exec the sandbox command (standard library only).

    python -I -S overlay_launch.py LOWER UPPER WORK TARGET OPTIONS -- COMMAND...

In a new mount namespace (and, when not privileged, a new user namespace mapping only the caller's
own uid and gid), mount an overlay on TARGET: LOWER is the shared read-only checkout, UPPER and
WORK the agent's own directories. Then chdir to TARGET and exec COMMAND (bwrap, or the driver), which
inherits the mount. The host's namespaces never see the mount: it disappears with the last process
of the sandbox. Exit status 125 with one line on stderr when the mount cannot be made.
"""

from __future__ import annotations

import ctypes
import os
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MOUNT_FAILED = 125


def _fail(what: str, errno: int) -> None:
    sys.stderr.write(f"overlay: {what}: {os.strerror(errno)}\n")
    sys.exit(MOUNT_FAILED)


def _call(result: int, what: str) -> None:
    if result != 0:
        _fail(what, ctypes.get_errno())


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as e:
        _fail(f"writing {path}", e.errno or 1)


def mount_overlay(lower: str, upper: str, work: str, target: str, options: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.getuid(), os.getgid()
    if os.geteuid() == 0:
        _call(libc.unshare(CLONE_NEWNS), "unshare(mount namespace)")
        extra = ""
    else:
        _call(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare(user and mount namespaces)")
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
        extra = ",userxattr"  # a user namespace may not write trusted.* attributes
    _call(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "making mounts private")
    data = f"lowerdir={lower},upperdir={upper},workdir={work}{extra}"
    if options:
        data += "," + options
    _call(
        libc.mount(b"overlay", os.fsencode(target), b"overlay", MS_NOSUID | MS_NODEV, data.encode()), "mount"
    )


def main(argv: list[str]) -> None:
    if len(argv) < 7 or argv[5] != "--":
        sys.stderr.write("usage: overlay_launch.py LOWER UPPER WORK TARGET OPTIONS -- COMMAND...\n")
        sys.exit(2)
    lower, upper, work, target, options = argv[:5]
    command = argv[6:]
    mount_overlay(lower, upper, work, target, options)
    os.chdir(target)
    try:
        os.execvp(command[0], command)
    except OSError as e:
        _fail(f"exec {command[0]}", e.errno or 1)


if __name__ == "__main__":
    main(sys.argv[1:])
