"""The browser side of one HTTP proxy connection: h11 server state, reads with deadlines, pages."""

from __future__ import annotations

import asyncio
from typing import Any

import h11

from i2proxy.proxy import pages
from i2proxy.proxy.http import HttpError
from i2proxy.proxy.streams import Closed, read_before


class Browser:
    """h11's server half over one client socket: what the request loop, the relay and the
    local pages read from and write to."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, max_head: int
    ):
        self.reader = reader
        self.writer = writer
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head)

    async def next_event(self, timeout: float) -> Any:
        """The next h11 event, reading as needed for at most ``timeout`` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while (event := self.conn.next_event()) is h11.NEED_DATA:
            self.conn.receive_data(await read_before(self.reader, deadline))
        return event

    async def next_request(self, idle: float, header_timeout: float) -> Any:
        """The next request head: an idle keep-alive connection may wait ``idle`` seconds for
        its first byte, but once a head has started it must be complete within
        ``header_timeout`` (no slow-loris holding a client slot for minutes)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + idle
        head_started = False
        while (event := self.conn.next_event()) is h11.NEED_DATA:
            if not head_started and self.conn.trailing_data[0]:
                head_started = True
                deadline = min(deadline, loop.time() + header_timeout)
            self.conn.receive_data(await read_before(self.reader, deadline))
        return event

    async def write(self, *events: Any) -> None:
        for event in events:
            data = self.conn.send(event)
            if data:
                self.writer.write(data)
        await self.writer.drain()

    async def write_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def page(
        self,
        status: int,
        body: bytes,
        *,
        headers: list[tuple[bytes, bytes]] | None = None,
        close: bool = False,
    ) -> None:
        """A whole response made by the proxy (``PAGE_HEADERS`` unless ``headers`` given)."""
        if self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            raise Closed
        all_headers = list(headers if headers is not None else pages.PAGE_HEADERS)
        all_headers.append((b"content-length", str(len(body)).encode()))
        if close:
            all_headers.append((b"connection", b"close"))
        reason = pages.REASONS.get(status, "").encode()
        await self.write(
            h11.Response(status_code=status, headers=all_headers, reason=reason),
            h11.Data(data=body),
            h11.EndOfMessage(),
        )

    async def error(
        self,
        error: HttpError,
        *,
        close: bool = True,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        body = pages.error_page(error.status, error.title, error.detail)
        await self.page(error.status, body, headers=pages.PAGE_HEADERS + (extra or []), close=close)
