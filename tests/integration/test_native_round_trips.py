"""The request rides in the SYN and the reply needs no extra round trip.

Asserted two ways: from the connection statistics, and from timing with the test network's
link delay, where one round trip is measured with a streaming ECHO (ping) over the same path.
A SAM client (connect, then send) needs two round trips; we need one.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest

from tests.integration.i2cp_support import (
    CLIENT_ROUTER,
    SERVER_ROUTER,
    native_dialer,
    sam_address,
    sam_session,
    tunnel_options,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

LINK_DELAY_MS = 50
REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


async def round_trip(dialer, destination, port: int, samples: int = 5) -> float:
    """Median time of a bare handshake (empty SYN → SYN reply) with a peer that answers the
    SYN at once: one round trip over the same path, after a warm-up stream (LeaseSet, session)."""
    await warm_up(dialer, destination, port)
    times = []
    for _ in range(samples):
        started = time.monotonic()
        _, writer = await dialer.open_stream(destination, port, b"", timeout=60)
        times.append(time.monotonic() - started)
        writer.close()
    return statistics.median(times)


async def warm_up(dialer, destination, port: int) -> None:
    """One stream to ``destination``, dialled once more if the first SYN got no answer in 60 s.

    The CI run of 6b3c812 had a fresh destination's first SYN to the i2pd eepsite, and its four
    resends, unanswered for 60 s on a loaded machine (its session took 21 s to get tunnels);
    not traced, the routers' logs were gone. This module measures round trips, not that. The
    second dial's 100 s outlast i2pd 2.45.1's 120 s hold on a new garlic session whose reply
    was lost ("session with static key … already exists", see test_datagrams_native), should
    that have been the cause.
    """
    from i2proxy.dialer.base import DialTimeout

    try:
        _, writer = await dialer.open_stream(destination, port, b"", timeout=60)
    except DialTimeout as exc:
        print(f"warm-up: {exc}; dialling once more")
        _, writer = await dialer.open_stream(destination, port, b"", timeout=100)
    writer.close()


async def first_byte(dialer, target, port: int) -> tuple[float, object]:
    started = time.monotonic()
    reader, writer = await dialer.open_stream(target, port, REQUEST, timeout=60)
    first = await asyncio.wait_for(reader.read(1), 30)
    elapsed = time.monotonic() - started
    assert first, "no response"
    stats = writer.get_extra_info("stream_stats")
    writer.close()
    return elapsed, stats


@pytest.fixture
async def link_delay(testnet):
    from testnet.network import Network

    network = Network(testnet.name)
    await network.set_link_delay(LINK_DELAY_MS)
    try:
        yield LINK_DELAY_MS / 1000
    finally:
        await network.set_link_delay(0)


async def test_request_in_syn_reply_in_syn_ack_against_our_server(testnet, link_delay):
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        writer.close()

    async def at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"x")  # written and closed on accept: the SYN reply leaves immediately
        writer.close()

    async with (
        native_dialer(testnet, SERVER_ROUTER, published=True) as server,
        native_dialer(testnet, CLIENT_ROUTER) as client,
    ):
        server.listen(answer, 80)
        server.listen(at_once, 7)
        rtt = await round_trip(client, server.destination, 7)
        ttfbs = []
        for _ in range(3):
            ttfb, stats = await first_byte(client, server.destination, 80)
            ttfbs.append(ttfb)
            assert stats.initial_data_in_syn
            assert stats.syn_payload_bytes == len(REQUEST)
        ttfb = min(ttfbs)
        print(f"our server: rtt {rtt * 1000:.0f} ms, ttfb {[round(t * 1000) for t in ttfbs]} ms")
        assert rtt >= 4 * link_delay  # the delay really is on the path
        assert ttfb < 1.5 * rtt, f"TTFB {ttfb:.3f} s is more than one round trip ({rtt:.3f} s)"


async def test_request_in_syn_one_round_trip_against_i2pd_eepsite(testnet, link_delay):
    from i2proxy.i2p.destination import Destination

    eepsite = Destination.from_base64(testnet.eepsite.destination)
    async with native_dialer(testnet, CLIENT_ROUTER) as client:
        rtt = await round_trip(client, eepsite, 80)  # i2pd answers a SYN at once
        ttfbs = []
        for _ in range(3):
            ttfb, stats = await first_byte(client, eepsite, 80)
            ttfbs.append(ttfb)
            assert stats.initial_data_in_syn
        ttfb = min(ttfbs)
        print(f"i2pd eepsite: rtt {rtt * 1000:.0f} ms, ttfb {[round(t * 1000) for t in ttfbs]} ms")
        assert ttfb < 1.5 * rtt, f"TTFB {ttfb:.3f} s is more than one round trip ({rtt:.3f} s)"

    # The same request through an i2pd SAM client on the same router: connect, then send.
    async with sam_session(sam_address(testnet, CLIENT_ROUTER), tunnel_options(testnet)) as sam:
        await sam.lookup(testnet.eepsite.b32)
        sam_ttfbs = []
        for _ in range(3):
            started = time.monotonic()
            reader, writer = await sam.connect(testnet.eepsite.destination)
            writer.write(REQUEST)
            assert await asyncio.wait_for(reader.read(1), 30)
            sam_ttfbs.append(time.monotonic() - started)
            writer.close()
        print(f"i2pd SAM client: ttfb {[round(t * 1000) for t in sam_ttfbs]} ms")
        assert min(sam_ttfbs) > ttfb
