"""Mount one agent's copy-on-write view, then exec the sandbox command (standard library only).

    python -I -S overlay_launch.py [--join PID SIZE] LOWER UPPER WORK TARGET OPTIONS -- COMMAND...
    python -I -S overlay_launch.py --hold

In a new mount namespace (and, when not privileged, a new user namespace mapping only the caller's
own uid and gid), mount an overlay on TARGET: LOWER is the shared read-only checkout, UPPER and
WORK the agent's own directories. Then chdir to TARGET and exec COMMAND (bwrap, or the driver), which
inherits the mount. The host's namespaces never see the mount: it disappears with the last process
of the sandbox. Exit status 125 with one line on stderr when the mount cannot be made.

`--hold` is the rollout's layer holder: it makes those namespaces once and stays until its stdin
closes (the host is gone or done), unmounting on request (`umount PATH` lines, `ok` or
`error ...` back). `--join PID SIZE` enters the holder's namespaces first and, on an agent's first
launch, mounts there a tmpfs of SIZE bytes on TARGET to hold its UPPER and WORK: the cap on what
the agent can write (a write past it fails with ENOSPC, "No space left on device"). That tmpfs
outlives the sandbox's processes (a restarted driver finds its changes); the host reads the upper
layer through /proc/PID/root. Then the launcher takes a private copy of the mounts as before.
"""

from __future__ import annotations

import ctypes
import os
import sys

CLONE_NEWNS = 0x00020000
MNT_DETACH = 0x2
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


def xattr_namespace(euid: int) -> str:
    """Where the overlay keeps its own attributes (opaque directories): `trusted.` when mounted by
    root, `user.` (the userxattr option) in a user namespace. The other namespace is plain data to
    the mount, so the host's patch builder reads only this one (upper_patch.py)."""
    return "trusted" if euid == 0 else "user"


def _namespaces(libc) -> None:
    """A new mount namespace (and a user namespace mapping only us, when not root), private mounts."""
    uid, gid = os.getuid(), os.getgid()
    if xattr_namespace(os.geteuid()) == "trusted":
        _call(libc.unshare(CLONE_NEWNS), "unshare(mount namespace)")
    else:
        _call(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare(user and mount namespaces)")
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
    _call(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "making mounts private")


def _join(libc, pid: str, target: str, size: str) -> None:
    """Enter the holder's namespaces, give TARGET its capped layer there (once), then take a
    private copy of the holder's mounts."""
    kinds = ([] if xattr_namespace(os.geteuid()) == "trusted" else [("user", CLONE_NEWUSER)]) + [
        ("mnt", CLONE_NEWNS)
    ]
    for kind, flag in kinds:
        try:
            fd = os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            _fail(f"the layer holder {pid} is gone ({kind})", e.errno or 1)
        _call(libc.setns(fd, flag), f"setns({kind})")
        os.close(fd)
    if not os.path.ismount(target):
        data = f"size={int(size)},mode=0700".encode()
        _call(libc.mount(b"tmpfs", os.fsencode(target), b"tmpfs", MS_NOSUID | MS_NODEV, data), "mount(layer)")
        for sub in ("upper", "work"):
            os.mkdir(os.path.join(target, sub), 0o755)
    _call(libc.unshare(CLONE_NEWNS), "unshare(mount namespace)")
    _call(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "making mounts private")


def mount_overlay(
    lower: str, upper: str, work: str, target: str, options: str, join: tuple[str, str] | None = None
) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if join:
        _join(libc, join[0], target, join[1])
    else:
        _namespaces(libc)
    # a user namespace may not write trusted.* attributes
    extra = "" if xattr_namespace(os.geteuid()) == "trusted" else ",userxattr"
    data = f"lowerdir={lower},upperdir={upper},workdir={work}{extra}"
    if options:
        data += "," + options
    _call(
        libc.mount(b"overlay", os.fsencode(target), b"overlay", MS_NOSUID | MS_NODEV, data.encode()), "mount"
    )


def hold() -> None:
    """The layer holder: namespaces once, then unmounts on request until stdin closes."""
    libc = ctypes.CDLL(None, use_errno=True)
    _namespaces(libc)
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        verb, _, path = line.rstrip("\n").partition(" ")
        try:
            if verb == "umount":
                if libc.umount2(os.fsencode(path), MNT_DETACH) != 0:
                    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            else:
                raise OSError(22, f"unknown request {verb!r}")
            out.write("ok\n")
        except OSError as e:
            out.write(f"error {e.strerror or e}\n")
        out.flush()


def main(argv: list[str]) -> None:
    if argv == ["--hold"]:
        hold()
        return
    join = None
    if len(argv) > 3 and argv[0] == "--join":
        join, argv = (argv[1], argv[2]), argv[3:]
    if len(argv) < 7 or argv[5] != "--":
        sys.stderr.write(
            "usage: overlay_launch.py [--join PID SIZE] LOWER UPPER WORK TARGET OPTIONS -- COMMAND...\n"
        )
        sys.exit(2)
    lower, upper, work, target, options = argv[:5]
    command = argv[6:]
    mount_overlay(lower, upper, work, target, options, join)
    os.chdir(target)
    try:
        os.execvp(command[0], command)
    except OSError as e:
        _fail(f"exec {command[0]}", e.errno or 1)


if __name__ == "__main__":
    main(sys.argv[1:])
