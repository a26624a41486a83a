"""A second, small network beside the session's, run as the demo: isolation, link delay,
router stop/start, and the demo's clean-up of everything it started.

The second network is the other mix, all i2pd 2.58.0 (5 i2pd routers, r0 and r1 the floodfills;
one Java router, j5), so CI proves that mix too. Two floodfills, not one: i2pd 2.58 marks a peer
unreachable for 8 minutes when two routers connect to each other at the same moment (see
docs/TESTNET.md), and a network whose only floodfill is marked so cannot look anything up.

It is started by ``python -m testnet demo`` (what ``./scripts/demo`` runs) in a process group of
its own, as in a terminal, so one network start serves both jobs (issue 13 item 13 for the
demo): the tests run in file order and share it, every change they make is undone (the delay
back to 0, the stopped routers started again), and the last one closes the demo's output pipes
(``./scripts/demo | tee demo.log``, then Ctrl-C kills ``tee`` too), sends the group SIGINT and
checks that the network, and only it, is gone. Before, the demo's print then raised
BrokenPipeError, which skipped ``network.down()`` and left routers and the namespace behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from testnet import netns, process
from testnet.network import Network, lookup_from
from testnet.samprobe import sam_alive
from testnet.status import TestnetStatus

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
REPO = Path(__file__).resolve().parents[2]
#: The second network's shape (``testnet demo`` takes ``up``'s options).
SHAPE = ["--routers", "5", "--floodfills", "2", "--mix", "all-2.58", "--java", "1"]


class Demo:
    """``python -m testnet demo`` as a terminal's foreground job; its pipes are read (so a
    chatty demo never blocks on a full pipe) until :meth:`close_output` closes them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "testnet", "demo", "--name", name, *SHAPE],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # like a terminal's foreground job: Ctrl-C goes to the group
        )
        self.output = b""
        self._stop = threading.Event()
        self._drains: list[threading.Thread] = []

    def wait_ready(self, seconds: float) -> None:
        assert self.proc.stdout is not None and self.proc.stderr is not None
        deadline = time.monotonic() + seconds
        self._drain(self.proc.stderr)
        while b"Press Ctrl-C" not in self.output:
            line = self.proc.stdout.readline()
            assert line, f"demo ended before it was ready: {self.output.decode(errors='replace')}"
            self.output += line
            assert time.monotonic() < deadline, f"demo not ready within {seconds:.0f} s"
        self._drain(self.proc.stdout)

    def _drain(self, pipe) -> None:  # type: ignore[no-untyped-def]
        def run() -> None:
            fd = pipe.fileno()
            while not self._stop.is_set():
                if select.select([fd], [], [], 0.2)[0] and not os.read(fd, 65536):
                    return

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self._drains.append(thread)

    def close_output(self) -> None:
        """The reader of both pipes goes away (``tee`` killed by the same Ctrl-C)."""
        if self._stop.is_set():
            return
        self._stop.set()
        for thread in self._drains:
            thread.join(timeout=5)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.proc.stdout.close()
        self.proc.stderr.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture(scope="module")
def second(testnet: TestnetStatus):
    name = f"second-{os.urandom(3).hex()}"
    network = Network(name)
    demo = Demo(name)
    try:
        demo.wait_ready(400)
        yield network, network.status(), demo
    finally:
        demo.close_output()
        demo.kill()
        if network.exists():
            subprocess.run(
                [sys.executable, "-m", "testnet", "down", "--name", name], cwd=REPO, check=False
            )


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
    _, status, _ = second
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
    """Each fetch crosses at least two router-to-router links each way, so at 200 ms per link
    none can take less than 0.8 s, and the fastest of a few fetches is the path's latency (noise
    only adds: i2pd's proxy and tunnels that failed their tests under the delay added up to 2 s
    to single fetches in CI runs, before and after the change)."""
    network, status, _ = second
    await Network.wait_http_proxy(status, timeout=60)
    await _fetch_seconds(status)  # warm: the proxy's tunnels and its lookup of the eepsite
    base = min([await _fetch_seconds(status) for _ in range(3)])
    try:
        updated = await network.set_link_delay(200)
        assert updated.link_delay_ms == 200 == network.status().link_delay_ms
        delayed = min([await _fetch_seconds(status) for _ in range(3)])
    finally:
        await network.set_link_delay(0)  # the later tests of this network expect none
    # Back at 0 ms: a fetch faster than the delayed floor shows the delay is gone; fetches in
    # flight when it dropped and tunnels rebuilt after it can take seconds, so try up to 10.
    again = []
    while len(again) < 10 and min(again, default=delayed) >= delayed - 0.3:
        again.append(await _fetch_seconds(status))
    print(f"eepsite fetch: {base:.3f} s at 0 ms, {delayed:.3f} s at 200 ms, {again} at 0 ms")
    assert delayed - base >= 0.4
    assert min(again) < delayed - 0.3


async def test_a_stopped_router_refuses_on_its_ports_and_works_after_restart(second):
    network, status, _ = second
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
    network, status, _ = second
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


def test_demo_ctrl_c_with_its_output_gone_takes_down_its_network_and_only_it(testnet, second):
    network, status, demo = second
    recorded = network._load_pids()
    pids = [r.pid for r in network.status().routers if r.pid]
    pids += [recorded["helper"], recorded["eepsite"]]
    assert all(process.is_running(pid) for pid in pids)
    java = [p for p in processes_mentioning(status.state_dir) if "RouterLaunch" in p]
    assert len(java) == 1, java
    demo.close_output()
    os.killpg(demo.proc.pid, signal.SIGINT)  # the terminal's SIGINT reaches the whole group
    demo.proc.wait(timeout=180)
    assert not any(process.is_running(pid) for pid in pids)
    assert processes_mentioning(status.state_dir) == []  # Java included
    assert not netns.exists(status.netns), "the namespace was left behind"
    assert not Path(status.state_dir).exists(), f"{status.state_dir} was left behind"
    # The session's network is untouched.
    session = TestnetStatus.load(testnet.name)
    assert all(process.is_running(r.pid) for r in session.routers if r.pid)
    assert asyncio.run(sam_alive(*session.routers[2].sam_host_port))
