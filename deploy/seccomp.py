#!/usr/bin/env python3
"""Write a seccomp profile for rlm-bot's workers: your container runtime's default profile, plus the
few system calls bubblewrap needs to build a sandbox.

Docker's and containerd's default profiles allow `unshare`, namespace-creating `clone`, `mount`,
`umount2` and `pivot_root` only to a container holding CAP_SYS_ADMIN. bubblewrap, running as the
image's unprivileged user, needs exactly those to create its user namespace and mount the sandbox's
view inside it; in that namespace they act on the sandbox alone. Everything else the default
profile forbids stays forbidden, so this is narrower than `seccomp=unconfined` (and much narrower
than `--cap-add SYS_ADMIN`). Podman's and CRI-O's default profile already allows these calls.

    curl -fsSLo docker-default.json \
      https://raw.githubusercontent.com/moby/moby/v27.3.1/profiles/seccomp/default.json
    python3 deploy/seccomp.py docker-default.json > rlm-seccomp.json
    docker run --security-opt seccomp=rlm-seccomp.json ...   # Kubernetes: a Localhost profile

Use the default profile of the Docker (or containerd) version you run.
"""

from __future__ import annotations

import json
import sys

# What bubblewrap calls to build a sandbox: clone/unshare with CLONE_NEW* flags (user, mount, PID,
# IPC, UTS, network, cgroup namespaces), mount/umount2 (bind mounts, /proc, tmpfs, remounts
# read-only) and pivot_root (into the new root).
BWRAP_SYSCALLS = ["clone", "unshare", "mount", "umount2", "pivot_root"]


def with_bwrap(profile: dict) -> dict:
    """`profile` with BWRAP_SYSCALLS allowed whatever the container's capabilities; its other rules
    untouched. clone3 keeps the default's answer (ENOSYS without CAP_SYS_ADMIN): callers then fall
    back to clone, which this allows."""
    rules = [dict(rule) for rule in profile.get("syscalls", [])]
    rules.append(
        {
            "names": BWRAP_SYSCALLS,
            "action": "SCMP_ACT_ALLOW",
            "comment": "rlm-bot: bubblewrap builds sandboxes in an unprivileged user namespace",
        }
    )
    return {**profile, "syscalls": rules}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: seccomp.py DEFAULT_PROFILE.json > rlm-seccomp.json", file=sys.stderr)
        return 2
    try:
        with open(argv[1], encoding="utf-8") as f:
            profile = json.load(f)
    except (OSError, ValueError) as e:
        print(f"cannot read the default profile {argv[1]}: {e}", file=sys.stderr)
        return 1
    if profile.get("defaultAction") not in ("SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS"):
        print(f"{argv[1]} does not look like a default (deny-by-default) seccomp profile", file=sys.stderr)
        return 1
    json.dump(with_bwrap(profile), sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
