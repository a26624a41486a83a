"""Datagrams over our own I2CP session, against the test network's i2pd UDP echo service."""

from __future__ import annotations

import asyncio
import os

import pytest

from i2proxy.dialer.native import NativeDialer
from i2proxy.i2p.keys import PrivateKeys
from tests.integration.i2cp_support import CLIENT_ROUTER, i2cp_address, tunnel_options

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

COUNT = 100


async def test_100_repliable_datagrams_to_the_i2pd_udp_echo_come_back_byte_identical(testnet):
    echo = testnet.udp_echo
    dialer = NativeDialer(
        *i2cp_address(testnet, CLIENT_ROUTER),
        keys=PrivateKeys.generate(),
        options=tunnel_options(testnet),
    )
    await dialer.start()
    try:
        endpoint = await dialer.open_datagram_endpoint()
        sent = {os.urandom(4) + bytes([i]) * (200 + i): i for i in range(COUNT)}
        received: dict[bytes, object] = {}

        async def collect() -> None:
            while len(received) < COUNT:
                datagram = await endpoint.receive()
                received[datagram.payload] = datagram

        collector = asyncio.create_task(collect())
        for payload in sent:
            await endpoint.send(echo.b32, payload, echo.port)
            await asyncio.sleep(0.02)
        await asyncio.wait([collector], timeout=20)  # all back, or stragglers given 20 s
        collector.cancel()
        echoed = [p for p in received if p in sent]
        assert len(echoed) >= 95, f"{len(echoed)}/{COUNT} echoed"
        assert len(received) == len(echoed)  # nothing that was not sent
        for payload in echoed:
            datagram = received[payload]
            assert datagram.sender == echo.b32  # type: ignore[attr-defined]
            assert datagram.src_port == echo.port  # type: ignore[attr-defined]
        print(f"native: {len(echoed)}/{COUNT} echoed", endpoint.stats)
    finally:
        await dialer.close()
