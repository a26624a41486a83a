"""Relaying one HTTP request to an eepsite and its response back, with stream keep-alive.

The I2P stream of the last exchange stays open for the next request to the same destination
and port; a request on a reused stream that the site had already closed is replayed once on a
fresh one (it was complete, so nothing is lost). A safe request (GET, HEAD, OPTIONS, TRACE)
whose answer was lost at the stream's open (``ReplyLost``) is sent once more as well; RFC 9110
9.2.2 lets a proxy repeat only such requests, because the first one did reach the site.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import h11

from i2proxy.dialer.base import (
    DestinationOffline,
    DialError,
    DialTimeout,
    InvalidTarget,
    LocalLimitReached,
    PeerRefused,
    PeerUnreachable,
    ReplyLost,
    RouterUnavailable,
)
from i2proxy.log import get_logger
from i2proxy.proxy import pages
from i2proxy.proxy.context import ClientSlot, SessionContext
from i2proxy.proxy.headers import filter_response_headers
from i2proxy.proxy.http import HttpError
from i2proxy.proxy.http_browser import Browser
from i2proxy.proxy.isolation import Key
from i2proxy.proxy.outproxy import NoOutproxyAnswered, OutproxyTargetFailed
from i2proxy.proxy.streams import RELAY_READ_SIZE, Closed, Dial, read_before, relay

if TYPE_CHECKING:
    from i2proxy.i2p.destination import Destination

log = get_logger("i2proxy.proxy")

#: Bound on a site's response head (many Set-Cookie lines are legitimate; h11's default is 16 KiB).
MAX_RESPONSE_HEAD = 64 * 1024
#: Request bodies up to this size wait (briefly) to join the head in the first packets.
SMALL_BODY = 16 * 1024
#: Methods without side effects (RFC 9110 9.2.1): sent again once if the open lost the answer.
SAFE_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE"})


def dial_error_to_http(exc: DialError) -> HttpError:
    if isinstance(exc, NoOutproxyAnswered):
        status, title = (504, "Gateway Timeout") if exc.timed_out else (502, "Bad Gateway")
        return HttpError(status, title, f"No outproxy could be reached over I2P ({exc}).")
    if isinstance(exc, OutproxyTargetFailed):
        status, title = (504, "Gateway Timeout") if exc.socks_code == 6 else (502, "Bad Gateway")
        return HttpError(status, title, f"The outproxy could not reach the site ({exc}).")
    if isinstance(exc, InvalidTarget):
        return HttpError(400, "Bad Request", f"not a valid I2P destination: {exc}")
    if isinstance(exc, PeerRefused):
        return HttpError(502, "Bad Gateway", "the destination refused the connection")
    if isinstance(exc, RouterUnavailable):
        return HttpError(503, "Service Unavailable", "the I2P router is not connected")
    if isinstance(exc, LocalLimitReached):
        return HttpError(503, "Service Unavailable", f"i2proxy is at its limit: {exc}")
    if isinstance(exc, DialTimeout):
        return HttpError(504, "Gateway Timeout", "the destination did not answer in time")
    if isinstance(exc, DestinationOffline):
        return HttpError(504, "Gateway Timeout", pages.OFFLINE_DETAIL)
    if isinstance(exc, ReplyLost):
        return HttpError(
            502,
            "Bad Gateway",
            "the site's answer was lost on its way through I2P; the request did reach the site, "
            "so send it again only if that is safe (a form, say, would be submitted twice)",
        )
    if isinstance(exc, PeerUnreachable):
        return HttpError(504, "Gateway Timeout", f"the destination is unreachable: {exc}")
    return HttpError(502, "Bad Gateway", f"could not reach the destination: {exc}")


@dataclass
class _Upstream:
    """An open stream to one site, with the HTTP/1.1 client state that frames it."""

    #: (b32, port, isolation key): a stream is reused only by requests of the same key.
    key: tuple[Any, ...]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    conn: h11.Connection
    #: False once the site sent something that makes the next exchange on it untrustworthy.
    reusable: bool = True


class UpstreamRelay:
    """One browser connection's upstream side: at most one kept-alive stream at a time."""

    def __init__(self, ctx: SessionContext, browser: Browser, slot: ClientSlot) -> None:
        self.ctx = ctx
        self.config = ctx.config
        self.browser = browser
        #: Holds the open stream, so an evicted idle connection's stream is aborted with it.
        self.slot = slot
        self.upstream: _Upstream | None = None
        self._sent_events: list[Any] = []
        self._dial: Dial | None = None

    async def forward(
        self,
        upstream_request: h11.Request,
        key: tuple[str, int],
        destination: Destination | str | None,
        isolation: Key | None = None,
        dial: Dial | None = None,
    ) -> bool:
        """Send the request (its body read from the browser) and relay the response, from the
        destination of ``isolation``; a kept-alive stream is reused only for the same key.
        ``dial`` (given the first bytes) replaces the dial to ``destination``: outproxies.

        True when both connections may serve another request."""
        key = (*key, isolation)
        self._dial = dial
        if self.browser.conn.they_are_waiting_for_100_continue:
            await self.browser.write(h11.InformationalResponse(status_code=100, headers=[]))
        client, head_and_body, complete = await self._first_bytes(upstream_request)
        safe = complete and upstream_request.method in SAFE_METHODS
        up, reused = await self._open(key, destination, client, head_and_body, safe=safe)
        try:
            try:
                ok = await self._exchange(up, complete)
            except HttpError:
                if not (reused and complete):
                    raise
                # The site had closed the idle stream we reused before answering: send the
                # request once more on a fresh stream (it was complete, nothing is lost).
                self._release(up)
                client = self._replay(self._sent_events)
                up, _ = await self._open(key, destination, client, head_and_body, safe=safe)
                ok = await self._exchange(up, complete)
        except BaseException:
            self._release(up)  # the browser went away or the site failed: no stream left open
            raise
        if ok and up.reusable and up.conn.our_state is h11.DONE and up.conn.their_state is h11.DONE:
            up.conn.start_next_cycle()
            self.upstream = up
        else:
            self._release(up)
        return ok

    def close(self) -> bool:
        """Release the kept-alive stream; True if there was one."""
        if self.upstream is None:
            return False
        self._release(self.upstream)
        self.upstream = None
        return True

    # -- sending -----------------------------------------------------------------------------------

    @staticmethod
    def _replay(events: list[Any]) -> h11.Connection:
        """A client state that has sent ``events`` again (the bytes are the same)."""
        client = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_RESPONSE_HEAD)
        for event in events:
            client.send(event)
        return client

    async def _first_bytes(
        self, upstream_request: h11.Request
    ) -> tuple[h11.Connection, bytes, bool]:
        """The upstream request head plus as much of a small body as arrives promptly."""
        client = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_RESPONSE_HEAD)
        self._sent_events = [upstream_request]
        out = bytearray(client.send(upstream_request))
        browser = self.browser.conn
        deadline = asyncio.get_running_loop().time() + max(self.config.syn_window_ms / 1000, 0.05)
        body = 0
        while True:
            event = browser.next_event()
            if event is h11.NEED_DATA:
                if body > SMALL_BODY:
                    return client, bytes(out), False
                try:
                    browser.receive_data(await read_before(self.browser.reader, deadline))
                except TimeoutError:
                    return client, bytes(out), False
                continue
            if isinstance(event, h11.Data):
                body += len(event.data)
                self._sent_events.append(event)
                out += client.send(event)
            elif isinstance(event, h11.EndOfMessage):
                self._sent_events.append(h11.EndOfMessage())
                out += client.send(h11.EndOfMessage())
                return client, bytes(out), True
            else:
                raise Closed

    async def _open(
        self,
        key: tuple[Any, ...],
        destination: Destination | str | None,
        client: h11.Connection,
        first: bytes,
        *,
        safe: bool = False,
    ) -> tuple[_Upstream, bool]:
        """A stream to ``key`` carrying ``first``: the kept-alive one if it is still open.

        ``safe``: ``first`` is a whole request that may be sent twice (see :data:`SAFE_METHODS`).
        """
        reusable, self.upstream = self.upstream, None
        if reusable is not None:
            if reusable.key == key and not reusable.reader.at_eof():
                reusable.writer.write(first)
                reusable.conn = client  # a fresh client state is what start_next_cycle gives
                self.ctx.stats.streams_reused += 1
                return reusable, True
            self._release(reusable)
        try:
            try:
                reader, writer = await self._dial_fresh(key, destination, first)
            except ReplyLost:
                if not safe:
                    raise
                self.ctx.stats.requests_repeated += 1
                log.info("request sent again: the answer was lost at the stream's open")
                reader, writer = await self._dial_fresh(key, destination, first)
        except DialError as exc:
            raise dial_error_to_http(exc) from None
        self.slot.streams.add(writer)
        return _Upstream(key, reader, writer, client), False

    async def _dial_fresh(
        self, key: tuple[Any, ...], destination: Destination | str | None, first: bytes
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._dial is not None:
            return await self._dial(first)
        assert destination is not None
        return await self.ctx.open_stream(destination, key[1], first, key[2])

    async def _exchange(self, up: _Upstream, complete: bool) -> bool:
        pump: asyncio.Task[None] | None = None
        if not complete:
            pump = asyncio.create_task(self._pump_body(up))
        try:
            ok = await self._relay_response(up)
        finally:
            if pump is not None and not pump.done():
                pump.cancel()
                ok = False
        if pump is not None and pump.done() and not pump.cancelled() and pump.exception():
            ok = False
        return ok

    async def _pump_body(self, up: _Upstream) -> None:
        """Stream the rest of a large request body to the site."""
        while True:
            event = await self.browser.next_event(self.config.idle_timeout)
            if isinstance(event, h11.Data):
                up.writer.write(up.conn.send(event))
                await up.writer.drain()
            elif isinstance(event, h11.EndOfMessage):
                up.writer.write(up.conn.send(h11.EndOfMessage()))
                await up.writer.drain()
                return
            else:
                raise Closed

    # -- receiving ---------------------------------------------------------------------------------

    async def _relay_response(self, up: _Upstream) -> bool:
        """Pass the site's response to the browser; False if the connection cannot go on.

        What one read of the stream yields (the head and the first body bytes, the last bytes
        and the end) goes to the browser in one write: a write per h11 event was a send
        syscall each, ~5 per 10 KB response where ~3 do."""
        started = False
        out = bytearray()
        browser = self.browser

        async def flush() -> None:
            if out:
                browser.writer.write(bytes(out))
                out.clear()
                await browser.writer.drain()

        while True:
            try:
                event = up.conn.next_event()
            except h11.RemoteProtocolError as exc:
                if not started:
                    raise HttpError(502, "Bad Gateway", f"the site sent bad HTTP: {exc}") from None
                await flush()
                # h11 quotes the offending bytes of the site's response: debug level only.
                log.info("response cut: the I2P stream ended early", error=type(exc).__name__)
                log.debug("response cut: the I2P stream ended early", error=str(exc)[:80])
                return False
            if event is h11.NEED_DATA:
                await flush()
                deadline = asyncio.get_running_loop().time() + self.config.idle_timeout
                try:
                    data = await read_before(up.reader, deadline, RELAY_READ_SIZE)
                except (ConnectionError, OSError):
                    data = b""
                except DialError as exc:  # the router went away (restart): the stream is gone
                    if not started:
                        raise dial_error_to_http(exc) from None
                    log.info("response cut: the I2P stream ended", error=type(exc).__name__)
                    return False
                except TimeoutError:
                    if not started:
                        raise HttpError(504, "Gateway Timeout", "the site did not answer") from None
                    return False
                up.conn.receive_data(data)
                continue
            if isinstance(event, h11.InformationalResponse):
                await flush()
                if event.status_code == 101:
                    await self._switch_protocols(up, event)
                    return False
                await browser.write(
                    h11.InformationalResponse(
                        status_code=event.status_code,
                        headers=filter_response_headers(event.headers),
                        reason=event.reason,
                    )
                )
                continue
            if isinstance(event, h11.Response):
                if sum(len(n) + len(v) + 4 for n, v in event.headers) > MAX_RESPONSE_HEAD:
                    # h11 bounds incomplete heads only; one that arrived whole is measured here.
                    raise HttpError(502, "Bad Gateway", "the site's response head is too large")
                started = True
                headers = filter_response_headers(event.headers)
                names = {n for n, _ in event.headers}
                if b"transfer-encoding" in names and b"content-length" in names:
                    # RFC 9112 §6.3: Transfer-Encoding wins; an intermediary removes the
                    # Content-Length before forwarding. The stream is not reused after such
                    # a response (the site's framing cannot be trusted).
                    headers = [(n, v) for n, v in headers if n != b"content-length"]
                    up.reusable = False
                out += browser.conn.send(
                    h11.Response(
                        status_code=event.status_code, headers=headers, reason=event.reason
                    )
                )
            elif isinstance(event, h11.Data):
                out += browser.conn.send(event)
            elif isinstance(event, h11.EndOfMessage):
                out += browser.conn.send(h11.EndOfMessage())
                await flush()
                return True
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                # PAUSED: the site switched protocols although we never offered an Upgrade.
                if not started:
                    raise HttpError(502, "Bad Gateway", "the site closed without an answer")
                await flush()
                return False

    async def _switch_protocols(self, up: _Upstream, event: h11.InformationalResponse) -> None:
        """The site accepted an Upgrade (WebSocket): pass 101 on, then relay raw bytes."""
        upgrade = next((v for n, v in event.headers if n == b"upgrade"), b"")
        headers = filter_response_headers(event.headers)
        headers += [(b"connection", b"upgrade"), (b"upgrade", upgrade)]
        await self.browser.write(
            h11.InformationalResponse(status_code=101, headers=headers, reason=event.reason)
        )
        browser_rest = self.browser.conn.trailing_data[0]
        site_rest = up.conn.trailing_data[0]
        if browser_rest:
            up.writer.write(browser_rest)
        if site_rest:
            self.browser.writer.write(site_rest)
        await relay(self.browser.reader, self.browser.writer, up.reader, up.writer)

    def _release(self, up: _Upstream) -> None:
        self.slot.streams.discard(up.writer)
        self.ctx.release_stream(up.writer)
