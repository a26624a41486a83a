"""One SOCKS client connection: handshake (``socks.py``), policy, dial, relay."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from i2proxy.dialer.base import DialError, DialTimeout, PeerRefused, RouterUnavailable
from i2proxy.log import get_logger
from i2proxy.proxy.http import credentials_ok
from i2proxy.proxy.routing import HostKind, classify_host
from i2proxy.proxy.socks import (
    AddressType,
    ConnectRequested,
    CredentialsReceived,
    HandshakeFailed,
    Reply,
    SocksHandshake,
)
from i2proxy.proxy.streams import SYN_PAYLOAD_TARGET, collect_window, relay

if TYPE_CHECKING:
    from i2proxy.proxy.server import ProxyServer

log = get_logger("i2proxy.proxy")


def _dial_error_to_socks(exc: DialError) -> Reply:
    if isinstance(exc, PeerRefused):
        return Reply.CONNECTION_REFUSED
    if isinstance(exc, RouterUnavailable):
        return Reply.NETWORK_UNREACHABLE
    if isinstance(exc, DialTimeout):
        return Reply.TTL_EXPIRED
    return Reply.HOST_UNREACHABLE


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
                    users = self.config.users
                    ok = not users or credentials_ok(users, event.username, event.password)
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
