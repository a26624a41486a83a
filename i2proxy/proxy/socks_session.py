"""One SOCKS client connection: handshake (``socks.py``), policy, dial, relay."""

from __future__ import annotations

import asyncio

from i2proxy.dialer.base import (
    DialError,
    DialTimeout,
    LocalLimitReached,
    PeerRefused,
    RouterUnavailable,
)
from i2proxy.log import get_logger
from i2proxy.proxy import pages
from i2proxy.proxy.context import ClientSlot, SessionContext
from i2proxy.proxy.http import credentials_ok
from i2proxy.proxy.isolation import Isolation, socks_key
from i2proxy.proxy.outproxy import NoOutproxyAnswered, OutproxyTargetFailed, is_clearnet_name
from i2proxy.proxy.routing import HostKind, classify_host
from i2proxy.proxy.socks import (
    AddressType,
    ConnectRequested,
    CredentialsReceived,
    HandshakeFailed,
    Reply,
    SocksHandshake,
    UdpAssociateRequested,
)
from i2proxy.proxy.socks_udp import serve_udp_association
from i2proxy.proxy.streams import Dial, read_before, tunnel

log = get_logger("i2proxy.proxy")


def _dial_error_to_socks(exc: DialError) -> Reply:
    if isinstance(exc, OutproxyTargetFailed):
        return Reply(exc.socks_code)  # the outproxy's own word about the target
    if isinstance(exc, NoOutproxyAnswered):
        return Reply.TTL_EXPIRED if exc.timed_out else Reply.NETWORK_UNREACHABLE
    if isinstance(exc, PeerRefused):
        return Reply.CONNECTION_REFUSED
    if isinstance(exc, RouterUnavailable):
        return Reply.NETWORK_UNREACHABLE
    if isinstance(exc, DialTimeout):
        return Reply.TTL_EXPIRED
    if isinstance(exc, LocalLimitReached):
        return Reply.GENERAL_FAILURE
    return Reply.HOST_UNREACHABLE


_WRONG_PORT_REPLY = pages.response_bytes(
    400,
    b"This is i2proxy's SOCKS port. Configure it as a SOCKS5 proxy (with remote DNS), or use the "
    b"HTTP proxy port (default 4444) as an HTTP proxy.\n",
    [(b"content-type", b"text/plain; charset=utf-8")],
)


class SocksSession:
    """One SOCKS client: handshake, policy, dial with the first bytes in the SYN, relay."""

    def __init__(
        self, ctx: SessionContext, reader, writer, slot: ClientSlot, listener: str = "socks"
    ) -> None:
        self.ctx = ctx
        self.slot = slot
        self.config = ctx.config
        self.reader = reader
        self.writer = writer
        self.listener = listener
        #: RFC 1929 user name and password, once accepted: the isolation token.
        self.credentials: tuple[str, str] | None = None

    async def run(self, initial: bytes) -> None:
        handshake = SocksHandshake(
            require_auth=bool(self.config.users),
            prefer_credentials=self.ctx.isolation(self.listener) is not Isolation.NONE,
        )
        deadline = asyncio.get_running_loop().time() + self.config.handshake_timeout
        if not initial:
            initial = await read_before(self.reader, deadline, 4096)
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
                        self.ctx.stats.refused += 1
                    else:
                        self.credentials = (event.username, event.password)
                    more = handshake.accept_credentials(ok)
                    events = more
                    break
                if isinstance(event, ConnectRequested):
                    await self._send(handshake.data_to_send())
                    if not self.slot.admit():
                        await self._send(handshake.reply_failure(Reply.GENERAL_FAILURE))
                        return
                    await self._connect(handshake, event)
                    return
                if isinstance(event, UdpAssociateRequested):
                    await self._send(handshake.data_to_send())
                    if not self.slot.admit():
                        await self._send(handshake.reply_failure(Reply.GENERAL_FAILURE))
                        return
                    await self._associate(handshake, event)
                    return
            else:
                await self._send(handshake.data_to_send())
                try:
                    data = await read_before(self.reader, deadline, 4096)
                except TimeoutError:
                    return
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

    async def _associate(self, handshake: SocksHandshake, request: UdpAssociateRequested) -> None:
        async def reply(bind: tuple[str, int] | None, error: DialError | None) -> None:
            if error is not None:
                log.info("socks udp associate refused", error=repr(error))
                await self._send(handshake.reply_failure(_dial_error_to_socks(error)))
            else:
                await self._send(handshake.reply_success(bind))

        await serve_udp_association(
            self.ctx, self.reader, self.writer, (request.host, request.port), reply
        )

    async def _connect(self, handshake: SocksHandshake, request: ConnectRequested) -> None:
        self.ctx.stats.socks_connects += 1
        kind, host = classify_host(request.host)
        if request.address_type is not AddressType.DOMAIN:
            # An IP address cannot name an I2P destination; SOCKS5 says so with "address type
            # not supported" (SOCKS4 only knows "rejected").
            code = Reply.ADDRESS_TYPE_NOT_SUPPORTED
        elif kind in (HostKind.B32, HostKind.NAME):
            code = None
        elif kind is HostKind.INVALID:
            code = Reply.HOST_UNREACHABLE
        elif kind is HostKind.CLEARNET and self.ctx.outproxies is not None:
            if not is_clearnet_name(host):
                code = Reply.HOST_UNREACHABLE
            else:  # the outproxy resolves the name; we never do
                await self._through_outproxy(handshake, host, request.port)
                return
        else:  # clearnet without outproxy, IP written as a name, localhost, proxy.i2p
            code = Reply.NOT_ALLOWED
        target = self.ctx.resolver.resolve(host) if code is None else None
        if code is None and target is None:
            code = Reply.HOST_UNREACHABLE  # an .i2p name missing from the address book
        if code is not None:
            self.ctx.stats.refused += 1
            # Visited (or background-tried) names are not for the default log level.
            log.info("socks connect refused", reply=code.name)
            log.debug("socks connect refused", host=request.host, port=request.port)
            await self._send(handshake.reply_failure(code))
            return
        assert target is not None
        key = socks_key(
            self.ctx.isolation(self.listener),
            credentials=self.credentials,
            user_id=request.user_id,
            users_configured=bool(self.config.users),
        )

        async def dial(first: bytes):
            return await self.ctx.open_stream(target, request.port, first, key)

        await self._tunnel(handshake, dial)

    async def _through_outproxy(self, handshake: SocksHandshake, host: str, port: int) -> None:
        """A clearnet name: a tunnel through the outproxies (``outproxy_dial.py``)."""
        outproxies = self.ctx.outproxies
        assert outproxies is not None

        async def dial(first: bytes):
            return await outproxies.open_tunnel(host, port, first)

        await self._tunnel(handshake, dial)

    async def _tunnel(self, handshake: SocksHandshake, dial: Dial) -> None:
        async def accept() -> None:
            await self._send(handshake.reply_success())

        async def refuse(exc: DialError) -> None:
            await self._send(handshake.reply_failure(_dial_error_to_socks(exc)))

        await tunnel(
            self.reader,
            self.writer,
            self.slot,
            first=handshake.take_trailing_data(),
            window=self.config.syn_window_ms / 1000,
            dial=dial,
            release=self.ctx.release_stream,
            accept=accept,
            refuse=refuse,
        )
