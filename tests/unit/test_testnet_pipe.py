"""The relay's delayed pipe, between real loopback sockets."""

from __future__ import annotations

import asyncio
import socket
import time

from testnet.pipe import bridge, tune


def pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    tune(a)
    tune(b)
    return a, b


async def test_bridge_delays_each_direction_and_keeps_data_intact():
    client, left = pair()
    right, server = pair()
    task = asyncio.ensure_future(bridge(left, right, lambda: 0.1))
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
    task = asyncio.ensure_future(bridge(left, right, lambda: 0.0))
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
