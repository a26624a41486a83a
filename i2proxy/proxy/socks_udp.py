"""SOCKS5 UDP ASSOCIATE (RFC 1928 §7) over I2P repliable datagrams.

One association = one UDP relay socket, bound on the address the client reached the SOCKS port
on, that accepts datagrams only from the client's IP address (and one source port: the one the
client announced, else the first it sends from). Each datagram's header names the target:

- ATYP 3 with a ``.b32.i2p`` name or an address-book ``.i2p`` name, and a port: sent as a
  repliable datagram from the client's destination (the one its streams use) to that I2P port;
- an IP address (ATYP 1/4), a clearnet name, ``localhost``: refused (dropped and counted; UDP
  has no error reply). Nothing ever leaves for the clearnet or a DNS resolver;
- FRAG ≠ 0: dropped (fragment reassembly is optional in RFC 1928 and nobody sends fragments).

Replies carry the sender's b32 name (ATYP 3) and I2P port. The association ends when its TCP
control connection closes, or after ``IDLE_TIMEOUT`` without a datagram either way.

Limits: payloads up to ``MAX_PAYLOAD`` (31 KiB: I2P's transports carry ~32 KB; above ~10 KB
loss rises sharply), ``MAX_ASSOCIATIONS_PER_CLIENT`` per client IP address, ``SEND_QUEUE``
datagrams waiting to be sent per association (more are dropped, as a congested UDP path would).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from i2proxy.dialer.base import DialError
from i2proxy.dialer.datagrams import MAX_PAYLOAD, DatagramEndpoint, EndpointClosed
from i2proxy.log import get_logger
from i2proxy.proxy.routing import HostKind, classify_host

if TYPE_CHECKING:
    from i2proxy.proxy.context import SessionContext
    from i2proxy.proxy.routing import Resolver

log = get_logger("i2proxy.proxy")

MAX_ASSOCIATIONS_PER_CLIENT = 8
IDLE_TIMEOUT = 300.0
SEND_QUEUE = 256
#: Bytes read (and thrown away) from the control connection at a time while it stays open.
_CONTROL_READ = 1024

_ATYP_IPV4, _ATYP_DOMAIN, _ATYP_IPV6 = 1, 3, 4


class UdpHeaderError(ValueError):
    """A client datagram without a valid RFC 1928 UDP request header."""


class FragmentDropped(UdpHeaderError):
    """FRAG ≠ 0: we do not reassemble."""


@dataclass(frozen=True, slots=True)
class UdpRequest:
    host: str
    port: int
    #: True when the header named the target by IP address (never sent anywhere).
    is_ip: bool
    payload: bytes


def parse_udp_request(data: bytes) -> UdpRequest:
    """RSV (2) ‖ FRAG (1) ‖ ATYP ‖ DST.ADDR ‖ DST.PORT (2) ‖ DATA."""
    if len(data) < 4:
        raise UdpHeaderError("datagram shorter than a UDP request header")
    if data[2] != 0:
        raise FragmentDropped(f"fragment {data[2]}")
    atyp = data[3]
    if atyp == _ATYP_IPV4:
        end = 4 + 4
    elif atyp == _ATYP_IPV6:
        end = 4 + 16
    elif atyp == _ATYP_DOMAIN:
        if len(data) < 5 or data[4] == 0:
            raise UdpHeaderError("empty or missing domain name")
        end = 5 + data[4]
    else:
        raise UdpHeaderError(f"unknown address type {atyp}")
    if len(data) < end + 2:
        raise UdpHeaderError("UDP request header truncated")
    port = int.from_bytes(data[end : end + 2], "big")
    if atyp == _ATYP_DOMAIN:
        host = data[5:end].decode("ascii", "replace")
    else:
        host = str(ipaddress.ip_address(data[4:end]))
    return UdpRequest(host, port, atyp != _ATYP_DOMAIN, data[end + 2 :])


def build_udp_reply(host: str, port: int, payload: bytes) -> bytes:
    """The header a reply carries: RSV, FRAG 0, ATYP 3 with the sender's name, its port."""
    name = host.encode("ascii")
    if not 0 < len(name) <= 255:
        raise ValueError("host name must be 1-255 bytes")
    return b"\x00\x00\x00\x03" + bytes([len(name)]) + name + port.to_bytes(2, "big") + payload


@dataclass
class UdpCounters:
    """Per-association counters (summed into the server's stats at the end)."""

    sent: int = 0
    received: int = 0
    #: Dropped from the client: IP or clearnet target, fragment, bad header, too large, foreign
    #: source, queue full, target unknown or send failed.
    dropped: int = 0


class _Relay(asyncio.DatagramProtocol):
    """The association's UDP socket: admits the client's datagrams, queues them for sending."""

    def __init__(self, client_ip: str, client_port: int, queue: asyncio.Queue[UdpRequest]):
        self.client_ip = client_ip
        self.client_port = client_port or None
        self.client_addr: tuple[str, int] | None = None
        self.queue = queue
        self.counters = UdpCounters()
        self.last_activity = time.monotonic()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        if not self._from_client(addr):
            self.counters.dropped += 1
            return
        try:
            request = parse_udp_request(data)
        except UdpHeaderError as exc:
            self._drop("bad or fragmented datagram", str(exc))
            return
        if request.is_ip:
            self._drop("IP target refused", request.host)
            return
        if len(request.payload) > MAX_PAYLOAD:
            self._drop("datagram too large", len(request.payload))
            return
        self.last_activity = time.monotonic()
        try:
            self.queue.put_nowait(request)
        except asyncio.QueueFull:
            self.counters.dropped += 1

    def error_received(self, exc: Exception) -> None:
        log.debug("udp relay socket error", error=repr(exc))

    def send_to_client(self, data: bytes) -> None:
        if self.transport is not None and self.client_addr is not None:
            self.transport.sendto(data, self.client_addr)
            self.last_activity = time.monotonic()

    def _from_client(self, addr: tuple[str, int]) -> bool:
        if _plain_ip(addr[0]) != self.client_ip:
            return False
        if self.client_port is not None and addr[1] != self.client_port:
            return False
        if self.client_addr is None:
            self.client_addr = (addr[0], addr[1])
            self.client_port = addr[1]
        return True

    def _drop(self, why: str, detail: object) -> None:
        self.counters.dropped += 1
        log.info("socks udp datagram dropped", reason=why)
        log.debug("socks udp datagram dropped", reason=why, detail=str(detail)[:100])


def _plain_ip(host: str) -> str:
    """The address as text, IPv4-mapped IPv6 unwrapped, zone id removed."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return str(address)


class UdpAssociations:
    """Associations per client IP address (the server's one instance bounds them)."""

    def __init__(self, per_client: int = MAX_ASSOCIATIONS_PER_CLIENT) -> None:
        self.per_client = per_client
        self._count: dict[str, int] = {}

    def acquire(self, client_ip: str) -> bool:
        if self._count.get(client_ip, 0) >= self.per_client:
            return False
        self._count[client_ip] = self._count.get(client_ip, 0) + 1
        return True

    def release(self, client_ip: str) -> None:
        left = self._count.get(client_ip, 0) - 1
        if left > 0:
            self._count[client_ip] = left
        else:
            self._count.pop(client_ip, None)

    def active(self) -> int:
        return sum(self._count.values())


async def serve_udp_association(
    ctx: SessionContext,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    client_hint: tuple[str, int],
    reply: Callable[[tuple[str, int] | None, DialError | None], Awaitable[None]],
    *,
    idle_timeout: float = IDLE_TIMEOUT,
) -> None:
    """Run one association until its control connection closes or it idles out.

    ``reply(bind, None)`` answers success with the relay's address, ``reply(None, error)`` the
    failure (the caller maps it to a SOCKS reply code).
    """
    client_ip = _plain_ip(str(writer.get_extra_info("peername")[0]))
    local_ip = _plain_ip(str(writer.get_extra_info("sockname")[0]))
    associations: UdpAssociations = ctx.udp_associations
    if not associations.acquire(client_ip):
        log.warning("socks udp association refused: too many", limit=associations.per_client)
        log.debug("socks udp association refused: too many", client=client_ip)
        await reply(None, DialError(f"more than {associations.per_client} UDP associations"))
        return
    endpoint: DatagramEndpoint | None = None
    transport: asyncio.BaseTransport | None = None
    try:
        try:
            endpoint = await ctx.open_datagram_endpoint()
        except DialError as exc:
            await reply(None, exc)
            return
        queue: asyncio.Queue[UdpRequest] = asyncio.Queue(SEND_QUEUE)
        hint_port = client_hint[1]  # its IP address is the control connection's, whatever it says
        loop = asyncio.get_running_loop()
        transport, relay = await loop.create_datagram_endpoint(
            lambda: _Relay(client_ip, hint_port, queue), local_addr=(local_ip, 0)
        )
        bound = transport.get_extra_info("sockname")
        await reply((local_ip, bound[1]), None)
        ctx.stats.udp_associations += 1
        log.info("socks udp association", relay=bound[1])
        log.debug("socks udp association", client=client_ip, relay=bound[1])
        await _run(ctx.resolver, reader, endpoint, relay, queue, idle_timeout)
        ctx.stats.udp_datagrams_sent += relay.counters.sent
        ctx.stats.udp_datagrams_received += relay.counters.received
        ctx.stats.udp_datagrams_dropped += relay.counters.dropped
    finally:
        associations.release(client_ip)
        if endpoint is not None:
            endpoint.close()
        if transport is not None:
            transport.close()


async def _run(
    resolver: Resolver,
    reader: asyncio.StreamReader,
    endpoint: DatagramEndpoint,
    relay: _Relay,
    queue: asyncio.Queue[UdpRequest],
    idle_timeout: float,
) -> None:
    tasks = [
        asyncio.create_task(_watch_control(reader)),
        asyncio.create_task(_watch_idle(relay, idle_timeout)),
        asyncio.create_task(_to_i2p(resolver, endpoint, relay, queue)),
        asyncio.create_task(_to_client(endpoint, relay)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _watch_control(reader: asyncio.StreamReader) -> None:
    """RFC 1928: the association ends with the TCP connection it arrived on."""
    with contextlib.suppress(ConnectionError):
        while await reader.read(_CONTROL_READ):
            pass


async def _watch_idle(relay: _Relay, idle_timeout: float) -> None:
    while True:
        left = relay.last_activity + idle_timeout - time.monotonic()
        if left <= 0:
            log.info("socks udp association idle", seconds=idle_timeout)
            return
        await asyncio.sleep(left)


async def _to_i2p(
    resolver: Resolver, endpoint: DatagramEndpoint, relay: _Relay, queue: asyncio.Queue[UdpRequest]
) -> None:
    while True:
        request = await queue.get()
        kind, host = classify_host(request.host)
        target = resolver.resolve(host) if kind in (HostKind.B32, HostKind.NAME) else None
        if target is None:
            reason = "not an I2P destination" if kind is not HostKind.NAME else "unknown name"
            relay._drop(reason, host)
            continue
        try:
            await endpoint.send(target, request.payload, request.port)
        except EndpointClosed:
            return
        except DialError as exc:
            relay._drop("send failed", repr(exc))
            continue
        relay.counters.sent += 1


async def _to_client(endpoint: DatagramEndpoint, relay: _Relay) -> None:
    while True:
        try:
            datagram = await endpoint.receive()
        except EndpointClosed:
            return
        relay.counters.received += 1
        relay.send_to_client(build_udp_reply(datagram.sender, datagram.src_port, datagram.payload))
