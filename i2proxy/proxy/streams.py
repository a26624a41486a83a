"""Byte plumbing shared by the proxy sessions: relaying, the SYN window, polite closing."""

from __future__ import annotations

import asyncio
import contextlib

#: One streaming packet's worth of payload: once this much is buffered, dial at once.
SYN_PAYLOAD_TARGET = 1730
#: After the first bytes arrived, how long to wait for a second write before dialling.
COALESCE_GAP = 0.01
READ_SIZE = 64 * 1024


class Closed(Exception):
    """The browser or the SOCKS client went away; nothing to answer."""


async def linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Half-close and swallow what the client still sends, so it sees our answer, not a RST."""
    with contextlib.suppress(Exception):
        if writer.can_write_eof():
            writer.write_eof()
        await asyncio.wait_for(reader.read(READ_SIZE), 1.0)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close the other side so the peer sees the end too."""
    try:
        while data := await reader.read(READ_SIZE):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError, RuntimeError):
        with contextlib.suppress(Exception):
            writer.close()


async def relay(
    a_reader: asyncio.StreamReader,
    a_writer: asyncio.StreamWriter,
    b_reader: asyncio.StreamReader,
    b_writer: asyncio.StreamWriter,
) -> None:
    """Pipe both ways until both directions ended (or one side broke)."""
    tasks = [
        asyncio.create_task(_pipe(a_reader, b_writer)),
        asyncio.create_task(_pipe(b_reader, a_writer)),
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
    ``COALESCE_GAP`` for a write split in two (head, body), and stop at ``target`` bytes.

    Like Java's connect delay, but the dial starts as soon as the first write is in instead of
    always waiting the whole window.
    """
    data = bytearray(initial)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + window
    while len(data) < target:
        remaining = deadline - loop.time()
        if data:
            remaining = min(remaining, COALESCE_GAP)
        if remaining <= 0:
            break
        try:
            chunk = await asyncio.wait_for(reader.read(target - len(data)), remaining)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    return bytes(data)
