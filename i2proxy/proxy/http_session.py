"""One browser connection to the HTTP proxy: the keep-alive loop of requests and their dispatch.

Each request is refused, answered by :class:`~i2proxy.proxy.http_local.LocalPages`, relayed by
:class:`~i2proxy.proxy.http_relay.UpstreamRelay`, or (CONNECT) turned into a byte tunnel.
"""

from __future__ import annotations

import asyncio
import contextlib

import h11

from i2proxy.dialer.base import DialError
from i2proxy.dialer.pool import OUTPROXY_KEY
from i2proxy.log import get_logger
from i2proxy.proxy import pages
from i2proxy.proxy.context import ClientSlot, SessionContext
from i2proxy.proxy.headers import Origin, filter_request_headers, wire_headers
from i2proxy.proxy.http import (
    HttpError,
    RequestTarget,
    basic_credentials,
    credentials_ok,
    parse_request_target,
    split_address_helper,
)
from i2proxy.proxy.http_browser import Browser
from i2proxy.proxy.http_local import LocalPages
from i2proxy.proxy.http_relay import UpstreamRelay, dial_error_to_http
from i2proxy.proxy.isolation import connect_key, http_key
from i2proxy.proxy.outproxy import is_clearnet_name, request_target
from i2proxy.proxy.routing import HostKind, b32_of, classify_host
from i2proxy.proxy.streams import Closed, Dial, tunnel

log = get_logger("i2proxy.proxy")

#: The answer to a request without valid proxy credentials (RFC 7617).
PROXY_CHALLENGE = 'Basic realm="i2proxy", charset="UTF-8"'


def _refusal(kind: HostKind, host: str) -> HttpError | None:
    """Why a host is refused before anything is resolved or dialled; None if it may proceed."""
    if kind is HostKind.IP:
        return HttpError(403, "Forbidden", f"{host} is an IP address; only .i2p sites are reached")
    if kind is HostKind.LOCAL:
        return HttpError(403, "Forbidden", f"{host} is a local name; only .i2p sites are reached")
    if kind is HostKind.CLEARNET:
        return HttpError(
            403, "Forbidden", f"{host} is not an I2P site and no outproxy is configured"
        )
    if kind is HostKind.INVALID:
        return HttpError(400, "Bad Request", f"{host!r} is not a valid I2P host name")
    return None


def _credentials(headers) -> tuple[str, str] | None:
    """The ``Proxy-Authorization`` Basic pair, if any (checked by ``_check_auth`` when users
    are configured; otherwise only an isolation token)."""
    return basic_credentials(next((v for n, v in headers if n == b"proxy-authorization"), None))


class HttpSession:
    """One browser connection: a keep-alive loop of requests, each answered locally or relayed."""

    def __init__(
        self, ctx: SessionContext, reader, writer, slot: ClientSlot, listener: str
    ) -> None:
        self.ctx = ctx
        self.slot = slot
        self.config = ctx.config
        self.listener = listener
        self.browser = Browser(reader, writer, max_head=self.config.max_header_bytes)
        self.relay = UpstreamRelay(ctx, self.browser, slot)
        self.local = LocalPages(ctx, self.browser, listener)

    async def run(self, initial: bytes) -> None:
        browser = self.browser
        conn = browser.conn
        if initial:
            conn.receive_data(initial)
        first = True
        try:
            while True:
                idle = self.config.header_timeout if first else self.config.idle_timeout
                release = None
                if not first:
                    self.slot.touch()
                    release = asyncio.get_running_loop().call_later(
                        self.config.stream_idle_timeout, self._release_idle_stream
                    )
                try:
                    event = await browser.next_request(idle, self.config.header_timeout)
                except TimeoutError:
                    if conn.their_state is h11.IDLE and not conn.trailing_data[0]:
                        return  # idle keep-alive connection: just close
                    await browser.error(HttpError(408, "Request Timeout", "request took too long"))
                    return
                except h11.RemoteProtocolError as exc:
                    status = exc.error_status_hint
                    await browser.error(
                        HttpError(status, pages.REASONS.get(status, "Error"), str(exc))
                    )
                    return
                finally:
                    if release is not None:
                        release.cancel()
                if not isinstance(event, h11.Request):
                    return  # ConnectionClosed
                first = False
                self.slot.busy()
                self.ctx.stats.http_requests += 1
                keep_going = await self._handle_request(event)
                if not keep_going or self.ctx.closing():
                    return
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    conn.start_next_cycle()
                else:
                    return
        except h11.RemoteProtocolError as exc:
            # A broken body mid-request (bad chunk framing, oversize): answer if we still can.
            with contextlib.suppress(Closed, ConnectionError):
                status = exc.error_status_hint
                await browser.error(HttpError(status, pages.REASONS.get(status, "Error"), str(exc)))
        finally:
            self.relay.close()

    def _release_idle_stream(self) -> None:
        """No request for ``stream_idle_timeout``: give the I2P stream back (the site and the
        stream table need not keep it for a browser that may never ask again); the browser
        connection stays and its next request opens a fresh stream."""
        if self.relay.close():
            self.ctx.stats.idle_streams_released += 1
            log.debug("idle keep-alive stream released", after_s=self.config.stream_idle_timeout)

    async def _handle_request(self, request: h11.Request) -> bool:
        method = request.method.decode("ascii", "replace")
        headers = list(request.headers)
        head_size = len(request.target) + sum(len(n) + len(v) + 4 for n, v in headers)
        if head_size > self.config.max_header_bytes:
            # h11 bounds only incomplete heads; a complete one that arrived in one read is
            # measured here so the limit is the same however the bytes were split.
            await self.browser.error(
                HttpError(431, "Request Header Fields Too Large", "request head too large")
            )
            return False
        names = {n for n, _ in headers}
        if b"content-length" in names and b"transfer-encoding" in names:
            # RFC 9112 §6.1: a server MAY reject such a request and MUST close the connection
            # after it (the two framings are how requests get smuggled past intermediaries).
            await self.browser.error(
                HttpError(400, "Bad Request", "both Content-Length and Transfer-Encoding")
            )
            return False
        host_header = next((v.decode("latin-1") for n, v in headers if n == b"host"), None)
        try:
            target = parse_request_target(method, request.target.decode("latin-1"), host_header)
            kind, host = classify_host(target.host)
            local = kind is HostKind.PROXY or self.local.is_self(kind, target)
            if local and self.config.public_pac and self.local.is_pac(request, target):
                return await self.local.serve(request, target)  # the one page without a login
            self._check_auth(headers)
            if not self.slot.admit():
                raise HttpError(503, "Service Unavailable", "too many clients; retry later")
            if local:
                return await self.local.serve(request, target)
            outproxied = kind is HostKind.CLEARNET and self.ctx.outproxies is not None
            if outproxied and not is_clearnet_name(host):
                raise HttpError(400, "Bad Request", f"{host!r} is not a valid host name")
            refusal = None if outproxied else _refusal(kind, target.host)
            if refusal is not None:
                self.ctx.stats.refused += 1
                raise refusal
            if outproxied:
                return await self._through_outproxy(request, method, host, target)
            if method == "CONNECT":
                await self._connect(host, target, headers)
                return False
            return await self._forward(request, kind, host, target)
        except HttpError as error:
            if method == "CONNECT":
                await self._connect_failure(error.status)
                return False
            extra: list[tuple[bytes, bytes]] = []
            if error.status == 407:
                extra = [(b"proxy-authenticate", PROXY_CHALLENGE.encode())]
            elif error.status == 503:
                extra = [(b"retry-after", b"5")]
            await self.browser.error(error, extra=extra)
            return False

    def _check_auth(self, headers: list[tuple[bytes, bytes]]) -> None:
        users = self.config.users
        if not users:
            return
        value = next((v for n, v in headers if n == b"proxy-authorization"), None)
        creds = basic_credentials(value)
        if creds is None or not credentials_ok(users, *creds):
            self.ctx.stats.refused += 1
            raise HttpError(
                407, "Proxy Authentication Required", "this proxy needs a user name and password"
            )

    async def _forward(
        self, request: h11.Request, kind: HostKind, host: str, target: RequestTarget
    ) -> bool:
        path = target.path
        clean_path, helper = split_address_helper(path)
        if helper is not None:
            if self.config.address_helper and kind is HostKind.NAME:
                await self.local.offer_helper(host, target, helper)
                return False
            path = clean_path
        destination = self.ctx.resolver.resolve(host)
        if destination is None:
            self.ctx.stats.refused += 1
            page = pages.jump_page(host, path, self.config.jump_services)
            await self.browser.page(404, page, close=True)
            return False
        b32 = b32_of(destination)
        origin = Origin(target.scheme, host, target.port)
        user_agent = None if self.config.send_user_agent else self.config.user_agent
        headers = filter_request_headers(
            request.headers, origin=origin, b32_host=b32, user_agent=user_agent
        )
        upstream_request = h11.Request(
            method=request.method, target=path.encode(), headers=wire_headers(headers)
        )
        key = http_key(
            self.ctx.isolation(self.listener),
            target_host=host,
            headers=request.headers,
            credentials=_credentials(request.headers),
            users_configured=bool(self.config.users),
        )
        return await self.relay.forward(upstream_request, (b32, target.port), destination, key)

    async def _through_outproxy(
        self, request: h11.Request, method: str, host: str, target: RequestTarget
    ) -> bool:
        """A clearnet request: CONNECT as a tunnel, anything else as one relayed request, both
        through the outproxies (``outproxy_dial.py``), with the same header filtering as for
        eepsites (the site learns the request, never who sent it)."""
        outproxies = self.ctx.outproxies
        assert outproxies is not None
        if method == "CONNECT":
            self._skip_connect_head()
            await self._tunnel(lambda first: outproxies.open_tunnel(host, target.port, first))
            return False
        kind = outproxies.kind_for(host)
        user_agent = None if self.config.send_user_agent else self.config.user_agent
        headers = filter_request_headers(
            request.headers,
            origin=Origin(target.scheme, host, target.port),
            b32_host=host,
            user_agent=user_agent,
        )
        upstream_request = h11.Request(
            method=request.method,
            target=request_target(kind, host, target.port, target.path).encode("latin-1"),
            headers=wire_headers(headers),
        )

        async def dial(first: bytes):
            return await outproxies.open_request_stream(host, target.port, first, kind)

        key = (f"{kind.value}:{host}", target.port)
        return await self.relay.forward(upstream_request, key, None, OUTPROXY_KEY, dial)

    # -- CONNECT ---------------------------------------------------------------------------------

    async def _connect_failure(self, status: int) -> None:
        """A failed CONNECT gets a status line and nothing else (no HTML to misparse as TLS)."""
        headers = [(b"proxy-authenticate", PROXY_CHALLENGE.encode())] if status == 407 else []
        await self.browser.write_raw(pages.response_bytes(status, b"", headers))

    def _skip_connect_head(self) -> None:
        conn = self.browser.conn
        while True:  # CONNECT has no body; h11 then waits for our 2xx to switch protocols
            event = conn.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED or isinstance(event, h11.EndOfMessage):
                break

    async def _connect(
        self, host: str, target: RequestTarget, headers: list[tuple[bytes, bytes]]
    ) -> None:
        self._skip_connect_head()
        destination = self.ctx.resolver.resolve(host)
        if destination is None:
            self.ctx.stats.refused += 1
            await self._connect_failure(404)
            return

        key = connect_key(
            self.ctx.isolation(self.listener),
            target_host=host,
            credentials=_credentials(headers),
            users_configured=bool(self.config.users),
        )

        async def dial(first: bytes):
            return await self.ctx.open_stream(destination, target.port, first, key)

        await self._tunnel(dial)

    async def _tunnel(self, dial: Dial) -> None:
        """The CONNECT tunnel: 200, then bytes both ways (a failed dial: its status, no body)."""

        async def accept() -> None:
            await self.browser.write_raw(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def refuse(exc: DialError) -> None:
            await self._connect_failure(dial_error_to_http(exc).status)

        await tunnel(
            self.browser.reader,
            self.browser.writer,
            self.slot,
            first=self.browser.conn.trailing_data[0],
            window=self.config.syn_window_ms / 1000,
            dial=dial,
            release=self.ctx.release_stream,
            accept=accept,
            refuse=refuse,
        )
