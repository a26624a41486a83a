"""At the default log level, ``i2proxy run`` logs nothing about what its users visit or who
they are (README "Logging"), while real traffic goes through it on the test network:

pages fetched over HTTP and SOCKS5 (by b32, by a name learned from a subscription, by a name
saved through the address helper), a refused clearnet name and an unknown .i2p name on both
proxies, a SOCKS5 UDP association with a datagram to the UDP echo service, and the
subscription fetch itself. Clients connect from 127.0.0.2 so that their address cannot be
confused with the proxy's own 127.0.0.1 listeners. Afterwards the log holds none of: the
eepsite's and the echo's b32 and destination, any name used, the feed URL, our own b32, the
client address or a client port.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from i2proxy.i2p.keyfile import save_key_file
from i2proxy.i2p.keys import PrivateKeys
from tests.integration.proxy_support import ProxyProcess, save_with_address_helper

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
pytest.importorskip("testnet.status")

CLIENT_IP = "127.0.0.2"


def _router_url(testnet, backend: str) -> str:
    router = testnet.client_router("i2pd", "2.45")  # not the eepsite's: traffic crosses the net
    return f"sam://{router.sam}" if backend == "sam" else f"i2cp://{router.i2cp}"


def _client_port() -> int:
    with socket.socket() as sock:
        sock.bind((CLIENT_IP, 0))
        return sock.getsockname()[1]


def _curl(ports: list[int], *args: str) -> subprocess.CompletedProcess[str]:
    ports.append(_client_port())
    return subprocess.run(
        ["curl", "-sS", "--max-time", "120", "--interface", CLIENT_IP,
         "--local-port", str(ports[-1]), "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )  # fmt: skip


def _page(ports: list[int], *args: str) -> str:
    """A page that must arrive (a new name may need a retry while its LeaseSet is looked up)."""
    for _ in range(3):
        result = _curl(ports, *args)
        if result.returncode == 0 and result.stdout.endswith("\n200"):
            return result.stdout
    raise AssertionError(f"curl {args}: {result.returncode} {result.stderr} {result.stdout[-200:]}")


#: Seconds for the proxy's answer to UDP ASSOCIATE (see _udp_association_echoes).
ASSOCIATE_TIMEOUT = 90


def _udp_echo_once(proxy: ProxyProcess, target: tuple[str, int], ports: list[int]) -> None:
    """SOCKS5 UDP ASSOCIATE from CLIENT_IP, then datagrams to the echo until one comes back.

    A new association after 25 s without an echo: on SAM each association is a new
    destination, and i2pd 2.45.1 drops every later new-session message from a key whose first
    reply was lost, for 2 minutes (see test_datagrams_native.py); one CI run lost all 120 s.
    """
    for _attempt in range(4):
        if _udp_association_echoes(proxy, target, ports, seconds=25):
            return
    raise AssertionError("no echo through four SOCKS5 UDP associations")


def _udp_association_echoes(
    proxy: ProxyProcess, target: tuple[str, int], ports: list[int], seconds: float
) -> bool:
    host, port = proxy.socks.rsplit(":", 1)
    # The reply waits for a new datagram session: on SAM a new router session, ~20 s on i2pd
    # 2.45.1 under load and more while the proxy's spare destination is being created (CI run
    # of 9d084bc: no reply within 30 s). test_socks_udp.py allows 60 s.
    control = socket.create_connection(
        (host, int(port)), timeout=ASSOCIATE_TIMEOUT, source_address=(CLIENT_IP, 0)
    )
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        udp.bind((CLIENT_IP, 0))
        ports += [control.getsockname()[1], udp.getsockname()[1]]
        control.sendall(b"\x05\x01\x00")
        assert control.recv(2) == b"\x05\x00"
        control.sendall(b"\x05\x03\x00\x01" + socket.inet_aton(CLIENT_IP) + struct.pack(">H", 0))
        reply = control.recv(10)
        assert reply[:2] == b"\x05\x00", reply
        relay = (socket.inet_ntoa(reply[4:8]), struct.unpack(">H", reply[8:10])[0])
        name = target[0].encode()
        header = b"\x00\x00\x00\x03" + bytes([len(name)]) + name + struct.pack(">H", target[1])
        udp.settimeout(3)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            udp.sendto(header + b"private datagram", relay)
            try:
                data, _ = udp.recvfrom(65535)
            except TimeoutError:
                continue
            if data.endswith(b"private datagram"):
                return True
        return False
    finally:
        udp.close()
        control.close()


async def _save_with_address_helper(proxy: ProxyProcess, name: str, destination: str) -> None:
    """The helper's confirmation page, then "save": the name goes into the local book."""
    connector = aiohttp.TCPConnector(local_addr=(CLIENT_IP, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        page = await save_with_address_helper(session, f"http://{proxy.http}", name, destination)
    assert "i2proxy demo eepsite" in page


BACKENDS = ["i2cp", "sam"]


@dataclass
class Run:
    """One backend's run: its proxy (stopped, with its log), the client ports it saw, and what
    must not appear in that log."""

    proxy: ProxyProcess
    ports: list[int]
    secrets: dict[str, str]
    exit_status: int


def _run_traffic(testnet, tmp_path: Path, backend: str) -> Run:
    eep, echo = testnet.eepsite, testnet.udp_echo
    assert echo is not None
    tag = uuid.uuid4().hex[:8]
    feed_name = f"fromfeed-{tag}.i2p"
    helper_name = f"helped-{tag}.i2p"
    unknown_name = f"unknown-{tag}.i2p"
    clearnet_name = f"clearnet-{tag}.example.com"
    feed = Path(eep.www_dir) / f"feed-{tag}.txt"
    feed.write_text(f"{feed_name}={eep.destination}\n")
    feed_url = f"http://{eep.b32}/files/{feed.name}"
    data_dir = tmp_path / "data"
    (data_dir / "addressbook").mkdir(parents=True)
    (data_dir / "addressbook" / "subscriptions.txt").write_text(feed_url + "\n")
    ours = PrivateKeys.generate()
    save_key_file(ours, tmp_path / "client.keys")
    echo_target = (echo.repliable_b32, echo.repliable_port) if backend == "sam" else (
        echo.b32, echo.port)  # fmt: skip
    proxy = ProxyProcess(
        _router_url(testnet, backend),
        data_dir,
        "--keys-file",
        str(tmp_path / "client.keys"),
        env={"I2PROXY_SUBSCRIPTIONS": "on", "I2PROXY_SUBSCRIPTIONS_DELAY": "1"},
    )
    ports: list[int] = []
    proxy.start()
    try:
        deadline = time.monotonic() + 300
        while not [e for e in proxy.log_events() if e.get("event") == "subscription.done"]:
            assert time.monotonic() < deadline, proxy.log_path.read_text()[-3000:]
            time.sleep(0.5)
        http, socks = ["-x", f"http://{proxy.http}"], ["--socks5-hostname", proxy.socks]
        for via in (http, socks):
            for host in (eep.b32, feed_name):
                assert "i2proxy demo eepsite" in _page(ports, *via, f"http://{host}/")
        asyncio.run(_save_with_address_helper(proxy, helper_name, eep.destination))
        assert "i2proxy demo eepsite" in _page(ports, *socks, f"http://{helper_name}/")
        for host in (clearnet_name, unknown_name):
            refused = _curl(ports, *http, f"http://{host}/")
            assert refused.stdout.rsplit("\n", 1)[-1][:1] in "45", refused.stdout[-300:]
            assert _curl(ports, *socks, f"http://{host}/").returncode != 0
        _udp_echo_once(proxy, echo_target, ports)
    finally:
        status = proxy.stop()
        feed.unlink(missing_ok=True)
    secrets = {
        "eepsite b32": eep.b32.removesuffix(".b32.i2p"),
        "eepsite destination": eep.destination[:44],
        "echo b32": echo_target[0].removesuffix(".b32.i2p"),
        "name from the feed": feed_name,
        "name saved with the helper": helper_name,
        "unknown name": unknown_name,
        "refused clearnet name": clearnet_name,
        "feed file": feed.name,
        "our own b32": ours.destination.b32.removesuffix(".b32.i2p"),
        "our own destination": ours.destination.to_base64()[:44],
        "client address": CLIENT_IP,
    }
    return Run(proxy, ports, secrets, status)


@pytest.fixture(scope="module")
def runs(testnet, tmp_path_factory) -> dict[str, Run | BaseException]:
    """Both backends' traffic at the same time, each with its own proxy, names, keys and client
    ports (nothing shared but the network): the module takes the time of one run, not two
    (each is about two minutes of waiting on I2P: the feed, first contacts, the UDP echo)."""
    with ThreadPoolExecutor(len(BACKENDS)) as pool:
        futures = {
            backend: pool.submit(
                _run_traffic, testnet, tmp_path_factory.mktemp(f"logpriv-{backend}"), backend
            )
            for backend in BACKENDS
        }
    return {backend: future.exception() or future.result() for backend, future in futures.items()}


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_default_log_names_no_site_and_no_client(runs, backend):
    run = runs[backend]
    if isinstance(run, BaseException):
        raise run  # the traffic itself failed on this backend
    assert run.exit_status == 0
    proxy, ports, secrets = run.proxy, run.ports, run.secrets

    text = proxy.log_path.read_text()
    events = proxy.log_events()
    kinds = {e.get("event") for e in events}
    # The run did log, at info level, what happened (else an empty log would pass).
    assert {
        "i2proxy ready",
        "subscription.done",
        "addressbook.added",
        "socks udp association",
    } <= kinds
    assert all(e.get("level") != "debug" for e in events)
    leaked = {what: value for what, value in secrets.items() if value.lower() in text.lower()}
    assert not leaked, f"in the default log: {leaked}"
    port_fields = [
        (e.get("event"), key, value)
        for e in events
        for key, value in e.items()
        if (isinstance(value, int) and "port" in key and value in ports)
        or (isinstance(value, str) and any(f":{p}" in value or f" {p})" in value for p in ports))
    ]
    assert not port_fields, f"client ports in the default log: {port_fields}"
