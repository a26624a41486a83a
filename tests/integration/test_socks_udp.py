"""SOCKS5 UDP ASSOCIATE through a real ``i2proxy run``, with PySocks as the client.

The target is the test network's UDP echo service (an i2pd ``udpserver`` tunnel on router 2);
the proxy uses router 3, so every datagram crosses the network both ways. Over SAM the echo's
delayed port is used: i2pd answers it with repliable datagrams, while its immediate answers are
raw, which an i2pd 2.45.1 SAM DATAGRAM session drops (see ``dialer/sam_datagrams.py``).
"""

from __future__ import annotations

import os
import socket
import time

import pytest
import socks  # PySocks: a SOCKS5 client that speaks UDP ASSOCIATE

from tests.integration.i2cp_support import CLIENT_ROUTER
from tests.integration.proxy_support import ProxyProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

COUNT = 100


def router_url(testnet, backend: str) -> str:
    router = testnet.routers[CLIENT_ROUTER]
    return f"sam://{router.sam}" if backend == "sam" else f"i2cp://{router.i2cp}"


@pytest.fixture(scope="module", params=["i2cp", "sam"])
def proxy(request, testnet, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp(f"socks-udp-{request.param}")
    proxy = ProxyProcess(router_url(testnet, request.param), data_dir)
    proxy.start()
    try:
        yield proxy, request.param
    finally:
        status = proxy.stop()
    assert status == 0, "i2proxy run did not shut down cleanly on SIGTERM"


def udp_client(proxy: ProxyProcess, timeout: float) -> socks.socksocket:
    host, port = proxy.socks.rsplit(":", 1)
    client = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
    client.set_proxy(socks.SOCKS5, host, int(port), rdns=True)
    client.settimeout(timeout)
    return client


def echo_round(client: socks.socksocket, target: tuple[str, int], payload: bytes) -> bool:
    """One datagram out; True when its echo came back (replies to earlier ones are skipped)."""
    client.sendto(payload, target)
    deadline = time.monotonic() + client.gettimeout()
    while time.monotonic() < deadline:
        try:
            data, sender = client.recvfrom(65535)
        except TimeoutError:
            return False
        host = sender[0].decode() if isinstance(sender[0], bytes) else sender[0]
        assert (host, sender[1]) == target, sender  # the sender's b32 in the reply header
        if data == payload:
            return True
    return False


def warmed_up_client(proxy: ProxyProcess, echo: tuple[str, int]) -> socks.socksocket:
    """A client whose association has had one datagram echoed (the first waits for the echo's
    LeaseSet); a new association after 25 s without one. On SAM a new association is a new
    destination, and i2pd 2.45.1 drops every later new-session message from a key whose first
    reply was lost, for 2 minutes (see test_datagrams_native.py)."""
    for _attempt in range(3):
        client = udp_client(proxy, timeout=5)
        if any(echo_round(client, echo, b"warm-up " + os.urandom(4)) for _ in range(5)):
            return client
        client.close()
    raise AssertionError("no echo through three SOCKS5 UDP associations")


def echo_target(testnet, backend: str) -> tuple[str, int]:
    echo = testnet.udp_echo
    if backend == "sam":
        return echo.repliable_b32, echo.repliable_port
    return echo.b32, echo.port


def test_100_datagrams_to_the_udp_echo_come_back_byte_identical(proxy, testnet):
    proxy, backend = proxy
    echo = echo_target(testnet, backend)
    client = warmed_up_client(proxy, echo)
    try:
        client.settimeout(10)
        payloads = [os.urandom(8) + bytes([i]) * (100 + 10 * i) for i in range(COUNT)]
        started = time.monotonic()
        echoed = sum(echo_round(client, echo, payload) for payload in payloads)
        elapsed = time.monotonic() - started
    finally:
        client.close()
    print(f"socks udp ({backend}): {echoed}/{COUNT} echoed byte-identical in {elapsed:.1f} s")
    assert echoed >= 95


def test_datagrams_to_ip_addresses_and_clearnet_names_are_refused(proxy, testnet):
    proxy, backend = proxy
    client = udp_client(proxy, timeout=60)
    try:
        assert echo_round(client, echo_target(testnet, backend), b"alive")
        client.settimeout(5)
        client.sendto(b"to an IP", ("127.0.0.1", 9))
        client.sendto(b"to the clearnet", ("example.com", 53))
        with pytest.raises(TimeoutError):
            client.recvfrom(65535)
    finally:
        client.close()
    log = proxy.log_path.read_text()
    assert '"IP target refused"' in log and '"not an I2P destination"' in log
    assert '"example.com"' not in log  # a name the client tried is no business of the log
