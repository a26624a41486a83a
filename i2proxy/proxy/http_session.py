"""One browser connection to the HTTP proxy: a keep-alive loop of requests (h11 framing)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import h11

from i2proxy.dialer.base import (
    DialError,
    DialTimeout,
    InvalidTarget,
    PeerRefused,
    PeerUnreachable,
    RouterUnavailable,
)
from i2proxy.log import get_logger
from i2proxy.naming.errors import NamingError
from i2proxy.proxy import pages
from i2proxy.proxy.headers import Origin, filter_request_headers, filter_response_headers
from i2proxy.proxy.http import (
    HttpError,
    RequestTarget,
    basic_credentials,
    credentials_ok,
    parse_helper_value,
    parse_request_target,
    split_address_helper,
)
from i2proxy.proxy.routing import HostKind, b32_of, classify_host, same_destination
from i2proxy.proxy.streams import READ_SIZE, SYN_PAYLOAD_TARGET, Closed, collect_window, relay

if TYPE_CHECKING:
    from i2proxy.i2p.destination import Destination
    from i2proxy.proxy.server import ProxyServer

log = get_logger("i2proxy.proxy")

#: The answer to a request without valid proxy credentials (RFC 7617).
PROXY_CHALLENGE = 'Basic realm="i2proxy", charset="UTF-8"'
#: Bound on a site's response head (many Set-Cookie lines are legitimate; h11's default is 16 KiB).
MAX_RESPONSE_HEAD = 64 * 1024
#: Request bodies up to this size wait (briefly) to join the head in the first packets.
SMALL_BODY = 16 * 1024


def _dial_error_to_http(exc: DialError) -> HttpError:
    if isinstance(exc, InvalidTarget):
        return HttpError(400, "Bad Request", f"not a valid I2P destination: {exc}")
    if isinstance(exc, PeerRefused):
        return HttpError(502, "Bad Gateway", "the destination refused the connection")
    if isinstance(exc, RouterUnavailable):
        return HttpError(503, "Service Unavailable", "the I2P router is not connected")
    if isinstance(exc, DialTimeout):
        return HttpError(504, "Gateway Timeout", "the destination did not answer in time")
    if isinstance(exc, PeerUnreachable):
        return HttpError(
            504, "Gateway Timeout", "the destination is unreachable (no lease set found)"
        )
    return HttpError(502, "Bad Gateway", f"could not reach the destination: {exc}")


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


@dataclass
class _Upstream:
    """An open stream to one site, with the HTTP/1.1 client state that frames it."""

    key: tuple[str, int]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    conn: h11.Connection


class HttpSession:
    """One browser connection: a keep-alive loop of requests, each answered locally or relayed."""

    def __init__(self, server: ProxyServer, reader, writer, listener: str) -> None:
        self.server = server
        self.config = server.config
        self.reader = reader
        self.writer = writer
        self.listener = listener
        self.conn = h11.Connection(
            h11.SERVER, max_incomplete_event_size=self.config.max_header_bytes
        )
        self.upstream: _Upstream | None = None

    # -- I/O helpers -----------------------------------------------------------------------------

    async def _next_event(self, timeout: float) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            data = await asyncio.wait_for(self.reader.read(READ_SIZE), remaining)
            self.conn.receive_data(data)

    async def _next_request(self, first: bool) -> Any:
        """The next request head: an idle keep-alive connection may wait ``idle_timeout`` for
        its first byte, but once a head has started it must be complete within
        ``header_timeout`` (no slow-loris holding a client slot for minutes)."""
        loop = asyncio.get_running_loop()
        idle = self.config.header_timeout if first else self.config.idle_timeout
        deadline = loop.time() + idle
        head_started = False
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            if not head_started and self.conn.trailing_data[0]:
                head_started = True
                deadline = min(deadline, loop.time() + self.config.header_timeout)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            data = await asyncio.wait_for(self.reader.read(READ_SIZE), remaining)
            self.conn.receive_data(data)

    async def _write(self, *events: Any) -> None:
        for event in events:
            data = self.conn.send(event)
            if data:
                self.writer.write(data)
        await self.writer.drain()

    async def _page(
        self,
        status: int,
        body: bytes,
        *,
        headers: list[tuple[bytes, bytes]] | None = None,
        close: bool = False,
    ) -> None:
        if self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            raise Closed
        all_headers = list(headers if headers is not None else pages.PAGE_HEADERS)
        all_headers.append((b"content-length", str(len(body)).encode()))
        if close:
            all_headers.append((b"connection", b"close"))
        reason = pages.REASONS.get(status, "").encode()
        await self._write(
            h11.Response(status_code=status, headers=all_headers, reason=reason),
            h11.Data(data=body),
            h11.EndOfMessage(),
        )

    async def _error(self, error: HttpError, close: bool = True) -> None:
        await self._page(
            error.status, pages.error_page(error.status, error.title, error.detail), close=close
        )

    # -- main loop -------------------------------------------------------------------------------

    async def run(self, initial: bytes) -> None:
        if initial:
            self.conn.receive_data(initial)
        first = True
        try:
            while True:
                try:
                    event = await self._next_request(first)
                except TimeoutError:
                    if self.conn.their_state is h11.IDLE and not self.conn.trailing_data[0]:
                        return  # idle keep-alive connection: just close
                    await self._error(HttpError(408, "Request Timeout", "request took too long"))
                    return
                except h11.RemoteProtocolError as exc:
                    status = exc.error_status_hint
                    await self._error(
                        HttpError(status, pages.REASONS.get(status, "Error"), str(exc))
                    )
                    return
                if isinstance(event, h11.ConnectionClosed):
                    return
                if not isinstance(event, h11.Request):
                    return
                first = False
                self.server.stats.http_requests += 1
                keep_going = await self._handle_request(event)
                if not keep_going or self.server.closing:
                    return
                if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
                    self.conn.start_next_cycle()
                else:
                    return
        except h11.RemoteProtocolError as exc:
            # A broken body mid-request (bad chunk framing, oversize): answer if we still can.
            with contextlib.suppress(Closed, ConnectionError):
                status = exc.error_status_hint
                await self._error(HttpError(status, pages.REASONS.get(status, "Error"), str(exc)))
        finally:
            self._drop_upstream()

    async def _handle_request(self, request: h11.Request) -> bool:
        method = request.method.decode("ascii", "replace")
        headers = list(request.headers)
        head_size = len(request.target) + sum(len(n) + len(v) + 4 for n, v in headers)
        if head_size > self.config.max_header_bytes:
            # h11 bounds only incomplete heads; a complete one that arrived in one read is
            # measured here so the limit is the same however the bytes were split.
            await self._error(
                HttpError(431, "Request Header Fields Too Large", "request head too large")
            )
            return False
        host_header = next((v.decode("latin-1") for n, v in headers if n == b"host"), None)
        try:
            target = parse_request_target(method, request.target.decode("latin-1"), host_header)
            kind, host = classify_host(target.host)
            if not target.absolute and self._is_self(kind, target):
                return await self._local(request, target)
            self._check_auth(headers)
            if kind is HostKind.PROXY:
                return await self._local(request, target)
            refusal = _refusal(kind, target.host)
            if refusal is not None:
                self.server.stats.refused += 1
                raise refusal
            if method == "CONNECT":
                await self._connect(host, target)
                return False
            return await self._forward(request, method, kind, host, target)
        except HttpError as error:
            if method == "CONNECT":
                await self._connect_failure(error.status)
                return False
            extra: list[tuple[bytes, bytes]] = []
            if error.status == 407:
                extra = [(b"proxy-authenticate", PROXY_CHALLENGE.encode())]
            await self._page(
                error.status,
                pages.error_page(error.status, error.title, error.detail),
                headers=pages.PAGE_HEADERS + extra,
                close=True,
            )
            return False

    def _is_self(self, kind: HostKind, target: RequestTarget) -> bool:
        """An origin-form request addressed to this proxy's own listening address."""
        own = self.server.addresses.get(self.listener)
        return own is not None and kind in (HostKind.IP, HostKind.LOCAL) and target.port == own[1]

    def _check_auth(self, headers: list[tuple[bytes, bytes]]) -> None:
        users = self.config.users
        if not users:
            return
        value = next((v for n, v in headers if n == b"proxy-authorization"), None)
        creds = basic_credentials(value)
        if creds is None or not credentials_ok(users, *creds):
            self.server.stats.refused += 1
            raise HttpError(
                407, "Proxy Authentication Required", "this proxy needs a user name and password"
            )

    # -- local pages (proxy.i2p) -----------------------------------------------------------------

    async def _local(self, request: h11.Request, target: RequestTarget) -> bool:
        method = request.method.upper()
        body = await self._read_small_body(8192)
        path = urlsplit(target.path).path
        if path == "/proxy.pac" and method in (b"GET", b"HEAD"):
            host, port = self._pac_address(request)
            pac = pages.pac_file(host, port)
            headers = [
                (b"content-type", b"application/x-ns-proxy-autoconfig"),
                (b"cache-control", b"no-cache"),
            ]
            await self._page(200, pac, headers=headers)
            return True
        if path == "/" and method in (b"GET", b"HEAD"):
            stats = dict(vars(self.server.stats))
            stats["uptime_s"] = int(time.time() - stats.pop("started"))
            stats["router"] = self.config.router or "auto-detected"
            await self._page(200, pages.health_page(stats))
            return True
        if path == "/add" and method == b"POST":
            return await self._helper_add(request, body)
        raise HttpError(404, "Not Found", f"the proxy has no page {path}")

    def _pac_address(self, request: h11.Request) -> tuple[str, int]:
        host, port = self.server.addresses.get("http") or self.server.addresses[self.listener]
        if host in ("0.0.0.0", "::"):
            # Reachable on every interface: use the address the browser used to reach us.
            host_header = next((v.decode() for n, v in request.headers if n == b"host"), "")
            host = host_header.rsplit(":", 1)[0] or "127.0.0.1"
        return host, port

    async def _read_small_body(self, limit: int) -> bytes:
        body = bytearray()
        while True:
            event = await self._next_event(self.config.header_timeout)
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > limit:
                    raise HttpError(413, "Content Too Large", "request body too large")
            elif isinstance(event, h11.EndOfMessage):
                return bytes(body)
            else:
                raise Closed

    async def _helper_add(self, request: h11.Request, body: bytes) -> bool:
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        host = form.get("host", "").lower()
        dest_text = form.get("dest", "")
        url = form.get("url", "")
        now = self.server.clock()
        if not self.server.tokens.check(form.get("token", ""), host, dest_text, now):
            raise HttpError(
                403,
                "Forbidden",
                "the form token is missing, wrong or expired; follow the link again",
            )
        kind, _ = classify_host(host)
        if kind is not HostKind.NAME:
            raise HttpError(400, "Bad Request", "the form names no .i2p host")
        destination = parse_helper_value(dest_text)
        save = form.get("choice") == "save"
        if save and not self.server.resolver.can_save(destination):
            raise HttpError(400, "Bad Request", "this address can only be used for this run")
        try:
            self.server.resolver.remember(host, destination, save=save)
        except (ValueError, NamingError) as exc:  # the naming rules refuse name or destination
            raise HttpError(400, "Bad Request", f"cannot store {host}: {exc}") from None
        log.info("address helper accepted", host=host, b32=b32_of(destination), saved=save)
        parts = urlsplit(url)
        if parts.scheme != "http" or (parts.hostname or "").lower() != host:
            url = f"http://{host}/"
        await self._page(303, b"", headers=[(b"location", url.encode())])
        return True

    # -- address helper on a normal request ------------------------------------------------------

    async def _address_helper(self, host: str, target: RequestTarget, value: str) -> None:
        """Answer a request carrying ``?i2paddresshelper=``: redirect or ask; never save."""
        clean_path, _ = split_address_helper(target.path)
        clean = RequestTarget(target.scheme, target.host, target.port, clean_path).url
        destination = parse_helper_value(value)
        known = self.server.resolver.resolve(host)
        if known is not None and same_destination(known, destination):
            await self._page(302, b"", headers=[(b"location", clean.encode())], close=True)
            return
        dest_text = destination if isinstance(destination, str) else destination.to_base64()
        page = pages.helper_page(
            host=host,
            new_b32=b32_of(destination),
            url=clean,
            token=self.server.tokens.issue(host, dest_text, self.server.clock()),
            destination_text=dest_text,
            known_b32=None if known is None else b32_of(known),
            can_save=self.server.resolver.can_save(destination),
        )
        await self._page(200 if known is None else 409, page, close=True)

    # -- relaying ----------------------------------------------------------------------------------

    async def _forward(
        self, request: h11.Request, method: str, kind: HostKind, host: str, target: RequestTarget
    ) -> bool:
        path = target.path
        if kind is not HostKind.PROXY:
            clean_path, helper = split_address_helper(path)
            if helper is not None:
                if self.config.address_helper and kind is HostKind.NAME:
                    await self._address_helper(host, target, helper)
                    return False
                path = clean_path
        destination = self.server.resolver.resolve(host)
        if destination is None:
            self.server.stats.refused += 1
            page = pages.jump_page(host, path, self.config.jump_services)
            await self._page(404, page, close=True)
            return False
        b32 = b32_of(destination)
        origin = Origin(target.scheme, host, target.port)
        user_agent = None if self.config.send_user_agent else self.config.user_agent
        headers = filter_request_headers(
            request.headers, origin=origin, b32_host=b32, user_agent=user_agent
        )
        upstream_request = h11.Request(method=request.method, target=path.encode(), headers=headers)
        if self.conn.they_are_waiting_for_100_continue:
            await self._write(h11.InformationalResponse(status_code=100, headers=[]))
        client, head_and_body, complete = await self._first_bytes(upstream_request)
        key = (b32, target.port)
        up, reused = await self._open_upstream(key, destination, client, head_and_body)
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
                up, _ = await self._open_upstream(key, destination, client, head_and_body)
                ok = await self._exchange(up, complete)
        except BaseException:
            self._release(up)  # the browser went away or the site failed: no stream left open
            raise
        if ok and up.conn.our_state is h11.DONE and up.conn.their_state is h11.DONE:
            up.conn.start_next_cycle()
            self.upstream = up
        else:
            self._release(up)
        return ok

    @staticmethod
    def _replay(events: list[Any]) -> h11.Connection:
        """A client state that has sent ``events`` again (the bytes are the same)."""
        client = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_RESPONSE_HEAD)
        for event in events:
            client.send(event)
        return client

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

    async def _first_bytes(
        self, upstream_request: h11.Request
    ) -> tuple[h11.Connection, bytes, bool]:
        """The upstream request head plus as much of a small body as arrives promptly."""
        client = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_RESPONSE_HEAD)
        self._sent_events: list[Any] = [upstream_request]
        out = bytearray(client.send(upstream_request))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(self.config.syn_window_ms / 1000, 0.05)
        body = 0
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                remaining = deadline - loop.time()
                if body > SMALL_BODY or remaining <= 0:
                    return client, bytes(out), False
                try:
                    data = await asyncio.wait_for(self.reader.read(READ_SIZE), remaining)
                except TimeoutError:
                    return client, bytes(out), False
                self.conn.receive_data(data)
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

    async def _open_upstream(
        self,
        key: tuple[str, int],
        destination: Destination | str,
        client: h11.Connection,
        first: bytes,
    ) -> tuple[_Upstream, bool]:
        """A stream to ``key`` carrying ``first``: the kept-alive one if it is still open."""
        reusable, self.upstream = self.upstream, None
        if reusable is not None:
            if reusable.key == key and not reusable.reader.at_eof():
                reusable.writer.write(first)
                reusable.conn = client  # a fresh client state is what start_next_cycle gives
                self.server.stats.streams_reused += 1
                return reusable, True
            self._release(reusable)
        try:
            reader, writer = await self.server.open_stream(destination, key[1], first)
        except DialError as exc:
            raise _dial_error_to_http(exc) from None
        return _Upstream(key, reader, writer, client), False

    async def _pump_body(self, up: _Upstream) -> None:
        """Stream the rest of a large request body to the site."""
        while True:
            event = await self._next_event(self.config.idle_timeout)
            if isinstance(event, h11.Data):
                up.writer.write(up.conn.send(event))
                await up.writer.drain()
            elif isinstance(event, h11.EndOfMessage):
                up.writer.write(up.conn.send(h11.EndOfMessage()))
                await up.writer.drain()
                return
            else:
                raise Closed

    async def _relay_response(self, up: _Upstream) -> bool:
        """Pass the site's response to the browser; False if the connection cannot go on."""
        started = False
        while True:
            try:
                event = up.conn.next_event()
            except h11.RemoteProtocolError as exc:
                if not started:
                    raise HttpError(502, "Bad Gateway", f"the site sent bad HTTP: {exc}") from None
                return False
            if event is h11.NEED_DATA:
                try:
                    data = await asyncio.wait_for(
                        up.reader.read(READ_SIZE), self.config.idle_timeout
                    )
                except (ConnectionError, OSError):
                    data = b""
                except TimeoutError:
                    if not started:
                        raise HttpError(504, "Gateway Timeout", "the site did not answer") from None
                    return False
                up.conn.receive_data(data)
                continue
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    await self._switch_protocols(up, event)
                    return False
                if event.status_code != 101:
                    await self._write(
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
                await self._write(
                    h11.Response(
                        status_code=event.status_code,
                        headers=filter_response_headers(event.headers),
                        reason=event.reason,
                    )
                )
            elif isinstance(event, h11.Data):
                await self._write(event)
            elif isinstance(event, h11.EndOfMessage):
                await self._write(h11.EndOfMessage())
                return True
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                # PAUSED: the site switched protocols although we never offered an Upgrade.
                if not started:
                    raise HttpError(502, "Bad Gateway", "the site closed without an answer")
                return False

    async def _switch_protocols(self, up: _Upstream, event: h11.InformationalResponse) -> None:
        """The site accepted an Upgrade (WebSocket): pass 101 on, then relay raw bytes."""
        upgrade = next((v for n, v in event.headers if n == b"upgrade"), b"")
        headers = filter_response_headers(event.headers)
        headers += [(b"connection", b"upgrade"), (b"upgrade", upgrade)]
        await self._write(
            h11.InformationalResponse(status_code=101, headers=headers, reason=event.reason)
        )
        browser_rest = self.conn.trailing_data[0]
        site_rest = up.conn.trailing_data[0]
        if browser_rest:
            up.writer.write(browser_rest)
        if site_rest:
            self.writer.write(site_rest)
        await relay(self.reader, self.writer, up.reader, up.writer)

    def _release(self, up: _Upstream) -> None:
        self.server.release_stream(up.writer)

    def _drop_upstream(self) -> None:
        if self.upstream is not None:
            self._release(self.upstream)
            self.upstream = None

    # -- CONNECT ---------------------------------------------------------------------------------

    async def _connect_failure(self, status: int) -> None:
        """A failed CONNECT gets a status line and nothing else (no HTML to misparse as TLS)."""
        reason = pages.REASONS.get(status, "Error")
        challenge = f"proxy-authenticate: {PROXY_CHALLENGE}\r\n" if status == 407 else ""
        self.writer.write(
            f"HTTP/1.1 {status} {reason}\r\n{challenge}"
            "content-length: 0\r\nconnection: close\r\n\r\n".encode()
        )
        await self.writer.drain()

    async def _connect(self, host: str, target: RequestTarget) -> None:
        while True:  # CONNECT has no body; h11 then waits for our 2xx to switch protocols
            event = self.conn.next_event()
            if event is h11.NEED_DATA or isinstance(event, h11.EndOfMessage):
                break
            if event is h11.PAUSED:
                break
        destination = self.server.resolver.resolve(host)
        if destination is None:
            self.server.stats.refused += 1
            await self._connect_failure(404)
            return
        first = self.conn.trailing_data[0]
        window = self.config.syn_window_ms / 1000
        established = b"HTTP/1.1 200 Connection established\r\n\r\n"
        if window > 0:
            self.writer.write(established)
            await self.writer.drain()
            first = await collect_window(self.reader, first, window, SYN_PAYLOAD_TARGET)
        try:
            up_reader, up_writer = await self.server.open_stream(destination, target.port, first)
        except DialError as exc:
            log.info("connect failed", host=host, port=target.port, error=repr(exc))
            if window <= 0:
                await self._connect_failure(_dial_error_to_http(exc).status)
            return
        try:
            if window <= 0:
                self.writer.write(established)
                await self.writer.drain()
            await relay(self.reader, self.writer, up_reader, up_writer)
        finally:
            self.server.release_stream(up_writer)
