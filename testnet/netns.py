"""Linux network namespaces: create, address, redirect and enter them.

Each test network lives in its own namespace, so its routers cannot reach anything but each other
and two networks never share a port. Everything here shells out to ``ip`` and ``nft`` (iproute2,
nftables) except :func:`enter`, which calls ``setns(2)`` directly (Python 3.11 has no os.setns).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from testnet import software

NETNS_DIR = Path("/run/netns")
_CLONE_NEWNET = 0x40000000


class MissingPrerequisite(RuntimeError):
    """The machine cannot run a test network; the message says what is missing and how to fix it."""


def find_i2pd() -> str | None:
    """Debian's i2pd (2.45.1)."""
    return software.find_i2pd_old()


def missing_prerequisites(
    *, i2pd_old: bool = True, i2pd_new: bool = True, java: bool = True
) -> list[str]:
    """What stops us from running a test network here, one human-readable line per problem.

    The flags say which router software the network needs (the default mixed network: all).
    """
    problems = []
    if os.geteuid() != 0:
        problems.append("root privileges (network namespaces need them): run as root or via sudo")
    if i2pd_old and find_i2pd() is None:
        problems.append("i2pd (Debian's 2.45.1): apt-get install i2pd")
    problems += software.missing_software(i2pd_old=False, i2pd_new=i2pd_new, java=java)
    if shutil.which("ip") is None:
        problems.append("the ip command: apt-get install iproute2")
    if shutil.which("nft") is None:
        problems.append("the nft command (link-delay relay): apt-get install nftables")
    if not Path("/proc/self/ns/net").exists():
        problems.append("network namespace support in the kernel (CONFIG_NET_NS)")
    return problems


def check_prerequisites(*, i2pd_old: bool = True, i2pd_new: bool = True, java: bool = True) -> None:
    """Raise :class:`MissingPrerequisite` with ONE message listing everything that is missing."""
    problems = missing_prerequisites(i2pd_old=i2pd_old, i2pd_new=i2pd_new, java=java)
    if problems:
        raise MissingPrerequisite(
            "the private I2P test network cannot run here; missing: "
            + "; ".join(problems)
            + ". ./scripts/install-deps installs the packages (as root)."
        )


def _run(*args: str, input: str | None = None) -> None:
    proc = subprocess.run(args, input=input, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.strip() or proc.returncode}")


def exists(netns: str) -> bool:
    return (NETNS_DIR / netns).exists()


def create(netns: str, addresses: Iterable[str], extra_ipv4: Iterable[str] = ()) -> None:
    """Create ``netns`` with loopback up and each IPv6 ``address`` as a /128 on ``lo``.

    /128 and not the Yggdrasil /7: a /7 route would make i2pd's built-in Yggdrasil reseed hosts
    look reachable. ``extra_ipv4`` (``a.b.c.d/32``) go on ``lo`` too (Java's "connected" test).
    """
    _run("ip", "netns", "add", netns)
    try:
        _run("ip", "-n", netns, "link", "set", "lo", "up")
        for address in addresses:
            _run("ip", "-n", netns, "-6", "addr", "add", f"{address}/128", "dev", "lo")
        for address in extra_ipv4:
            _run("ip", "-n", netns, "addr", "add", address, "dev", "lo")
    except Exception:
        delete(netns)
        raise


def delete(netns: str) -> None:
    """Remove the namespace (a no-op when it does not exist)."""
    if exists(netns):
        _run("ip", "netns", "del", netns)


@dataclass(frozen=True)
class Redirect:
    """Connections to ``address``:``port`` go to the relay on ``[::1]:relay_port`` instead."""

    address: str
    port: int
    relay_port: int


#: The relay marks its own outgoing sockets with this so they are not redirected again.
RELAY_MARK = 0x1D2


def render_redirect_rules(redirects: Iterable[Redirect]) -> str:
    """An nftables ruleset that sends router-to-router connections through the relay."""
    rules = "\n".join(
        f"    meta mark != {RELAY_MARK:#x} ip6 daddr {r.address} tcp dport {r.port} "
        f"redirect to :{r.relay_port}"
        for r in redirects
    )
    return (
        "table ip6 i2proxy_relay {\n"
        "  chain output {\n"
        "    type nat hook output priority -100; policy accept;\n"
        f"{rules}\n"
        "  }\n"
        "}\n"
    )


def install_redirects(netns: str, redirects: Iterable[Redirect]) -> None:
    _run("ip", "netns", "exec", netns, "nft", "-f", "-", input=render_redirect_rules(redirects))


def enter(netns: str) -> None:
    """Move the calling thread (the whole process if single-threaded) into ``netns``.

    Sockets created before the call stay in the old namespace: that is how the forwarder listens
    in the host namespace yet connects inside the test network.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(NETNS_DIR / netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({netns}): {os.strerror(err)}")
    finally:
        os.close(fd)
