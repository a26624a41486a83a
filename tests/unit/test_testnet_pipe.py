"""The relay's delayed pipe, between real loopback sockets."""

from __future__ import annotations

import asyncio
import socket
import time

from testnet.pipe import bridge, tune


class FixedDelay:
    """A pipe schedule holding every chunk ``seconds`` back."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def read_size(self, chunk: int) -> int:
        return chunk

    def read_wait(self, now: float) -> float:
        return 0.0

    def due(self, now: float, size: int, in_flight: int) -> float:
        return now + self.seconds


def pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    tune(a)
    tune(b)
    return a, b


async def test_bridge_delays_each_direction_and_keeps_data_intact():
    client, left = pair()
    right, server = pair()
    task = asyncio.ensure_future(bridge(left, right, FixedDelay(0.1), FixedDelay(0.1)))
    loop = asyncio.get_running_loop()
    data = bytes(range(256)) * 1000
    start = time.monotonic()
    await loop.sock_sendall(client, data)
    got = b""
    while len(got) < len(data):
        got += await loop.sock_recv(server, 65536)
    one_way = time.monotonic() - start
    await loop.sock_sendall(server, b"pong")
    assert await loop.sock_recv(client, 10) == b"pong"
    round_trip = time.monotonic() - start
    assert got == data
    assert 0.1 <= one_way < 0.5
    assert round_trip >= 0.2
    client.close()
    server.close()
    await asyncio.wait_for(task, 2)


async def test_half_close_is_forwarded():
    client, left = pair()
    right, server = pair()
    task = asyncio.ensure_future(bridge(left, right, FixedDelay(0.0)))
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(client, b"request")
    client.shutdown(socket.SHUT_WR)
    got = b""
    while chunk := await loop.sock_recv(server, 100):
        got += chunk
    assert got == b"request"
    await loop.sock_sendall(server, b"reply")
    server.close()
    assert await loop.sock_recv(client, 100) == b"reply"
    client.close()
    await asyncio.wait_for(task, 2)


async def test_unshaped_bridge_copies_both_ways_and_forwards_half_close():
    client, left = pair()
    right, server = pair()
    task = asyncio.ensure_future(bridge(left, right))
    loop = asyncio.get_running_loop()
    data = bytes(range(256)) * 4000

    async def send() -> None:
        await loop.sock_sendall(client, data)
        client.shutdown(socket.SHUT_WR)

    sender = asyncio.ensure_future(send())
    got = b""
    while chunk := await loop.sock_recv(server, 65536):
        got += chunk
    await sender
    assert got == data
    await loop.sock_sendall(server, b"reply")
    server.close()
    assert await loop.sock_recv(client, 100) == b"reply"
    client.close()
    await asyncio.wait_for(task, 2)


async def test_a_rate_capped_link_delivers_at_its_rate_intact():
    from testnet.impair import Impairment, LinkSettings
    from testnet.relay import Relay

    relay = Relay([], LinkSettings(0, Impairment(rate="2MB")))
    client, left = pair()
    right, server = pair()
    task = asyncio.ensure_future(
        bridge(left, right, relay.schedule("a", "b"), relay.schedule("b", "a"))
    )
    loop = asyncio.get_running_loop()
    data = bytes(range(256)) * 4000  # 1 MB: 0.5 s at 2 MB/s
    start = time.monotonic()
    sender = asyncio.ensure_future(loop.sock_sendall(client, data))
    got = b""
    while len(got) < len(data):
        got += await loop.sock_recv(server, 65536)
    elapsed = time.monotonic() - start
    await sender
    assert got == data
    assert 0.45 <= elapsed < 1.5
    assert relay.counters.bytes == len(data)
    client.close()
    server.close()
    await asyncio.wait_for(task, 2)
