"""Datagram endpoints: one local I2P port on the client's destination, for either backend.

A ``DatagramEndpoint`` is what ``open_datagram_endpoint()`` returns on the native and the SAM
dialer. Sends go out as repliable datagrams (Datagram1, protocol 17) from the endpoint's local
I2P port; replies come back to that port and are queued for ``receive()``.

Replies without a sender. i2pd's UDP tunnels answer a conversation with one repliable datagram
and then, within 100 ms of it, raw ones (protocol 18: no sender, no signature). A raw datagram
is attributed to the peer this endpoint last sent to from the same remote port, the way i2pd's
own UDP client tunnel does it; if there is no such peer it is dropped and counted. This is
only as good as I2P's end-to-end encryption: it cannot tell which destination sent it.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from i2proxy.dialer.base import DialError

if TYPE_CHECKING:
    from i2proxy.i2p.destination import Destination

#: Largest payload an endpoint sends: a Datagram1 adds ≥ 427 bytes; I2P's datagram guide
#: says reliability drops sharply above ~10 KB (each 1 KB tunnel fragment can be lost) and the
#: transports carry ~32 KB. SOCKS clients rarely send more than one UDP MTU anyway.
MAX_PAYLOAD = 31 * 1024
#: Received datagrams waiting for ``receive()``; beyond that new ones are dropped and counted.
DEFAULT_QUEUE_LIMIT = 512
#: Remote ports (per endpoint) remembered for attributing raw replies.
MAX_REMEMBERED_PEERS = 256
#: Local I2P ports handed out to endpoints (streaming uses port 0 and named ports).
EPHEMERAL_PORTS = range(20000, 65536)


class DatagramTooLarge(DialError):
    """The payload is larger than ``MAX_PAYLOAD``."""


class EndpointClosed(DialError):
    """The endpoint was closed (by its owner, or because the dialer closed)."""


@dataclass(frozen=True, slots=True)
class ReceivedDatagram:
    payload: bytes
    #: The sender's ``<52>.b32.i2p`` name (attributed, not proven, when ``authenticated`` is False).
    sender: str
    #: The sender's I2P port (our reply goes there) and our local port it was sent to.
    src_port: int
    dst_port: int
    #: True when a signature proved ``sender`` (Datagram1/2).
    authenticated: bool


@dataclass
class EndpointStats:
    sent: int = 0
    received: int = 0
    #: Raw datagrams that could not be attributed to a peer we talk to.
    unattributed: int = 0
    #: Dropped because ``receive()`` was not keeping up.
    queue_full: int = 0


#: ``send(target, data, port, local_port)`` → the target's b32 name (the backend resolves it).
SendFunction = Callable[["Destination | str", bytes, int, int], Awaitable[str]]


class DatagramEndpoint:
    """Sends from and receives on one local I2P port; see the module docstring."""

    def __init__(
        self,
        local_port: int,
        send: SendFunction,
        on_close: Callable[[DatagramEndpoint], None],
        *,
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
    ) -> None:
        self.local_port = local_port
        self.stats = EndpointStats()
        self._send = send
        self._on_close = on_close
        self._queue: asyncio.Queue[ReceivedDatagram | None] = asyncio.Queue(queue_limit)
        #: remote port → the b32 name we last sent to on it (for raw replies)
        self._peers: dict[int, str] = {}
        #: b32 name → the remote port we last sent it to (for bridges that report no ports)
        self._ports: dict[str, int] = {}
        self.closed = False

    async def send(self, target: Destination | str, data: bytes, port: int = 0) -> None:
        """Send ``data`` to ``target`` (Destination, b32 name or base64) on I2P ``port``.

        Raises ``DatagramTooLarge``, ``EndpointClosed`` or the backend's ``DialError`` (target
        invalid or unknown, router gone). Delivery is never confirmed: datagrams may be lost.
        """
        if self.closed:
            raise EndpointClosed("datagram endpoint closed")
        if len(data) > MAX_PAYLOAD:
            raise DatagramTooLarge(f"datagram of {len(data)} bytes exceeds {MAX_PAYLOAD}")
        b32 = await self._send(target, data, port, self.local_port)
        self.stats.sent += 1
        self._remember_peer(b32, port)

    def _remember_peer(self, b32: str, port: int) -> None:
        self._peers.pop(port, None)
        self._peers[port] = b32
        self._ports.pop(b32, None)
        self._ports[b32] = port
        for remembered in (self._peers, self._ports):
            if len(remembered) > MAX_REMEMBERED_PEERS:
                remembered.pop(next(iter(remembered)))  # type: ignore[call-overload]

    async def receive(self) -> ReceivedDatagram:
        """The next datagram for this endpoint; ``EndpointClosed`` once closed."""
        if self.closed and self._queue.empty():
            raise EndpointClosed("datagram endpoint closed")
        item = await self._queue.get()
        if item is None:
            raise EndpointClosed("datagram endpoint closed")
        return item

    def deliver(
        self, payload: bytes, sender_b32: str | None, src_port: int | None, authenticated: bool
    ) -> None:
        """Called by the backend for each datagram addressed to ``local_port``.

        ``src_port`` None: the backend cannot tell (i2pd 2.45.1's SAM); the port we last sent
        that peer to stands in (0 if we never did)."""
        if self.closed:
            return
        if sender_b32 is None:
            sender_b32 = self._peers.get(src_port or 0)
            if sender_b32 is None:
                self.stats.unattributed += 1
                return
        if src_port is None:
            src_port = self._ports.get(sender_b32, 0)
        item = ReceivedDatagram(payload, sender_b32, src_port, self.local_port, authenticated)
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.stats.queue_full += 1
            return
        self.stats.received += 1

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._on_close(self)
        # Wake a pending receive(): make room for the sentinel if the queue is full.
        with contextlib.suppress(asyncio.QueueEmpty):
            if self._queue.full():
                self._queue.get_nowait()
        self._queue.put_nowait(None)


class EndpointTable:
    """The endpoints of one dialer by local port (one place for allocation and dispatch)."""

    def __init__(self) -> None:
        self._by_port: dict[int, DatagramEndpoint] = {}
        #: Datagrams for a local port no endpoint is open on.
        self.no_endpoint = 0

    def open(self, send: SendFunction, local_port: int | None = None) -> DatagramEndpoint:
        if local_port is None:
            local_port = self._free_port()
        elif local_port in self._by_port:
            raise DialError(f"local I2P port {local_port} already has a datagram endpoint")
        endpoint = DatagramEndpoint(local_port, send, self._forget)
        self._by_port[local_port] = endpoint
        return endpoint

    def get(self, local_port: int) -> DatagramEndpoint | None:
        return self._by_port.get(local_port)

    def dispatch(
        self,
        dst_port: int,
        payload: bytes,
        sender_b32: str | None,
        src_port: int,
        authenticated: bool,
    ) -> None:
        endpoint = self._by_port.get(dst_port)
        if endpoint is None:
            self.no_endpoint += 1
            return
        endpoint.deliver(payload, sender_b32, src_port, authenticated)

    def close_all(self) -> None:
        for endpoint in list(self._by_port.values()):
            endpoint.close()

    def __len__(self) -> int:
        return len(self._by_port)

    def _forget(self, endpoint: DatagramEndpoint) -> None:
        if self._by_port.get(endpoint.local_port) is endpoint:
            del self._by_port[endpoint.local_port]

    def _free_port(self) -> int:
        if len(self._by_port) >= len(EPHEMERAL_PORTS) // 2:
            raise DialError("no free local I2P port for another datagram endpoint")
        while True:
            port = EPHEMERAL_PORTS[secrets.randbelow(len(EPHEMERAL_PORTS))]
            if port not in self._by_port:
                return port
