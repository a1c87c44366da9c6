"""Setup's own network: outbound to the internet only, never the host's.

When setup has the network (`sandbox.setup_network`), it does not share the host's network
namespace (where the host's loopback services, its LAN neighbours and a cloud VM's metadata service
at 169.254.169.254 answer). Instead:

1. a helper process holds a new user and network namespace (`unshare --user --map-root-user
   --net`), so no privilege is needed and nothing of the host's network is in it;
2. `slirp4netns --disable-host-loopback` gives that namespace a user-mode TCP/IP stack (the same
   one rootless Podman uses): connections leave as ordinary sockets of this process, and the
   gateway address that would lead to the host's loopback is refused;
3. its routing table refuses the private, shared, link-local (metadata) and reserved ranges and
   every address of the host's own interfaces, so only public addresses are reachable, DNS
   through slirp's resolver (`NAMESERVER`);
4. the setup sandbox (bubblewrap, its own user namespace nested inside, every capability dropped)
   joins that network namespace; it cannot change the routes (they belong to the helper's user
   namespace).

Without `slirp4netns`, `unshare`, `nsenter` or `ip` setup runs with no network at all and
`NO_NETWORK` says so: never with the host's.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
import time

from bot.common.waiting import readable

NAMESERVER = "10.0.2.3"  # slirp4netns's DNS forwarder
TAP = "tap0"
START_TIMEOUT = 10.0
TOOLS = ("unshare", "nsenter", "slirp4netns", "ip")
# Unreachable from setup (besides the host's own addresses): this network, private, carrier-grade
# NAT, link-local (cloud metadata), IETF protocol assignments, benchmarking, multicast, reserved.
BLOCKED = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
)
NO_NETWORK = (
    "rlm-setup: setup runs WITHOUT network: {reason}. Setup never shares the host's network; "
    "install slirp4netns and iproute2 (apt-get install slirp4netns iproute2) to give it its own, "
    "or set sandbox.setup_network: false."
)


class NetworkUnavailable(Exception):
    """Setup's own network could not be made; str() says why."""


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def host_addresses() -> list[str]:
    """The host's own IPv4 addresses and the networks they sit on (e.g. a compose network where
    the database lives), as CIDRs."""
    try:
        out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return []
    found: set[str] = set()
    for line in out.stdout.splitlines():
        parts = line.split()
        if "inet" not in parts:
            continue
        try:
            iface = ipaddress.ip_interface(parts[parts.index("inet") + 1])
        except (ValueError, IndexError):
            continue
        if iface.ip.is_loopback:
            continue
        found.update({f"{iface.ip}/32", str(iface.network)})
    return sorted(found)


class SetupNetwork:
    """A network namespace with outbound access only; `wrap(argv)` runs a command inside it."""

    def __init__(self) -> None:
        missing = missing_tools()
        if missing:
            raise NetworkUnavailable(f"{', '.join(missing)} not found")
        self._helper: subprocess.Popen | None = None
        self._slirp: subprocess.Popen | None = None
        self._exit_w: int | None = None
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        helper = self._helper = subprocess.Popen(
            [
                "unshare",
                "--user",
                "--map-root-user",
                "--net",
                "--",
                "sh",
                "-c",
                "echo ready; read _",  # lives until its stdin closes: close(), or this process dies
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert helper.stdout is not None
        if helper.stdout.readline().strip() != b"ready":
            raise NetworkUnavailable("a user and network namespace cannot be made here (unshare failed)")
        pid = str(helper.pid)
        ready_r, ready_w = os.pipe()
        exit_r, self._exit_w = os.pipe()
        try:
            self._slirp = subprocess.Popen(
                [
                    "slirp4netns",
                    "--configure",
                    "--mtu=65520",
                    "--disable-host-loopback",
                    f"--userns-path=/proc/{pid}/ns/user",
                    f"--ready-fd={ready_w}",
                    f"--exit-fd={exit_r}",
                    pid,
                    TAP,
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(ready_w, exit_r),
                start_new_session=True,
            )
        finally:
            os.close(ready_w)
            os.close(exit_r)
        try:
            ready = _read_byte(ready_r, START_TIMEOUT)
        finally:
            os.close(ready_r)
        if ready != b"1":
            raise NetworkUnavailable("slirp4netns could not attach to the setup's network namespace")
        routes = "".join(f"route add unreachable {cidr}\n" for cidr in (*BLOCKED, *host_addresses()))
        proc = subprocess.run(
            [*self._enter(), "ip", "-batch", "-"],
            input=routes.encode(),
            capture_output=True,
            timeout=START_TIMEOUT,
        )
        if proc.returncode != 0:
            reason = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["ip failed"]
            raise NetworkUnavailable(f"the setup network's routes could not be set ({reason[0]})")

    def _enter(self) -> list[str]:
        assert self._helper is not None
        return ["nsenter", "-t", str(self._helper.pid), "-U", "-n", "--preserve-credentials", "--"]

    def wrap(self, argv: list[str]) -> list[str]:
        """`argv` run inside the network namespace (bwrap then nests its own user namespace)."""
        return [*self._enter(), *argv]

    def close(self) -> None:
        if self._exit_w is not None:
            os.close(self._exit_w)  # slirp4netns ends when its exit fd closes
            self._exit_w = None
        if self._helper is not None and self._helper.stdin is not None:
            self._helper.stdin.close()  # the helper's `read` ends
        for proc in (self._slirp, self._helper):
            if proc is None:
                continue
            if proc.poll() is None:
                try:
                    proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except OSError:
                        pass
                    proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        self._slirp = self._helper = None


def _read_byte(fd: int, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return b""
        if readable(fd, left):
            return os.read(fd, 1)
