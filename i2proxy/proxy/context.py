"""What a proxy session may use of the server: settings, names, tokens, counters, streams.

Sessions get a :class:`SessionContext` instead of the :class:`~i2proxy.proxy.server.ProxyServer`
itself, so they depend on this small surface only (and ``server.py`` is the one module that
imports the sessions, never the other way round).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from i2proxy.config import Config
from i2proxy.dialer.base import DialError
from i2proxy.proxy.http import HelperTokens
from i2proxy.proxy.isolation import Isolation, Key
from i2proxy.proxy.routing import Resolver
from i2proxy.proxy.socks_udp import UdpAssociations

if TYPE_CHECKING:
    from i2proxy.dialer.datagrams import DatagramEndpoint
    from i2proxy.i2p.destination import Destination
    from i2proxy.proxy.outproxy_dial import OutproxyDialer

StreamPair = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass
class Stats:
    """Counters shown on the health page (``http://proxy.i2p/``)."""

    started: float = field(default_factory=time.time)
    clients: int = 0
    connections: int = 0
    http_requests: int = 0
    socks_connects: int = 0
    streams_opened: int = 0
    streams_reused: int = 0
    #: Safe HTTP requests sent a second time because the stream's open lost the answer
    #: (``ReplyLost``: a SYN reply lost on first contact with a site).
    requests_repeated: int = 0
    #: Streams whose SYN carried the client's first bytes (native backend; SAM cannot).
    first_bytes_in_syn: int = 0
    refused: int = 0
    #: I2P streams held by client connections right now (SOCKS, CONNECT, kept-alive HTTP).
    streams_open: int = 0
    #: Idle connections closed to make room for a fresh request at ``max_clients`` or at the
    #: stream limit (see :class:`ClientSlot`).
    idle_evicted: int = 0
    #: Kept-alive browser streams closed after ``stream_idle_timeout`` without a request.
    idle_streams_released: int = 0
    #: Connections that have not yet authenticated (no SOCKS request or HTTP head accepted).
    pending: int = 0
    #: Pending connections closed to make room for newer ones, or for taking too long.
    pending_evicted: int = 0
    #: SOCKS5 UDP ASSOCIATE: associations served, datagrams relayed each way, and dropped ones
    #: (IP or clearnet target, fragment, malformed, too large, foreign source, send failed).
    udp_associations: int = 0
    udp_datagrams_sent: int = 0
    udp_datagrams_received: int = 0
    udp_datagrams_dropped: int = 0
    #: Connection tasks that ended in an unexpected exception (a bug: should stay 0).
    internal_errors: int = 0


class ClientSlot:
    """One connection's place at the server: *pending* until its first SOCKS request or HTTP
    head has been accepted (credentials checked), then one of ``max_clients``.

    Pending connections live in a small budget of their own (oldest evicted first), so silent
    or unauthenticated connections never take a slot an authenticated user needs. Admitted
    ones say when they are idle (a tunnel that carries no byte, a browser connection between
    requests) and which I2P streams they hold, so that at a limit the server can close the
    longest-idle one for a fresh request instead of refusing it.
    """

    def __init__(
        self,
        address: str,
        admit: Callable[[ClientSlot], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.address = address
        self.admitted = False
        self._admit = admit
        self._clock = clock
        #: When it last carried a byte or finished a request; None while an exchange is under
        #: way (a request being answered, a UDP association): never idle then.
        self.idle_since: float | None = None
        #: The I2P streams this connection holds (aborted at once if it is evicted).
        self.streams: set[asyncio.StreamWriter] = set()

    def busy(self) -> None:
        """An exchange started: not idle until :meth:`touch`."""
        self.idle_since = None

    def touch(self) -> None:
        """Bytes moved or an exchange ended: idle from now on."""
        self.idle_since = self._clock()

    def admit(self) -> bool:
        """Move to a client slot; False when every one is taken (answer "busy" and close)."""
        if not self.admitted:
            self.admitted = self._admit(self)
        return self.admitted


@dataclass
class SessionContext:
    """The server's services, as one session sees them."""

    config: Config
    resolver: Resolver
    tokens: HelperTokens
    stats: Stats
    #: Monotonic clock (injectable in tests: helper-token expiry).
    clock: Callable[[], float]
    #: Dial ``(target, port, initial_data, key)`` from the destination of isolation ``key``
    #: (``proxy/isolation.py``; None = the shared one); raises ``DialError``. Counted, tracked.
    open_stream: Callable[[Destination | str, int, bytes, Key | None], Awaitable[StreamPair]]
    #: Close a stream from ``open_stream`` and forget it.
    release_stream: Callable[[asyncio.StreamWriter], None]
    #: Actual bound addresses by listener name ("http", "socks", "mixed").
    addresses: dict[str, tuple[str, int]]
    #: True once shutdown began: finish the exchange, take no other.
    closing: Callable[[], bool]
    #: A datagram endpoint on the client destination (SOCKS5 UDP ASSOCIATE); raises
    #: ``DialError`` when the backend has none.
    open_datagram_endpoint: Callable[[], Awaitable[DatagramEndpoint]] = field(
        default=lambda: _no_datagrams()
    )
    #: Open UDP associations per client address (bounded).
    udp_associations: UdpAssociations = field(default_factory=UdpAssociations)
    #: Clearnet hosts go through these (``--outproxy``); None: clearnet is refused.
    outproxies: OutproxyDialer | None = None

    #: The destination pool's counters for the health page (empty without a pool).
    pool_stats: Callable[[], dict[str, int]] = field(default=lambda: {})

    def isolation(self, listener: str) -> Isolation:
        """The isolation mode of a listener ("http", "socks", "mixed")."""
        return Isolation(self.config.isolation.get(listener, "none"))


async def _no_datagrams() -> DatagramEndpoint:
    raise DialError("this router backend carries no datagrams")
