"""Byte plumbing shared by the proxy sessions: reads with deadlines, relaying, the SYN window,
the tunnel behind SOCKS CONNECT and HTTP CONNECT, polite closing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from i2proxy.dialer.base import DialError
from i2proxy.log import get_logger

if TYPE_CHECKING:
    from i2proxy.proxy.context import ClientSlot

#: One streaming packet's worth of payload: once this much is buffered, dial at once.
SYN_PAYLOAD_TARGET = 1730
#: After the first bytes arrived, how long to wait for a second write before dialling.
COALESCE_GAP = 0.01
#: Larger first writes are not looked into (the SYN holds one packet anyway).
MAX_SNIFFED_HEAD = SYN_PAYLOAD_TARGET
READ_SIZE = 64 * 1024
#: Largest read when relaying a stream: it must drain in one turn of the event loop what one
#: I2CP socket read delivered (asyncio reads up to 256 KiB per turn). With 64 KiB the relay fell
#: behind a bulk download on every turn until the I2P stream paused (choked the peer) and then
#: dropped packets, which an i2pd 2.45.1 sender resends only after its timeout — seconds.
RELAY_READ_SIZE = 1024 * 1024

log = get_logger("i2proxy.proxy")


class Closed(Exception):
    """The browser or the SOCKS client went away; nothing to answer."""


async def read_before(
    reader: asyncio.StreamReader, deadline: float, size: int = READ_SIZE
) -> bytes:
    """Read what is there (``b""`` at EOF), or raise ``TimeoutError`` once the loop's clock
    passes ``deadline``."""
    if deadline - asyncio.get_running_loop().time() <= 0:
        raise TimeoutError
    # asyncio.timeout_at arms one timer; wait_for wrapped each read in a new Task (a relay
    # reads once per batch of packets from the router).
    async with asyncio.timeout_at(deadline):
        return await reader.read(size)


async def linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Half-close and swallow what the client still sends, so it sees our answer, not a RST."""
    with contextlib.suppress(Exception):
        if writer.can_write_eof():
            writer.write_eof()
        await asyncio.wait_for(reader.read(READ_SIZE), 1.0)


async def _pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    on_data: Callable[[], None] | None = None,
) -> None:
    """Copy until EOF, then half-close the other side so the peer sees the end too."""
    try:
        while data := await reader.read(RELAY_READ_SIZE):
            if on_data is not None:
                on_data()
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError, RuntimeError, DialError) as exc:
        if isinstance(exc, DialError):  # the router went away under the stream (a restart)
            log.info("relay ended: the I2P stream failed", error=type(exc).__name__)
        with contextlib.suppress(Exception):
            writer.close()


async def relay(
    a_reader: asyncio.StreamReader,
    a_writer: asyncio.StreamWriter,
    b_reader: asyncio.StreamReader,
    b_writer: asyncio.StreamWriter,
    on_data: Callable[[], None] | None = None,
) -> None:
    """Pipe both ways until both directions ended (or one side broke); ``on_data`` is called
    for every chunk (activity for the idle rule)."""
    tasks = [
        asyncio.create_task(_pipe(a_reader, b_writer, on_data)),
        asyncio.create_task(_pipe(b_reader, a_writer, on_data)),
    ]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()


async def collect_window(
    reader: asyncio.StreamReader, initial: bytes, window: float, target: int
) -> bytes:
    """The client's first bytes: wait up to ``window`` seconds for them to start, then only
    ``COALESCE_GAP`` for a write split in two (head, body); stop at ``target`` bytes or once
    the bytes are a whole request head without a body.

    Like Java's connect delay, but the dial starts as soon as the first write is in instead of
    always waiting the whole window.
    """
    data = bytearray(initial)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + window
    while len(data) < target and not is_bodyless_request_head(data):
        until = min(deadline, loop.time() + COALESCE_GAP) if data else deadline
        try:
            chunk = await read_before(reader, until, target - len(data))
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    return bytes(data)


def is_bodyless_request_head(data: bytes | bytearray) -> bool:
    """Whether ``data`` is a whole HTTP/1.x request head announcing no body: nothing more can
    belong in the SYN, so waiting ``COALESCE_GAP`` for a second write only delays the dial (a
    SOCKS client's GET: 10-16 ms of its first byte). Anything else (TLS, a POST) still waits."""
    if not data.endswith(b"\r\n\r\n") or len(data) > MAX_SNIFFED_HEAD:
        return False
    head = bytes(data).lower()
    request_line = head.split(b"\r\n", 1)[0]
    if not request_line.endswith((b" http/1.1", b" http/1.0")):
        return False
    return b"\r\ncontent-length:" not in head and b"\r\ntransfer-encoding:" not in head


Dial = Callable[[bytes], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


async def tunnel(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    slot: ClientSlot,
    *,
    first: bytes,
    window: float,
    dial: Dial,
    release: Callable[[asyncio.StreamWriter], None],
    accept: Callable[[], Awaitable[None]],
    refuse: Callable[[DialError], Awaitable[None]],
) -> None:
    """A client's byte tunnel to an I2P destination: SOCKS CONNECT and HTTP CONNECT.

    With a ``window`` (seconds), say "connected" first (``accept``) so the client sends its
    first bytes, collect them for the SYN (Java's connect delay), then dial: a failed dial is
    then only a close. Without one, dial first and answer a failure with ``refuse``.
    The ``slot`` holds the stream and is idle whenever no byte moved (the server may close the
    longest-idle tunnel when a fresh request meets a full limit).
    """
    if window > 0:
        await accept()
        first = await collect_window(reader, first, window, SYN_PAYLOAD_TARGET)
    try:
        up_reader, up_writer = await dial(first)
    except DialError as exc:
        log.debug("tunnel dial failed", error=repr(exc))
        if window <= 0:
            await refuse(exc)
        return
    slot.streams.add(up_writer)
    slot.touch()
    try:
        if window <= 0:
            await accept()
        await relay(reader, writer, up_reader, up_writer, slot.touch)
    finally:
        slot.streams.discard(up_writer)
        release(up_writer)
