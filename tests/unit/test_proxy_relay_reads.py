"""The relay drains an I2P stream's buffer in one turn of the event loop.

One I2CP socket read can hand a stream 256 KiB at once; a relay that reads less per turn falls
behind a bulk download until the stream pauses, chokes the peer and drops its packets.
"""

from __future__ import annotations

import asyncio

from i2proxy.proxy.streams import RELAY_READ_SIZE, relay


class RecordingWriter:
    """The client side of the relay: records every write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.eof = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    async def drain(self) -> None:
        return None

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def close(self) -> None:
        return None


async def test_what_one_i2cp_read_delivered_is_relayed_in_one_write() -> None:
    one_i2cp_read = 256 * 1024
    buffered = bytes(range(256)) * (3 * one_i2cp_read // 256)  # three reads' worth
    stream = asyncio.StreamReader(limit=RELAY_READ_SIZE)
    stream.feed_data(buffered)
    stream.feed_eof()
    client_in = asyncio.StreamReader()
    client_in.feed_eof()
    to_client, to_stream = RecordingWriter(), RecordingWriter()

    await relay(client_in, to_client, stream, to_stream)  # type: ignore[arg-type]

    assert one_i2cp_read <= RELAY_READ_SIZE
    assert to_client.writes == [buffered]
    assert to_client.eof
