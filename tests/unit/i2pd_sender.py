"""i2pd 2.45.1's streaming *sender* against our receiver, on a virtual clock.

In every GET through i2proxy the sender is the site's router, so how fast a download goes
depends on how that sender reacts to our ACKs. This is its sending half as read in i2pd's
``libi2pd/Streaming.cpp`` (tag 2.45.1), nothing more:

- ``ProcessAck``: every packet up to ack-through that is not NACKed is acknowledged, and each
  gives an RTT sample ``now - sendTime``; ``m_RTT = round((m_RTT * seqn + sample) / (seqn + 1))``
  in integer milliseconds — a mean weighted by the sequence number, so after ~100 packets it
  no longer moves — and ``m_RTO = int(1.5 * m_RTT)``. The window grows by one per acknowledged
  packet below 6, then by one at most once per ``m_RTT`` ms, up to 128. NACKed packets are
  skipped, not resent. When nothing is left in flight the resend timer is cancelled; the
  timer is *not* re-armed by an ACK.
- ``SendBuffer``: sends ``window - in flight`` new packets; if nothing was in flight before,
  arms the resend timer at ``m_RTO`` (9 s when ``m_RTO <= 0``).
- ``HandleResendTimer``: resends every packet sent ``m_RTO`` or more ago; if there was one,
  counts an attempt (reset by any ACK that acknowledges something), doubles ``m_RTO``, halves
  the window on the first attempt and sets ``m_RTO`` to 9 s on the second (and switches
  lease); re-arms itself at ``m_RTO``.

The path: data goes through a FIFO that serves one packet per ``service`` seconds (the CPU of
routers, relay and proxy on a busy machine) and a fixed one-way ``delay``; ACKs take ``delay``.
The receiver is our own :class:`~i2proxy.streaming.connection.Connection` (client side, with
its pre-ACK), fed real encoded packets.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from dataclasses import dataclass, field

from i2proxy.streaming.connection import Connection
from i2proxy.streaming.events import DataReceived
from i2proxy.streaming.options import StreamingOptions
from i2proxy.streaming.packet import Flag, Packet, decode, encode
from tests.unit.streaming_sim import keys

INITIAL_RTT = 8000
INITIAL_RTO = 9000
WINDOW_SIZE = 6
MAX_WINDOW_SIZE = 128
MAX_NUM_RESEND_ATTEMPTS = 6
PEER_STREAM_ID = 4242
#: How long a lost link segment holds a lone ACK message and all behind it (s): Linux's
#: tail-loss probe with one segment in flight at 0 ms, as the test network's relay models it.
ACK_STALL = 0.202


def _ms(now: float) -> int:
    return int(now * 1000 + 1e-6)  # a timer due at ts ms is due at ts / 1000 s


@dataclass
class I2pd245Sender:
    """The sending half of an i2pd 2.45.1 stream (times in integer ms, as i2pd keeps them)."""

    packets: int
    #: ``INITIAL_RTO``: 9 s in i2pd; shorter in tests of a transfer that outlives it.
    initial_rto: int = INITIAL_RTO
    rtt: int = INITIAL_RTT
    rto: int = INITIAL_RTO
    window: int = 1
    next_seq: int = 0
    attempts: int = 0
    last_increase: int = 0
    timer: int | None = None
    sent: dict[int, int] = field(default_factory=dict)
    #: (seq, is a resend) handed to the path, in order.
    out: list[tuple[int, bool]] = field(default_factory=list)
    resends: int = 0
    halvings: int = 0
    #: Attempt-2 events: m_RTO set to 9 s (and another lease picked).
    long_timeouts: int = 0
    #: The ack-through of ACKs that left nothing in flight with data still to send: the pipe
    #: ran dry, and the resend timer is re-armed at 1.5 x the frozen RTT when sending resumes.
    emptied: list[int] = field(default_factory=list)
    windows: list[int] = field(default_factory=list)

    def send_buffer(self, ts: int) -> None:
        room = self.window - len(self.sent)
        new = []
        while room > 0 and self.next_seq <= self.packets:
            new.append(self.next_seq)
            self.next_seq += 1
            room -= 1
        if not new:
            return
        was_empty = not self.sent
        for seq in new:
            self.sent[seq] = ts
            self.out.append((seq, False))
        if was_empty:
            self.schedule_resend(ts)

    def schedule_resend(self, ts: int) -> None:
        if self.rto <= 0:
            self.rto = self.initial_rto
        self.timer = ts + self.rto

    def process_ack(self, ts: int, ack_through: int, nacks: tuple[int, ...]) -> None:
        if ack_through > self.next_seq:
            return
        acknowledged = False
        for seqn in sorted(self.sent):
            if seqn > ack_through:
                break
            if seqn in nacks:
                continue
            sample = ts - self.sent.pop(seqn)
            self.rtt = math.floor((self.rtt * seqn + sample) / (seqn + 1.0) + 0.5)
            self.rto = int(self.rtt * 1.5)
            acknowledged = True
            if self.window < WINDOW_SIZE:
                self.window += 1
            elif ts > self.last_increase + self.rtt:
                self.window = min(MAX_WINDOW_SIZE, self.window + 1)
                self.last_increase = ts
        if not self.sent:
            self.timer = None
            if acknowledged and self.next_seq <= self.packets:
                self.emptied.append(ack_through)
        if acknowledged:
            self.attempts = 0
            self.send_buffer(ts)
        self.windows.append(self.window)

    def handle_timer(self, ts: int) -> None:
        if self.attempts >= MAX_NUM_RESEND_ATTEMPTS:
            raise AssertionError("the i2pd sender would reset the stream here")
        due = [seq for seq, at in sorted(self.sent.items()) if ts >= at + self.rto]
        if due:
            self.attempts += 1
            self.rto *= 2
            if self.attempts == 1:
                self.window = max(1, self.window >> 1)
                self.halvings += 1
            elif self.attempts == 2:
                self.rto = self.initial_rto
                self.long_timeouts += 1
            for seq in due:
                self.sent[seq] = ts
                self.out.append((seq, True))
            self.resends += len(due)
        self.schedule_resend(ts)


def established_client(options: StreamingOptions | None = None) -> Connection:
    """Our client stream after an i2pd server's (empty) SYN reply and our ACK of it."""
    client, server = keys(0), keys(1)
    conn = Connection.outgoing(
        keys=client,
        remote_destination=server.destination,
        local_stream_id=777,
        now=0.0,
        options=options or StreamingOptions(),
    )
    conn.send(b"GET / HTTP/1.1\r\n\r\n")
    conn.packets_to_send(0.0)
    conn.receive_packet(syn_reply(conn), 0.001)
    conn.handle_timer(0.5)  # the SYN reply's delayed ACK
    conn.packets_to_send(0.5)
    return conn


def syn_reply(conn: Connection) -> bytes:
    """i2pd's SYN reply to ``conn``'s SYN: empty, signed, sequence 0."""
    server = keys(1)
    packet = Packet(
        send_stream_id=conn.local_stream_id,
        receive_stream_id=PEER_STREAM_ID,
        flags=Flag.SYNCHRONIZE,
        from_destination=server.destination,
        max_packet_size=1812,
    )
    return encode(packet, server)


def data_packet(conn: Connection, seq: int, payload: bytes = b"x") -> bytes:
    """i2pd's data packet ``seq`` to ``conn``: no flags, no options, ack-through 0."""
    return encode(
        Packet(
            send_stream_id=conn.local_stream_id,
            receive_stream_id=PEER_STREAM_ID,
            sequence_num=seq,
            ack_through=0,
            payload=payload,
        )
    )


@dataclass
class Transfer:
    """What one download looked like from both ends."""

    sender: I2pd245Sender
    receiver: Connection
    acks: int
    seconds: float
    received: int


def download(
    packets: int,
    *,
    delay: float = 0.001,
    service: float = 0.00025,
    payload: int = 64,
    options: StreamingOptions | None = None,
    max_time: float = 120.0,
    pre_ack_lag: float = 0.0,
    initial_rto: int = INITIAL_RTO,
    ack_stalls: float = 0.0,
    seed: int = 1,
) -> Transfer:
    """Our client stream downloads ``packets`` data packets from an i2pd 2.45.1 sender.

    ``pre_ack_lag``: how much later than our SYN our pre-ACK reaches the sender — its first RTT
    sample (0: ``m_RTO`` 0, so its first resend timer is 9 s; 0.001: 1 ms, a 1 ms timer).
    ``ack_stalls``: the share of our ACK messages whose link segment is lost (the test network's
    ``--loss``): that ACK and every later one wait ``ACK_STALL`` for TCP's tail-loss probe
    (docs/TESTNET.md: one small segment in flight), drawn from a ``seed``-ed generator."""
    rng = random.Random(seed)
    ack_path_free = 0.0  # ACKs leave the link in order: none overtakes a stalled one
    conn = Connection.outgoing(
        keys=keys(0),
        remote_destination=keys(1).destination,
        local_stream_id=777,
        now=0.0,
        options=options or StreamingOptions(),
    )
    conn.send(b"GET / HTTP/1.1\r\n\r\n")
    sender = I2pd245Sender(packets, initial_rto=initial_rto, rto=initial_rto)
    body = bytes(payload)
    queue: list[tuple[float, int, str, object]] = []
    order = itertools.count()
    free_at = 0.0  # when the data FIFO is idle again
    acks = 0
    received = 0

    def to_receiver(now: float, data: bytes) -> None:
        nonlocal free_at
        free_at = max(free_at, now) + service
        heapq.heappush(queue, (free_at + delay, next(order), "data", data))

    def flush_sender(now: float) -> None:
        for seq, _resend in sender.out:
            to_receiver(now, syn_reply(conn) if seq == 0 else data_packet(conn, seq, body))
        sender.out.clear()

    def flush_receiver(now: float) -> None:
        nonlocal acks, received, ack_path_free
        while (event := conn.next_event()) is not None:
            if isinstance(event, DataReceived):
                received += 1
        for data in conn.packets_to_send(now):
            packet = decode(data)
            if packet.is_syn:
                heapq.heappush(queue, (now + delay, next(order), "syn", packet))
            elif packet.is_plain_ack:
                acks += packet.send_stream_id != 0
                lag = pre_ack_lag if packet.send_stream_id == 0 else 0.0
                due = now + delay + lag
                if packet.send_stream_id != 0:
                    if ack_stalls and rng.random() < ack_stalls:
                        due += ACK_STALL
                    due = ack_path_free = max(due, ack_path_free)
                heapq.heappush(queue, (due, next(order), "ack", packet))

    now = 0.0
    flush_receiver(now)
    while received < packets:
        timers = [t for t in (conn.get_timer(),) if t is not None]
        if sender.timer is not None:
            timers.append(sender.timer / 1000)
        candidates = [queue[0][0]] if queue else []
        candidates += timers
        assert candidates, "the transfer stalled"
        now = max(now, min(candidates))
        assert now < max_time, f"not done after {max_time} s ({received}/{packets})"
        ts = _ms(now)
        while queue and queue[0][0] <= now:
            _, _, kind, item = heapq.heappop(queue)
            if kind == "data":
                conn.receive_packet(item, now)
                flush_receiver(now)
            elif kind == "syn":  # i2pd answers with an empty SYN reply at once (window 1)
                sender.next_seq = 0
                sender.send_buffer(ts)
                flush_sender(now)
            elif kind == "ack":
                if sender.next_seq == 0:
                    continue  # the pre-ACK overtook the SYN: i2pd holds it; modelled as lost
                sender.process_ack(ts, item.ack_through, item.nacks)
                flush_sender(now)
        if sender.timer is not None and ts >= sender.timer:
            sender.handle_timer(ts)
            flush_sender(now)
        timer = conn.get_timer()
        if timer is not None and now >= timer:
            conn.handle_timer(now)
            flush_receiver(now)
    return Transfer(sender, conn, acks, now, received)
