"""Copy bytes between two connected sockets, each direction optionally shaped by a schedule.

Used by the host-namespace forwarder (unshaped) and by the router-to-router relay (link delay
and impairments, see ``testnet.impair``). Works on raw non-blocking sockets so it can ask for
immediate ACKs after every read: i2pd never sets TCP_NODELAY, so a delayed ACK from us would
stall its next small write by ~40 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import Protocol

CHUNK = 64 * 1024
#: Bounds the bytes a shaped pipe holds in flight (chunks), so a fast sender cannot fill memory.
MAX_QUEUED_CHUNKS = 256
_TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", 12)


class Schedule(Protocol):
    """When each chunk of one direction is delivered, and when the pipe may read more."""

    def read_size(self, chunk: int) -> int:
        """The most bytes to read at once."""
        ...

    def read_wait(self, now: float) -> float:
        """Seconds to wait before reading more (backpressure towards the sender)."""
        ...

    def due(self, now: float, size: int, in_flight: int) -> float:
        """The monotonic time a chunk of ``size`` bytes read at ``now`` is written on."""
        ...


def tune(sock: socket.socket) -> None:
    """Non-blocking, no Nagle: the pipe must not add latency of its own."""
    sock.setblocking(False)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _quickack(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)


async def _copy(src: socket.socket, dst: socket.socket, schedule: Schedule | None) -> None:
    """Copy until EOF on ``src``, then half-close ``dst``; each chunk is written when
    ``schedule`` says (at once without one), in the order read."""
    if schedule is None:
        return await _copy_now(src, dst)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(MAX_QUEUED_CHUNKS)
    in_flight = 0

    async def read() -> None:
        nonlocal in_flight
        while True:
            wait = schedule.read_wait(time.monotonic())
            if wait > 0:
                await asyncio.sleep(wait)
            data = await loop.sock_recv(src, schedule.read_size(CHUNK))
            _quickack(src)
            in_flight += len(data)
            await queue.put((schedule.due(time.monotonic(), len(data), in_flight), data))
            if not data:
                return

    async def write() -> None:
        nonlocal in_flight
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)
                return
            await loop.sock_sendall(dst, data)
            in_flight -= len(data)

    reader = asyncio.ensure_future(read())
    try:
        await write()
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await reader


async def _copy_now(src: socket.socket, dst: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    while data := await loop.sock_recv(src, CHUNK):
        _quickack(src)
        await loop.sock_sendall(dst, data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


async def bridge(
    a: socket.socket,
    b: socket.socket,
    a_to_b: Schedule | None = None,
    b_to_a: Schedule | None = None,
) -> None:
    """Copy both ways until both sides have finished (or one fails); then close both sockets.

    Never raises for network errors: a reset on one side just ends the bridge.
    """
    try:
        tasks = [
            asyncio.ensure_future(_copy(a, b, a_to_b)),
            asyncio.ensure_future(_copy(b, a, b_to_a)),
        ]
        try:
            # Either direction failing (reset, broken pipe) ends both.
            _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in pending:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await task
        finally:
            for task in tasks:
                task.cancel()
    finally:
        a.close()
        b.close()
