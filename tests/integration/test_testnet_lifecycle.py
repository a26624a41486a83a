"""A second, small network beside the session's: isolation, link delay, router stop/start, down.

The second network is the other mix, all i2pd 2.58.0 (5 i2pd routers, r0 and r1 the floodfills;
one Java router, j5), so CI proves that mix too. Two floodfills, not one: i2pd 2.58 marks a peer
unreachable for 8 minutes when two routers connect to each other at the same moment (see
docs/TESTNET.md), and a network whose only floodfill is marked so cannot look anything up.
The tests run in file order and share one module-scoped network; the last one takes it down.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import subprocess
import time
from pathlib import Path

import pytest

from testnet import netns, process
from testnet.network import Network, NetworkConfig, lookup_from
from testnet.samprobe import sam_alive
from testnet.status import TestnetStatus

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def second(testnet: TestnetStatus):
    network = Network(f"second-{os.urandom(3).hex()}")
    config = NetworkConfig(routers=5, floodfills=2, mix="all-2.58", java=1)
    status = asyncio.run(network.up(config))
    try:
        yield network, status
    finally:
        if network.exists():
            asyncio.run(network.down())


def curl_eepsite(status: TestnetStatus, path: str = "/") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "60", "-x", f"http://{status.http_proxy}",
         f"http://{status.eepsite.b32}{path}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def ports(status: TestnetStatus) -> set[str]:
    used = {status.http_proxy, status.socks_proxy}
    for router in status.routers:
        used |= {router.i2cp, router.sam, router.http_proxy or router.sam}
    return used


def processes_mentioning(marker: str) -> list[str]:
    """Command lines of every process on the machine that carries ``marker`` (ps, by hand)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def test_two_networks_run_side_by_side_without_sharing_anything(testnet, second):
    _, status = second
    assert status.netns != testnet.netns and netns.exists(status.netns)
    assert status.state_dir != testnet.state_dir
    assert not ports(status) & ports(testnet)
    assert status.eepsite.b32 != testnet.eepsite.b32
    assert status.ready_seconds is not None and status.ready_seconds < 120
    assert status.mix == "all-2.58" and testnet.mix == "mixed"
    assert {(r.kind, r.version) for r in status.routers} == {("i2pd", "2.58.0"), ("java", "2.7.0")}
    for net in (status, testnet):
        proc = curl_eepsite(net)
        assert proc.returncode == 0, proc.stderr
        assert "Hello from the private I2P network" in proc.stdout
    # Each network's i2pd proxy reaches only its own network's eepsite.
    wrong = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "30",
         "-x", f"http://{status.http_proxy}", f"http://{testnet.eepsite.b32}/"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert wrong.stdout != "200"


async def _fetch_seconds(status: TestnetStatus) -> float:
    start = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-o", "/dev/null", "--max-time", "60", "-x", f"http://{status.http_proxy}",
        f"http://{status.eepsite.b32}/headers",
    )  # fmt: skip
    assert await proc.wait() == 0
    return time.monotonic() - start


async def test_link_delay_can_be_changed_at_runtime_and_adds_latency(second):
    network, status = second
    await Network.wait_http_proxy(status, timeout=60)
    # Warm up first: the proxy's first fetches include building its tunnels and looking the
    # eepsite up (a 0.95 s median at 0 ms in one CI run, 0.05 s once warm).
    for _ in range(2):
        await _fetch_seconds(status)
    base = statistics.median([await _fetch_seconds(status) for _ in range(3)])
    updated = await network.set_link_delay(200)
    assert updated.link_delay_ms == 200 == network.status().link_delay_ms
    delayed = statistics.median([await _fetch_seconds(status) for _ in range(3)])
    await network.set_link_delay(0)
    again = statistics.median([await _fetch_seconds(status) for _ in range(3)])
    print(f"eepsite fetch: {base:.3f} s at 0 ms, {delayed:.3f} s at 200 ms, {again:.3f} s at 0 ms")
    # A request and its response cross at least two router-to-router links each way.
    assert delayed - min(base, again) >= 0.4
    assert again < delayed - 0.3


async def test_a_stopped_router_refuses_on_its_ports_and_works_after_restart(second):
    network, status = second
    # Router 3 of 5 (i2pd 2.58): neither a floodfill (0, 1), the proxy router (2) nor the
    # eepsite's (4).
    router = status.routers[3]
    assert not router.floodfill and router.index not in (status.proxy_router, status.eepsite.router)
    assert (router.kind, router.version) == ("i2pd", "2.58.0")
    await network.stop_router(router.index)
    assert network.status().routers[router.index].pid is None
    assert not await sam_alive(*router.sam_host_port, timeout=5)
    # The forwarded port accepts and resets at once (or the connect itself sees the reset).
    with contextlib.suppress(ConnectionResetError):
        reader, writer = await asyncio.open_connection(*router.i2cp_host_port)
        assert await asyncio.wait_for(reader.read(1), 5) == b""
        writer.close()

    started = time.monotonic()
    await network.start_router(router.index)  # returns once lookups through it work again
    print(f"router usable again after {time.monotonic() - started:.1f} s")
    assert network.status().routers[router.index].pid is not None
    assert await sam_alive(*router.sam_host_port)
    assert await lookup_from(network.status(), router.index, status.eepsite.b32)


async def test_a_java_router_restarts_with_its_keys_and_is_usable_again(second):
    network, status = second
    java = status.client_router("java")
    assert java.index == 5 and java.pid is not None
    conf = Path(status.state_dir) / java.name / "router.config"
    ntcp2_key = [line for line in conf.read_text().splitlines() if "ntcp2.sp=" in line]
    assert ntcp2_key, "Java wrote no NTCP2 static key"
    old_pid = java.pid
    await network.stop_router(java.index)
    assert not process.is_running(old_pid)
    assert network.status().routers[java.index].pid is None
    assert not await sam_alive(*java.sam_host_port, timeout=5)

    started = time.monotonic()
    # Returns once it met a peer, resolves the eepsite and fetches it through its HTTP proxy.
    await network.start_router(java.index)
    print(f"Java router usable again after {time.monotonic() - started:.1f} s")
    assert network.status().routers[java.index].pid not in (None, old_pid)
    # Same config (never rewritten): the NTCP2 key the i2pd routers know is still the one.
    assert [line for line in conf.read_text().splitlines() if "ntcp2.sp=" in line] == ntcp2_key
    proc = await asyncio.to_thread(
        subprocess.run,
        ["curl", "-sS", "--max-time", "60", "-x", f"http://{status.java_http_proxy}",
         f"http://{status.eepsite.b32}/"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0 and "Hello from the private I2P network" in proc.stdout


def test_down_stops_only_its_processes_and_leaves_nothing_behind(testnet, second):
    network, status = second
    recorded = network._load_pids()
    pids = [r.pid for r in network.status().routers if r.pid]
    pids += [recorded["helper"], recorded["eepsite"]]
    assert all(process.is_running(pid) for pid in pids)
    java = [p for p in processes_mentioning(status.state_dir) if "RouterLaunch" in p]
    assert len(java) == 1, java
    asyncio.run(network.down())
    assert not any(process.is_running(pid) for pid in pids)
    assert processes_mentioning(status.state_dir) == []  # Java included
    assert not netns.exists(status.netns)
    assert not Path(status.state_dir).exists()
    # The session's network is untouched.
    session = TestnetStatus.load(testnet.name)
    assert all(process.is_running(r.pid) for r in session.routers if r.pid)
    assert asyncio.run(sam_alive(*session.routers[2].sam_host_port))
