"""Streams to clearnet hosts through outproxies: the asyncio edge of ``outproxy.py``.

Every stream to an outproxy comes from the destination of :data:`OUTPROXY_KEY` (the pool's),
so an outproxy never sees the destination used for ``.i2p`` sites. The outproxies are tried in
:class:`~i2proxy.proxy.outproxy.OutproxyChooser` order; one that cannot be reached or refuses
the handshake is marked failed and the next one is tried with the same first bytes (nothing of
them was accepted by the failed one). When every one fails: :class:`NoOutproxyAnswered`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from i2proxy.dialer.base import DialError, DialTimeout, PeerRefused, PeerUnreachable
from i2proxy.dialer.pool import OUTPROXY_KEY
from i2proxy.log import get_logger
from i2proxy.proxy.outproxy import (
    MAX_CONNECT_RESPONSE,
    NoOutproxyAnswered,
    Outproxy,
    OutproxyChooser,
    OutproxyKind,
    OutproxyRefused,
    Socks5Handshake,
    check_connect_response,
    connect_request,
    convert_request_form,
)

if TYPE_CHECKING:
    from i2proxy.proxy.context import SessionContext, StreamPair

log = get_logger("i2proxy.proxy")


class OutproxyDialer:
    """Opens tunnels (CONNECT, SOCKS) and HTTP-request streams through the outproxies."""

    def __init__(
        self, ctx: SessionContext, chooser: OutproxyChooser, clock: Callable[[], float]
    ) -> None:
        self.ctx = ctx
        self.chooser = chooser
        self.clock = clock

    async def open_tunnel(self, host: str, port: int, first: bytes) -> StreamPair:
        """A byte stream to ``host:port`` (a clearnet name) through an outproxy of either kind;
        ``first`` is sent once the outproxy has connected the target."""

        async def handshake(outproxy: Outproxy) -> StreamPair:
            if outproxy.kind is OutproxyKind.HTTP:
                return await self._http_connect(outproxy, host, port, first)
            return await self._socks5_connect(outproxy, host, port, first)

        return await self._each(host, handshake)

    async def open_request_stream(
        self, host: str, port: int, first: bytes, form: OutproxyKind
    ) -> StreamPair:
        """A stream for one HTTP request to ``host:port``: to an HTTP outproxy with the request
        in absolute form in the SYN, or through a SOCKS5 tunnel in origin form. ``first`` is
        written for an outproxy of kind ``form`` (:meth:`kind_for`) and re-formed for the other
        kind should failover reach one."""

        async def dial(outproxy: Outproxy) -> StreamPair:
            data = convert_request_form(first, form, outproxy.kind, host, port)
            if outproxy.kind is OutproxyKind.HTTP:
                return await self._open(outproxy, data)
            return await self._socks5_connect(outproxy, host, port, data)

        return await self._each(host, dial)

    def kind_for(self, host: str) -> OutproxyKind:
        """The kind of outproxy the next request to ``host`` will try first (it decides the
        request's form: absolute URI for HTTP, origin form through a SOCKS5 tunnel)."""
        return self.chooser.order(host, self.clock())[0].kind

    # -- internals ---------------------------------------------------------------------------------

    async def _each(self, host: str, attempt) -> StreamPair:  # type: ignore[no-untyped-def]
        last: DialError | None = None
        for outproxy in self.chooser.order(host, self.clock()):
            try:
                pair = await asyncio.wait_for(attempt(outproxy), self.ctx.config.connect_timeout)
            except TimeoutError:
                last = DialTimeout(f"outproxy {outproxy.host[:12]}… did not answer in time")
            except OutproxyRefused as exc:
                last = exc
            except DialError as exc:
                if not _outproxy_fault(exc):
                    raise  # the target failed, or our own limit: another outproxy cannot help
                last = exc
            else:
                self.chooser.succeeded(host, outproxy)
                return pair
            self.chooser.failed(host, outproxy, self.clock())
            log.info("outproxy failed; trying the next", error=type(last).__name__)
        raise NoOutproxyAnswered(
            f"no outproxy answered: {last}", timed_out=isinstance(last, DialTimeout)
        )

    async def _open(self, outproxy: Outproxy, first: bytes) -> StreamPair:
        target = self.ctx.resolver.resolve(outproxy.host)
        if target is None:
            raise OutproxyRefused(f"the outproxy's name {outproxy.host} is not in the book")
        return await self.ctx.open_stream(target, outproxy.port, first, OUTPROXY_KEY)

    async def _http_connect(
        self, outproxy: Outproxy, host: str, port: int, first: bytes
    ) -> StreamPair:
        reader, writer = await self._open(outproxy, connect_request(host, port))
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if len(head) > MAX_CONNECT_RESPONSE:
                raise OutproxyRefused("the outproxy's answer to CONNECT is too large")
            check_connect_response(head)
        except (asyncio.LimitOverrunError, asyncio.IncompleteReadError, ConnectionError) as exc:
            self.ctx.release_stream(writer)
            raise OutproxyRefused(f"bad CONNECT answer: {type(exc).__name__}") from None
        except BaseException:
            self.ctx.release_stream(writer)
            raise
        if first:
            writer.write(first)
        return reader, writer

    async def _socks5_connect(
        self, outproxy: Outproxy, host: str, port: int, first: bytes
    ) -> StreamPair:
        socks = Socks5Handshake(host, port)
        reader, writer = await self._open(outproxy, socks.greeting())
        try:
            writer.write(socks.method_reply(await reader.readexactly(socks.METHOD_REPLY_SIZE)))
            head = await reader.readexactly(2)
            if head[1] == 0:
                head += await reader.readexactly(3)
            rest = socks.reply_size(head) - len(head)
            socks.connect_reply(head + (await reader.readexactly(rest) if rest > 0 else b""))
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            self.ctx.release_stream(writer)
            raise OutproxyRefused(f"SOCKS5 outproxy closed: {type(exc).__name__}") from None
        except BaseException:
            self.ctx.release_stream(writer)
            raise
        if first:
            writer.write(first)
        return reader, writer


def _outproxy_fault(exc: DialError) -> bool:
    """True for failures of the outproxy itself: unreachable or offline, refused, timed out
    (not our router being away, nor our own limits: the next outproxy would fare no better)."""
    return isinstance(exc, PeerUnreachable | PeerRefused | DialTimeout)


__all__ = ["OutproxyDialer"]
