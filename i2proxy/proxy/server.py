"""asyncio listeners for the HTTP, SOCKS and mixed ports: the thin layer around the codecs.

Each accepted connection runs in its own task under :meth:`ProxyServer._serve`, which owns the
limits (allow-list, client count) and guarantees that no exception escapes and the socket is
always closed. Everything protocol-shaped is decided in ``socks.py``, ``http.py``,
``headers.py`` and ``routing.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import h11

from i2proxy.config import Config, parse_listen
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
    HelperTokens,
    HttpError,
    RequestTarget,
    basic_credentials,
    credentials_ok,
    parse_helper_value,
    parse_request_target,
    split_address_helper,
)
from i2proxy.proxy.routing import (
    HostKind,
    Resolver,
    b32_of,
    classify_host,
    same_destination,
)
from i2proxy.proxy.socks import (
    AddressType,
    ConnectRequested,
    CredentialsReceived,
    HandshakeFailed,
    Reply,
    SocksHandshake,
)

if TYPE_CHECKING:
    from i2proxy.dialer.base import Dialer
    from i2proxy.i2p.destination import Destination
    from i2proxy.proxy.routing import NameBook

log = get_logger("i2proxy.proxy")

#: One streaming packet's worth of payload: once this much is buffered, dial at once.
SYN_PAYLOAD_TARGET = 1730
#: After the first bytes arrived, how long to wait for a second write before dialling.
COALESCE_GAP = 0.01
#: Request bodies up to this size wait (briefly) to join the head in the first packets.
SMALL_BODY = 16 * 1024
_READ = 64 * 1024


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


def _dial_error_to_socks(exc: DialError) -> Reply:
    if isinstance(exc, PeerRefused):
        return Reply.CONNECTION_REFUSED
    if isinstance(exc, RouterUnavailable):
        return Reply.NETWORK_UNREACHABLE
    if isinstance(exc, DialTimeout):
        return Reply.TTL_EXPIRED
    return Reply.HOST_UNREACHABLE


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
class Stats:
    started: float = field(default_factory=time.time)
    clients: int = 0
    connections: int = 0
    http_requests: int = 0
    socks_connects: int = 0
    streams_opened: int = 0
    streams_reused: int = 0
    #: Streams whose SYN carried the client's first bytes (native backend; SAM cannot).
    first_bytes_in_syn: int = 0
    refused: int = 0
    #: Connection tasks that ended in an unexpected exception (a bug: should stay 0).
    internal_errors: int = 0


class _Closed(Exception):
    """The browser or the SOCKS client went away; nothing to answer."""


class ProxyServer:
    """The HTTP, SOCKS and mixed listeners of one i2proxy instance."""

    def __init__(
        self,
        config: Config,
        dialer: Dialer,
        book: NameBook | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.dialer = dialer
        self.book = book
        self.resolver = Resolver(book)
        self.tokens = HelperTokens()
        self.stats = Stats()
        self.clock = clock
        #: Actual bound addresses by listener name ("http", "socks", "mixed").
        self.addresses: dict[str, tuple[str, int]] = {}
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._allow = [ipaddress.ip_network(c, strict=False) for c in config.allow]
        self._closing = False

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self.config.check_exposure()
        for name, value, handler in (
            ("http", self.config.http_listen, self._handle_http),
            ("socks", self.config.socks_listen, self._handle_socks),
            ("mixed", self.config.mixed_listen, self._handle_mixed),
        ):
            if not value:
                continue
            host, port = parse_listen(value, f"{name}_listen")

            def client_connected(r: asyncio.StreamReader, w: asyncio.StreamWriter, h=handler):
                self._spawn(r, w, h)

            server = await asyncio.start_server(client_connected, host, port, limit=_READ)
            self._servers.append(server)
            sockname = server.sockets[0].getsockname()
            self.addresses[name] = (sockname[0], sockname[1])
            log.info("listening", listener=name, address=f"{sockname[0]}:{sockname[1]}")

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting, let running exchanges finish for ``grace`` seconds, then close all."""
        self._closing = True
        for server in self._servers:
            server.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2.0)
        for writer in list(self._writers):
            writer.close()

    def _spawn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler) -> None:
        task = asyncio.create_task(self._serve(reader, writer, handler))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader, writer, handler) -> None:
        """Run one client connection; nothing raised by a client ever leaves this function."""
        self.stats.connections += 1
        self._writers.add(writer)
        peer = writer.get_extra_info("peername")
        counted = False
        try:
            if not self._peer_allowed(peer):
                self.stats.refused += 1
                log.warning("client refused by allow-list", peer=str(peer))
                await _linger(reader, writer)
                return
            if self.stats.clients >= self.config.max_clients or self._closing:
                self.stats.refused += 1
                await self._refuse_busy(reader, writer, handler)
                await _linger(reader, writer)
                return
            self.stats.clients += 1
            counted = True
            await handler(reader, writer)
        except (_Closed, ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            self.stats.internal_errors += 1
            log.exception("connection task failed", peer=str(peer))
        finally:
            if counted:
                self.stats.clients -= 1
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2.0)

    def _peer_allowed(self, peer: Any) -> bool:
        if not self._allow:
            return True
        try:
            address = ipaddress.ip_address(peer[0].split("%", 1)[0])
        except (TypeError, ValueError, IndexError):
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in net for net in self._allow)

    async def _refuse_busy(self, reader, writer, handler) -> None:
        """Too many clients: answer in the client's protocol, then close."""
        kind = "http" if handler == self._handle_http else None
        if kind is None:
            first = await asyncio.wait_for(reader.read(1), 2.0)
            kind = {b"\x05": "socks5", b"\x04": "socks4"}.get(first[:1], "http")
        if kind == "socks5":
            writer.write(b"\x05\xff")
        elif kind == "socks4":
            writer.write(bytes([0, 91, 0, 0, 0, 0, 0, 0]))
        else:
            body = pages.error_page(503, "Service Unavailable", "too many clients; retry later")
            writer.write(
                b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 5\r\nconnection: close\r\n"
                b"content-type: text/html; charset=utf-8\r\ncontent-length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
        await writer.drain()

    async def _handle_mixed(self, reader, writer) -> None:
        first = await asyncio.wait_for(reader.read(_READ), self.config.handshake_timeout)
        if not first:
            return
        if first[0] in (4, 5):
            await self._handle_socks(reader, writer, first)
        elif 0x41 <= first[0] <= 0x5A:
            await self._handle_http(reader, writer, first, listener="mixed")
        # Anything else is neither protocol: close without a word.

    async def _handle_http(self, reader, writer, initial: bytes = b"", listener="http") -> None:
        await HttpSession(self, reader, writer, listener).run(initial)

    async def _handle_socks(self, reader, writer, initial: bytes = b"") -> None:
        await SocksSession(self, reader, writer).run(initial)

    # -- shared helpers ------------------------------------------------------------------------

    async def open_stream(
        self, target: Destination | str, port: int, initial_data: bytes
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await self.dialer.open_stream(
            target, port, initial_data, timeout=self.config.connect_timeout
        )
        self.stats.streams_opened += 1
        stream_stats = writer.get_extra_info("stream_stats")
        if initial_data and getattr(stream_stats, "initial_data_in_syn", False):
            self.stats.first_bytes_in_syn += 1
        self._writers.add(writer)
        return reader, writer

    def release_stream(self, writer: asyncio.StreamWriter) -> None:
        self._writers.discard(writer)
        with contextlib.suppress(Exception):
            writer.close()


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Half-close and swallow what the client still sends, so it sees our answer, not a RST."""
    with contextlib.suppress(Exception):
        if writer.can_write_eof():
            writer.write_eof()
        await asyncio.wait_for(reader.read(_READ), 1.0)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close the other side so the peer sees the end too."""
    try:
        while data := await reader.read(_READ):
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


_WRONG_PORT_BODY = (
    b"This is i2proxy's SOCKS port. Configure it as a SOCKS5 proxy (with remote DNS), or use the "
    b"HTTP proxy port (default 4444) as an HTTP proxy.\n"
)
_WRONG_PORT_REPLY = (
    b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: "
    + str(len(_WRONG_PORT_BODY)).encode()
    + b"\r\n\r\n"
    + _WRONG_PORT_BODY
)


class SocksSession:
    """One SOCKS client: handshake, policy, dial with the first bytes in the SYN, relay."""

    def __init__(self, server: ProxyServer, reader, writer) -> None:
        self.server = server
        self.config = server.config
        self.reader = reader
        self.writer = writer

    async def run(self, initial: bytes) -> None:
        handshake = SocksHandshake(require_auth=bool(self.config.users))
        deadline = asyncio.get_running_loop().time() + self.config.handshake_timeout
        if not initial:
            initial = await asyncio.wait_for(self.reader.read(4096), self.config.handshake_timeout)
        if initial[:1].isalpha():
            # A browser pointed at the SOCKS port as if it were an HTTP proxy: say so.
            await self._send(_WRONG_PORT_REPLY)
            return
        events = handshake.receive_data(initial) if initial else []
        while True:
            for event in events:
                if isinstance(event, HandshakeFailed):
                    await self._send(handshake.data_to_send())
                    log.info("socks handshake refused", reason=event.reason)
                    return
                if isinstance(event, CredentialsReceived):
                    ok = credentials_ok(self.config.users, event.username, event.password)
                    if not ok:
                        self.server.stats.refused += 1
                    more = handshake.accept_credentials(ok)
                    events = more
                    break
                if isinstance(event, ConnectRequested):
                    await self._send(handshake.data_to_send())
                    await self._connect(handshake, event)
                    return
            else:
                await self._send(handshake.data_to_send())
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    return
                data = await asyncio.wait_for(self.reader.read(4096), remaining)
                if not data:
                    return
                events = handshake.receive_data(data)
                continue
            await self._send(handshake.data_to_send())
            if handshake.failed:
                return

    async def _send(self, data: bytes) -> None:
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def _connect(self, handshake: SocksHandshake, request: ConnectRequested) -> None:
        self.server.stats.socks_connects += 1
        kind, host = classify_host(request.host)
        if request.address_type is not AddressType.DOMAIN:
            # An IP address cannot name an I2P destination; SOCKS5 says so with "address type
            # not supported" (SOCKS4 only knows "rejected").
            code = Reply.ADDRESS_TYPE_NOT_SUPPORTED
        elif kind in (HostKind.B32, HostKind.NAME):
            code = None
        elif kind is HostKind.INVALID:
            code = Reply.HOST_UNREACHABLE
        else:  # clearnet, IP written as a name, localhost, proxy.i2p: no outproxy, no local
            code = Reply.NOT_ALLOWED
        target = self.server.resolver.resolve(host) if code is None else None
        if code is None and target is None:
            code = Reply.HOST_UNREACHABLE  # an .i2p name missing from the address book
        if code is not None:
            self.server.stats.refused += 1
            log.info("socks connect refused", host=request.host, port=request.port, reply=code.name)
            await self._send(handshake.reply_failure(code))
            return
        assert target is not None
        window = self.config.syn_window_ms / 1000
        first = handshake.take_trailing_data()
        if window > 0:
            # Java-style connect delay: say "connected" now so the client sends its first
            # bytes, and put them in the SYN. A dial failure then shows as a close.
            await self._send(handshake.reply_success())
            first = await collect_window(self.reader, first, window, SYN_PAYLOAD_TARGET)
        try:
            up_reader, up_writer = await self.server.open_stream(target, request.port, first)
        except DialError as exc:
            log.info("socks dial failed", host=host, port=request.port, error=repr(exc))
            if window <= 0:
                await self._send(handshake.reply_failure(_dial_error_to_socks(exc)))
            return
        try:
            if window <= 0:
                await self._send(handshake.reply_success())
            await relay(self.reader, self.writer, up_reader, up_writer)
        finally:
            self.server.release_stream(up_writer)


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
            data = await asyncio.wait_for(self.reader.read(_READ), remaining)
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
            raise _Closed
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
                timeout = self.config.header_timeout if first else self.config.idle_timeout
                try:
                    event = await self._next_event(timeout)
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
                if not keep_going or self.server._closing:
                    return
                if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
                    self.conn.start_next_cycle()
                else:
                    return
        except h11.RemoteProtocolError as exc:
            # A broken body mid-request (bad chunk framing, oversize): answer if we still can.
            with contextlib.suppress(_Closed, ConnectionError):
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
                extra = [(b"proxy-authenticate", b'Basic realm="i2proxy", charset="UTF-8"')]
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
                raise _Closed

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
        client = h11.Connection(h11.CLIENT)
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
        client = h11.Connection(h11.CLIENT)
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
                    data = await asyncio.wait_for(self.reader.read(_READ), remaining)
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
                raise _Closed

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
                raise _Closed

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
                    data = await asyncio.wait_for(up.reader.read(_READ), self.config.idle_timeout)
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
        self.writer.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode()
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
