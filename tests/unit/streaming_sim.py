"""A deterministic network simulator for the sans-IO streaming core.

Two endpoints exchange packets over a :class:`Link` with configurable loss, duplication,
reordering and delay, all drawn from a seeded RNG, driven by a virtual clock. No asyncio, no
sleeps: a test runs hours of virtual time in milliseconds. The endpoints route packets the way
the real manager does (by send stream id, then SYN, then follow-on packets by the sender's id)
and keep every event so tests can assert on them.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from i2proxy.i2p.keys import PrivateKeys
from i2proxy.streaming.connection import Connection, PacketRejected, PeerProfile
from i2proxy.streaming.events import (
    ConnectionEstablished,
    DataReceived,
    Event,
    StreamEnded,
)
from i2proxy.streaming.options import StreamingOptions
from i2proxy.streaming.packet import Flag, Packet, PacketError, decode, encode, verify_signature

_KEYS: list[PrivateKeys] = []


def keys(index: int) -> PrivateKeys:
    """Cached real Ed25519 destinations (generation costs ~25 ms each)."""
    while len(_KEYS) <= index:
        _KEYS.append(PrivateKeys.generate())
    return _KEYS[index]


@dataclass
class Link:
    """One direction of the network path."""

    delay: float = 0.05
    loss: float = 0.0
    duplicate: float = 0.0
    #: Probability that a packet gets up to ``reorder_jitter`` extra delay.
    reorder: float = 0.0
    reorder_jitter: float = 0.1
    #: Drop the n-th packet (0-based, counted per link) when this returns True.
    drop: Callable[[int, Packet], bool] | None = None
    #: Extra delay for the n-th packet (deterministic reordering), seconds.
    hold: Callable[[int, Packet], float] | None = None
    sent: int = 0
    dropped: int = 0
    #: (send time, packet) of everything offered to the link, lost or not.
    log: list[tuple[float, Packet]] = field(default_factory=list)

    def schedule(self, data: bytes, now: float, rng: random.Random) -> list[float]:
        """Arrival times of ``data`` (empty when lost)."""
        index = self.sent
        self.sent += 1
        packet = decode(data)
        self.log.append((now, packet))
        if (self.drop is not None and self.drop(index, packet)) or rng.random() < self.loss:
            self.dropped += 1
            return []
        copies = 2 if rng.random() < self.duplicate else 1
        times = []
        for _ in range(copies):
            extra = rng.random() * self.reorder_jitter if rng.random() < self.reorder else 0.0
            if self.hold is not None:
                extra += self.hold(index, packet)
            times.append(now + self.delay + extra)
        return times


class Endpoint:
    """A destination with its connections, routing like the manager does."""

    def __init__(
        self,
        name: str,
        key_index: int,
        options: StreamingOptions | None = None,
        connection_class: type[Connection] = Connection,
    ) -> None:
        self.name = name
        self.keys = keys(key_index)
        self.options = options or StreamingOptions()
        self.connection_class = connection_class
        self.connections: dict[int, Connection] = {}
        self.by_remote: dict[int, Connection] = {}
        self.pending: dict[int, list[Packet]] = {}
        self.events: dict[int, list[Event]] = {}
        self.received: dict[int, bytearray] = {}
        self.profile: PeerProfile | None = None
        self.on_accept: Callable[[Connection, float], None] | None = None
        self.on_event: Callable[[Connection, Event, float], None] | None = None
        self._ids = itertools.count(1000 + key_index * 100000)

    def new_id(self) -> int:
        return next(self._ids)

    def connect(self, peer: Endpoint, now: float, data: bytes = b"", flush: bool = True):
        conn = Connection.outgoing(
            keys=self.keys,
            remote_destination=peer.keys.destination,
            local_stream_id=self.new_id(),
            now=now,
            options=self.options,
            profile=self.profile,
        )
        self._add(conn)
        if data:
            conn.send(data, flush=flush)
        return conn

    def _add(self, conn: Connection) -> None:
        self.connections[conn.local_stream_id] = conn
        self.events[conn.local_stream_id] = []
        self.received[conn.local_stream_id] = bytearray()

    def deliver(self, data: bytes, now: float) -> None:
        try:
            packet = decode(data)
        except PacketError:
            return
        if packet.send_stream_id:
            conn = self.connections.get(packet.send_stream_id)
            if conn is not None:
                conn.receive_packet(packet, now)
            elif packet.has(Flag.ECHO) and packet.from_destination is not None:
                self.answer_ping(packet, now)
            return
        if packet.has(Flag.ECHO):
            conn = self.connections.get(packet.receive_stream_id)
            if conn is not None:
                conn.receive_packet(packet, now)
            return
        if packet.is_syn:
            if packet.receive_stream_id in self.by_remote:
                self.by_remote[packet.receive_stream_id].receive_packet(packet, now)
                return
            try:
                conn = self.connection_class.incoming(
                    packet,
                    keys=self.keys,
                    local_stream_id=self.new_id(),
                    now=now,
                    options=self.options,
                )
            except PacketRejected:
                return
            self._add(conn)
            self.by_remote[packet.receive_stream_id] = conn
            if self.on_accept is not None:
                self.on_accept(conn, now)
            self.sim.pump(self, conn, now)  # i2pd answers the SYN before later packets
            for saved in self.pending.pop(packet.receive_stream_id, []):
                conn.receive_packet(saved, now)
            return
        conn = self.by_remote.get(packet.receive_stream_id)
        if conn is not None:
            conn.receive_packet(packet, now)
        else:
            self.pending.setdefault(packet.receive_stream_id, []).append(packet)

    def answer_ping(self, ping: Packet, now: float) -> None:
        if not verify_signature(ping, ping.from_destination):
            return
        pong = Packet(0, ping.send_stream_id, flags=Flag.ECHO, payload=ping.payload)
        self.sim.transmit(self, encode(pong))

    sim: Simulation


class I2pdLikeConnection(Connection):
    """i2pd 2.45.1's server behaviour as read in its Streaming.cpp: the SYN reply leaves at once
    and empty, the window starts at one packet (so the answer waits for that reply's ACK), and
    any ACK counts, even one sent before the peer could have seen the SYN reply (our pre-ACK)."""

    trust_speculative_acks = True
    syn_reply_carries_data = False


class BundlingTrustingConnection(Connection):
    """A peer that puts its answer into the SYN reply *and* honours speculative ACKs: the case
    where a pre-ACK could lose data (Java may behave like this)."""

    trust_speculative_acks = True
    syn_reply_carries_data = True


I2PD_OPTIONS = StreamingOptions(initial_window_size=1, connect_delay=0.0)


class Simulation:
    """Virtual clock + event queue joining two endpoints by two links."""

    def __init__(
        self,
        a: Endpoint,
        b: Endpoint,
        a_to_b: Link | None = None,
        b_to_a: Link | None = None,
        seed: int = 1,
    ) -> None:
        self.now = 0.0
        self.rng = random.Random(seed)
        self.a, self.b = a, b
        a.sim = b.sim = self
        self.links = {id(a): (a_to_b or Link(), b), id(b): (b_to_a or Link(), a)}
        self._queue: list[tuple[float, int, Endpoint, bytes]] = []
        self._order = itertools.count()

    def pump(self, endpoint: Endpoint, conn: Connection, now: float) -> None:
        """Drain the connection's events and packets."""
        while True:
            event = conn.next_event()
            if event is None:
                break
            endpoint.events[conn.local_stream_id].append(event)
            if isinstance(event, ConnectionEstablished) and not conn.is_client:
                endpoint.by_remote[conn.remote_stream_id] = conn
            if isinstance(event, DataReceived):
                endpoint.received[conn.local_stream_id] += event.data
            if endpoint.on_event is not None:
                endpoint.on_event(conn, event, now)
        for data in conn.packets_to_send(now):
            self.transmit(endpoint, data)

    def transmit(self, endpoint: Endpoint, data: bytes) -> None:
        link, peer = self.links[id(endpoint)]
        for when in link.schedule(data, self.now, self.rng):
            heapq.heappush(self._queue, (when, next(self._order), peer, data))

    def pump_all(self) -> None:
        for endpoint in (self.a, self.b):
            for conn in list(endpoint.connections.values()):
                self.pump(endpoint, conn, self.now)

    def next_deadline(self) -> float | None:
        deadlines = [self._queue[0][0]] if self._queue else []
        for endpoint in (self.a, self.b):
            for conn in endpoint.connections.values():
                timer = conn.get_timer()
                if timer is not None:
                    deadlines.append(timer)
        return min(deadlines) if deadlines else None

    def run(self, until: Callable[[], bool] | None = None, max_time: float = 600.0) -> float:
        """Advance until ``until()`` holds, nothing is left to do, or ``max_time``."""
        self.pump_all()
        steps = 0
        while not (until is not None and until()):
            deadline = self.next_deadline()
            if deadline is None or deadline > max_time:
                self.now = max(self.now, max_time)  # nothing happens before max_time
                break
            self.now = max(self.now, deadline)
            while self._queue and self._queue[0][0] <= self.now:
                _, _, endpoint, data = heapq.heappop(self._queue)
                endpoint.deliver(data, self.now)
                self.pump_all()
            for endpoint in (self.a, self.b):
                for conn in list(endpoint.connections.values()):
                    timer = conn.get_timer()
                    if timer is not None and timer <= self.now:
                        conn.handle_timer(self.now)
            self.pump_all()
            steps += 1
            assert steps < 2_000_000, "simulation does not converge"
        return self.now


def ended(endpoint: Endpoint, conn: Connection) -> bool:
    return any(isinstance(e, StreamEnded) for e in endpoint.events[conn.local_stream_id])


def only(endpoint: Endpoint) -> Connection:
    (conn,) = endpoint.connections.values()
    return conn


#: Pacing off: simulator tests that put packets on the link at exact times (pacing has its own).
EXACT_TIMING = StreamingOptions(
    initial_rto=1.0, connect_timeout=120, initial_window_size=16, pacing=False
)


def established(up: Link, down: Link, options: StreamingOptions = EXACT_TIMING):
    """A client connection to a server, open, with an RTT sample and nothing in flight."""
    client, server = Endpoint("client", 0, options), Endpoint("server", 1, options)
    sim = Simulation(client, server, up, down)
    conn = client.connect(server, 0.0, b"open")
    sim.run(
        lambda: (
            server.connections
            and conn.state.value == "established"
            and conn.in_flight == 0
            and only(server).state.value == "established"
        ),
        max_time=30,
    )
    return client, server, conn, sim
