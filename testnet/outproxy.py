"""The test network's outproxy: an HTTP proxy and a SOCKS5 server to a fixed "clearnet".

Published over I2P by the services router's plain server tunnels (``outproxy-http`` on I2P
port 80, ``outproxy-socks`` on 1080), it plays the part of a real outproxy such as
``exit.stormycloud.i2p``: clients reach it only through I2P, and it alone can resolve the
names it serves (``www.example.test``) — from a fixed map, never DNS — so a page fetched from
such a name proves the request went through it.

- HTTP: absolute-form requests (``GET http://www.example.test/ HTTP/1.1``), one per connection
  (sent on as origin-form with ``Connection: close``), and ``CONNECT host:port``.
- SOCKS5: no authentication, ``CONNECT`` to a domain name (ATYP 3). IP addresses are refused
  (reply 2, not allowed) — a client that resolved the name itself did something wrong —
  unknown names get reply 4 (host unreachable), other commands 7.

Test infrastructure, not part of the product. Every head, line and count is bounded; bad input
gets the protocol's error reply and a closed connection. Counters (per kind) are written to a
JSON file so tests can tell which kind of outproxy carried a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from i2proxy.log import get_logger

log = get_logger(__name__)

#: The names only this outproxy resolves, and the port each serves plain HTTP on.
CLEARNET_NAMES = ("www.example.test",)
#: Bound on an HTTP request head.
MAX_HEAD = 16 * 1024
#: How long a client may take to send its head / SOCKS handshake.
HANDSHAKE_TIMEOUT = 30.0
_CHUNK = 64 * 1024


class ProxyRefusal(Exception):
    """The request cannot be served; ``status`` is the HTTP status (or SOCKS5 reply code)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class HostMap:
    """``(name, port)`` → local address: the outproxy's whole view of the "clearnet"."""

    targets: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)

    @classmethod
    def clearnet(cls, local_port: int) -> HostMap:
        """Port 80 of every name in :data:`CLEARNET_NAMES` → the local web server."""
        return cls({(name, 80): ("127.0.0.1", local_port) for name in CLEARNET_NAMES})

    def resolve(self, host: str, port: int) -> tuple[str, int] | None:
        return self.targets.get((host.lower().rstrip("."), port))


# -- HTTP (pure parsing) -------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpRequest:
    method: str
    host: str
    port: int
    #: origin-form path for a forwarded request; "" for CONNECT
    path: str
    version: str
    headers: list[tuple[str, str]]


_REASONS = {400: "Bad Request", 502: "Bad Gateway"}
_HOP_BY_HOP = {"connection", "proxy-connection", "keep-alive", "proxy-authorization", "te"}


def parse_request_head(head: bytes) -> HttpRequest:
    """Parse a proxy request head (ending in CRLF CRLF); ProxyRefusal(400) if unusable."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ProxyRefusal(400, "malformed request line")
    method, target, version = parts
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ProxyRefusal(400, "malformed header line")
        headers.append((name, value.strip()))
    if method == "CONNECT":
        host, sep, port = target.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ProxyRefusal(400, "CONNECT needs host:port")
        return HttpRequest(method, host.strip("[]"), int(port), "", version, headers)
    if not target.lower().startswith("http://"):
        raise ProxyRefusal(400, "a proxy request needs an absolute http:// URI")
    try:
        url = urlsplit(target)
        port = url.port or 80
    except ValueError:
        raise ProxyRefusal(400, "bad URI") from None
    if not url.hostname:
        raise ProxyRefusal(400, "no host in the URI")
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    return HttpRequest(method, url.hostname, port, path, version, headers)


def origin_request(request: HttpRequest) -> bytes:
    """The request as the origin server gets it: origin-form, hop-by-hop headers dropped."""
    lines = [f"{request.method} {request.path} {request.version}"]
    lines += [f"{n}: {v}" for n, v in request.headers if n.lower() not in _HOP_BY_HOP]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def error_response(status: int, reason: str) -> bytes:
    body = f"test outproxy: {reason}\n".encode()
    return (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


# -- SOCKS5 (pure parsing) -----------------------------------------------------------------------

SOCKS_OK, SOCKS_NOT_ALLOWED, SOCKS_HOST_UNREACHABLE = 0, 2, 4
SOCKS_COMMAND_NOT_SUPPORTED, SOCKS_ADDRESS_NOT_SUPPORTED = 7, 8


def socks_reply(code: int) -> bytes:
    return bytes([5, code, 0, 1, 0, 0, 0, 0, 0, 0])


# -- the servers ---------------------------------------------------------------------------------


class Outproxy:
    """Both listeners' connection handlers, the host map and the counters they share."""

    def __init__(self, hosts: HostMap, stats_file: Path | None = None) -> None:
        self.hosts = hosts
        self.stats_file = stats_file
        self.stats = {"http_requests": 0, "http_connects": 0, "socks5_connects": 0, "refused": 0}

    def _count(self, key: str) -> None:
        self.stats[key] += 1
        if self.stats_file is not None:
            tmp = self.stats_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.stats))
            tmp.replace(self.stats_file)

    async def _open(self, host: str, port: int, refuse: Callable[[str], ProxyRefusal]):  # type: ignore[no-untyped-def]
        target = self.hosts.resolve(host, port)
        if target is None:
            raise refuse(f"{host}:{port} is not a name this outproxy knows")
        try:
            return await asyncio.open_connection(*target)
        except OSError as exc:
            raise refuse(f"{host}:{port} does not answer: {exc}") from None

    async def handle_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                    head = await reader.readuntil(b"\r\n\r\n")
                request = parse_request_head(head)
                if request.method == "CONNECT":
                    up_reader, up_writer = await self._open(
                        request.host, request.port, lambda why: ProxyRefusal(502, why)
                    )
                    self._count("http_connects")
                    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                else:
                    up_reader, up_writer = await self._open(
                        request.host, request.port, lambda why: ProxyRefusal(502, why)
                    )
                    self._count("http_requests")
                    up_writer.write(origin_request(request))
            except (asyncio.LimitOverrunError, asyncio.IncompleteReadError, TimeoutError):
                raise ProxyRefusal(400, "incomplete or oversized request head") from None
        except ProxyRefusal as refusal:
            self._count("refused")
            log.info("outproxy refused", kind="http", reason=refusal.reason)
            with contextlib.suppress(ConnectionError):
                writer.write(error_response(refusal.status, refusal.reason))
                await writer.drain()
            writer.close()
            return
        await _splice(reader, writer, up_reader, up_writer)

    async def handle_socks(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                version, count = await reader.readexactly(2)
                methods = await reader.readexactly(count)
                if version != 5 or 0 not in methods:
                    writer.write(b"\x05\xff")  # RFC 1928: no acceptable method, then close
                    await writer.drain()
                    raise ConnectionResetError("no acceptable SOCKS auth method")
                writer.write(b"\x05\x00")
                version, command, _, atyp = await reader.readexactly(4)
                if atyp == 1:
                    await reader.readexactly(4 + 2)
                    raise ProxyRefusal(SOCKS_NOT_ALLOWED, "IP addresses are not served")
                if atyp == 4:
                    await reader.readexactly(16 + 2)
                    raise ProxyRefusal(SOCKS_NOT_ALLOWED, "IP addresses are not served")
                if atyp != 3:
                    raise ProxyRefusal(SOCKS_ADDRESS_NOT_SUPPORTED, "unknown address type")
                (length,) = await reader.readexactly(1)
                host = (await reader.readexactly(length)).decode("ascii", "replace")
                port = int.from_bytes(await reader.readexactly(2), "big")
                if version != 5 or command != 1:
                    raise ProxyRefusal(SOCKS_COMMAND_NOT_SUPPORTED, "only CONNECT")
            up_reader, up_writer = await self._open(
                host, port, lambda why: ProxyRefusal(SOCKS_HOST_UNREACHABLE, why)
            )
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            writer.close()
            return
        except ProxyRefusal as refusal:
            self._count("refused")
            log.info("outproxy refused", kind="socks5", reason=refusal.reason)
            with contextlib.suppress(ConnectionError):
                writer.write(socks_reply(refusal.status))
                await writer.drain()
            writer.close()
            return
        self._count("socks5_connects")
        writer.write(socks_reply(SOCKS_OK))
        await _splice(reader, writer, up_reader, up_writer)


async def _splice(
    a_reader: asyncio.StreamReader,
    a_writer: asyncio.StreamWriter,
    b_reader: asyncio.StreamReader,
    b_writer: asyncio.StreamWriter,
) -> None:
    """Copy both ways until both sides are done; each EOF is passed on as a half-close."""

    async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await src.read(_CHUNK):
                dst.write(chunk)
                await dst.drain()
            if dst.can_write_eof():
                dst.write_eof()

    try:
        await asyncio.gather(copy(a_reader, b_writer), copy(b_reader, a_writer))
    finally:
        a_writer.close()
        b_writer.close()


async def start_outproxy(
    host: str, http_port: int, socks_port: int, clearnet_port: int, stats_file: Path | None
) -> list[asyncio.Server]:
    """Listen for HTTP proxy and SOCKS5 clients on ``host``; return both servers."""
    proxy = Outproxy(HostMap.clearnet(clearnet_port), stats_file)
    return [
        await asyncio.start_server(proxy.handle_http, host, http_port, limit=MAX_HEAD),
        await asyncio.start_server(proxy.handle_socks, host, socks_port),
    ]
