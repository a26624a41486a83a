"""Copy bytes between two connected sockets, optionally holding each chunk back for a delay.

Used by the host-namespace forwarder (no delay) and by the router-to-router relay (the link
delay). Works on raw non-blocking sockets so it can ask for immediate ACKs after every read:
i2pd never sets TCP_NODELAY, so a delayed ACK from us would stall its next small write by ~40 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable

CHUNK = 64 * 1024
#: Bounds the bytes a delayed pipe holds in flight (chunks), so a fast sender cannot fill memory.
MAX_QUEUED_CHUNKS = 256
_TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", 12)


def tune(sock: socket.socket) -> None:
    """Non-blocking, no Nagle: the pipe must not add latency of its own."""
    sock.setblocking(False)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _quickack(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)


async def _copy(src: socket.socket, dst: socket.socket, delay: Callable[[], float]) -> None:
    """Copy until EOF on ``src``, then half-close ``dst``. Each chunk waits ``delay()`` seconds."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(MAX_QUEUED_CHUNKS)

    async def read() -> None:
        while True:
            data = await loop.sock_recv(src, CHUNK)
            _quickack(src)
            await queue.put((time.monotonic() + delay(), data))
            if not data:
                return

    async def write() -> None:
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

    reader = asyncio.ensure_future(read())
    try:
        await write()
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await reader


async def bridge(a: socket.socket, b: socket.socket, delay: Callable[[], float]) -> None:
    """Copy both ways until both sides have finished (or one fails); then close both sockets.

    Never raises for network errors: a reset on one side just ends the bridge.
    """
    try:
        tasks = [
            asyncio.ensure_future(_copy(a, b, delay)),
            asyncio.ensure_future(_copy(b, a, delay)),
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


def no_delay() -> float:
    return 0.0
