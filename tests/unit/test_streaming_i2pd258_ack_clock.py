"""The receiver's ACK clock for a paced i2pd sender (``i2proxy/streaming/i2pd258.py``;
docs/STREAMING.md, "The i2pd 2.58.0 sender"), fed real encoded packets on a virtual clock."""

from __future__ import annotations

import itertools

import pytest

from i2proxy.streaming.connection import Connection
from i2proxy.streaming.i2pd258 import MAX_ACK_INTERVAL, MIN_ACK_INTERVAL, paced_ack_interval
from i2proxy.streaming.options import StreamingOptions
from i2proxy.streaming.packet import Flag, Packet, decode, encode
from tests.unit.i2pd_sender import PEER_STREAM_ID, data_packet, syn_reply
from tests.unit.streaming_sim import keys


def client_after_syn_reply(rtt: float, *, java: bool = False) -> Connection:
    """Our client stream whose SYN was answered ``rtt`` s later (its SRTT), by i2pd's empty SYN
    reply, or with ``java`` by one that carries the answer's first bytes."""
    conn = Connection.outgoing(
        keys=keys(0),
        remote_destination=keys(1).destination,
        local_stream_id=777,
        now=0.0,
        options=StreamingOptions(),
    )
    conn.send(b"GET / HTTP/1.1\r\n\r\n")
    conn.packets_to_send(0.0)
    conn.receive_packet(java_like_reply(conn) if java else syn_reply(conn), rtt)
    conn.packets_to_send(rtt)
    return conn


def java_like_reply(conn: Connection) -> bytes:
    """A SYN reply that carries the answer's first bytes (Java I2P's)."""
    server = keys(1)
    packet = Packet(
        send_stream_id=conn.local_stream_id,
        receive_stream_id=PEER_STREAM_ID,
        flags=Flag.SYNCHRONIZE,
        from_destination=server.destination,
        max_packet_size=1812,
        payload=b"HTTP/1.1 200 OK\r\n",
    )
    return encode(packet, server)


class AckLog:
    """Feeds packets at given times, runs the connection's timers between them and records
    (time, ack-through, NACKs) of every packet it sends."""

    def __init__(self, conn: Connection, now: float) -> None:
        self.conn = conn
        self.now = now
        self.acks: list[tuple[float, int, tuple[int, ...]]] = []

    def _collect(self, now: float) -> None:
        for data in self.conn.packets_to_send(now):
            packet = decode(data)
            self.acks.append((now, packet.ack_through, packet.nacks))

    def advance(self, until: float) -> None:
        while (timer := self.conn.get_timer()) is not None and timer <= until:
            self.now = max(self.now, timer)
            self.conn.handle_timer(self.now)
            self._collect(self.now)
        self.now = until

    def receive(self, at: float, data: bytes) -> None:
        self.advance(at)
        self.conn.receive_packet(data, at)
        self._collect(at)


def paced_first_flight(conn: Connection, start: float, spacing: float) -> AckLog:
    """Data packets 1-3 of a 2.54+ sender: its window of 10 paced ``spacing`` s apart."""
    log = AckLog(conn, start)
    for seq in (1, 2, 3):
        log.receive(start + (seq - 1) * spacing, data_packet(conn, seq))
    return log


def test_the_interval_is_half_our_srtt_within_10_and_50_ms():
    # the sender's RTO is at least 1.3 x RTT, or its 20 ms MIN_RTO, plus its mean ACK gap: an
    # ACK half an RTT (at least 10 ms) after the first packet it covers is never late for it
    assert paced_ack_interval(None) == MIN_ACK_INTERVAL == 0.010
    assert paced_ack_interval(0.004) == 0.010  # a 0 ms test network
    assert paced_ack_interval(0.060) == pytest.approx(0.030)
    assert paced_ack_interval(0.105) == MAX_ACK_INTERVAL == 0.050  # 50 ms per link
    assert paced_ack_interval(0.420) == 0.050  # 200 ms per link


@pytest.mark.parametrize(("rtt", "interval"), [(0.004, 0.010), (0.060, 0.030), (0.105, 0.050)])
def test_in_order_data_from_a_paced_sender_is_acked_once_per_interval(rtt, interval):
    conn = client_after_syn_reply(rtt)
    log = paced_first_flight(conn, start=rtt + 0.001, spacing=0.012)
    log.acks.clear()
    start = log.now
    every = 0.0005  # a packet every 0.5 ms, far more often than the clock
    for seq in range(4, 404):
        log.receive(start + (seq - 4) * every, data_packet(conn, seq))
    log.advance(log.now + 1.0)
    times = [at for at, _, _ in log.acks]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # not at the ratio (one per 2nd to 16th packet) but once per interval from the first
    # packet an ACK covers: gaps of one interval (plus the next packet's 0.5 ms at most)
    assert gaps
    assert all(interval - 1e-9 <= gap <= interval + every + 1e-9 for gap in gaps)
    assert len(times) <= 400 * every / interval + 2
    assert log.acks[-1][1] == 403  # the last ACK covers everything, one interval late at most
    assert times[-1] - (start + 399 * every) <= interval + 1e-9


def test_no_packet_waits_longer_than_the_interval_for_its_ack():
    # a slow paced sender (a packet every 30 ms at 50 ms per link): each packet is ACKed one
    # interval after it came, never held for a second one (the sender's RTT sample is that of
    # the newest packet an ACK covers, and the ratio would hold each one a packet longer)
    conn = client_after_syn_reply(0.105)
    log = paced_first_flight(conn, start=0.2, spacing=0.030)
    log.acks.clear()
    for seq in range(4, 24):
        log.receive(0.29 + (seq - 4) * 0.030, data_packet(conn, seq))
    log.advance(log.now + 1.0)
    arrivals = {seq: 0.29 + (seq - 4) * 0.030 for seq in range(4, 24)}
    for seq, at in arrivals.items():
        first_ack = min(t for t, through, _ in log.acks if through >= seq)
        assert first_ack - at <= MAX_ACK_INTERVAL + 1e-9


def test_a_new_hole_is_nacked_at_once_and_its_filling_acked_at_once():
    conn = client_after_syn_reply(0.105)
    log = paced_first_flight(conn, start=0.2, spacing=0.012)
    log.advance(0.4)
    log.acks.clear()
    log.receive(0.4, data_packet(conn, 5))  # 4 is missing
    assert log.acks == [(0.4, 5, (4,))]
    log.receive(0.401, data_packet(conn, 4))  # the resent 4
    assert log.acks[-1] == (0.401, 5, ())


def test_an_immediate_ack_request_is_answered_at_once():
    conn = client_after_syn_reply(0.105)
    log = paced_first_flight(conn, start=0.2, spacing=0.012)
    log.advance(0.4)
    log.acks.clear()
    request = Packet(
        send_stream_id=conn.local_stream_id,
        receive_stream_id=PEER_STREAM_ID,
        sequence_num=4,
        payload=b"x",
        delay_requested=0,
    )
    log.receive(0.4, encode(request))
    assert [through for _, through, _ in log.acks] == [4]


def test_an_i2pd_245_sender_keeps_the_ack_ratio():
    # 2.45.1's first flight is 2 packets sent together, packet 3 only after our ACK: not paced,
    # so the 2.45 rules (ratio, resend-storm hold) stay and this clock does not apply
    conn = client_after_syn_reply(0.105)
    log = AckLog(conn, 0.2)
    log.receive(0.2, data_packet(conn, 1))
    log.receive(0.2, data_packet(conn, 2))
    log.advance(0.25)
    log.acks.clear()
    for seq in range(3, 13):
        log.receive(0.3 + (seq - 3) * 0.0005, data_packet(conn, seq))
    # one ACK per 2nd packet, at once (ACK_EVERY; the ramp is still at 2 this early)
    assert [through for _, through, _ in log.acks] == [4, 6, 8, 10, 12]


def test_a_sender_whose_syn_reply_carried_data_keeps_the_ack_ratio():
    # Java I2P answers in its SYN reply: not i2pd, whatever its first flight looks like
    conn = client_after_syn_reply(0.105, java=True)
    log = paced_first_flight(conn, start=0.2, spacing=0.012)
    log.advance(0.4)
    log.acks.clear()
    for seq in range(4, 14):
        log.receive(0.4 + (seq - 4) * 0.0005, data_packet(conn, seq))
    assert [through for _, through, _ in log.acks] == [5, 7, 9, 11, 13]


def bunched_first_flight(conn: Connection, start: float, third_after: float) -> AckLog:
    """Packets 1 and 2 arrive together (a link's stall held the first and released both), then
    packet 3 ``third_after`` s later."""
    log = AckLog(conn, start)
    log.receive(start, data_packet(conn, 1))
    log.receive(start, data_packet(conn, 2))
    log.receive(start + third_after, data_packet(conn, 3))
    return log


def acks_of_a_burst(log: AckLog, first_seq: int = 4, count: int = 10) -> list[int]:
    log.advance(log.now + 0.2)
    log.acks.clear()
    for seq in range(first_seq, first_seq + count):
        log.receive(log.now + 0.0005, data_packet(log.conn, seq))
    log.advance(log.now + 0.2)
    return [through for _, through, _ in log.acks]


def test_a_paced_first_flight_bunched_by_a_stall_still_gets_the_clock():
    # 200 ms per link (SRTT 0.42 s): packets 1 and 2 together, our ACK of them at once, packet
    # 3 at the sender's initial pace 150 ms later — sooner than half a round trip, so not sent
    # in answer to that ACK: a paced sender, one ACK for the burst, not one per 2nd packet
    conn = client_after_syn_reply(0.42)
    log = bunched_first_flight(conn, start=0.9, third_after=0.150)
    assert conn.stats.i2pd245_sender is False
    assert acks_of_a_burst(log) == [13]


def test_a_245_first_flight_is_still_told_apart_on_a_long_path():
    # 2.45.1 sends packet 3 only when our first ACK of data reached it: a round trip later
    conn = client_after_syn_reply(0.42)
    log = bunched_first_flight(conn, start=0.9, third_after=0.41)
    assert conn.stats.i2pd245_sender is True
    assert acks_of_a_burst(log) == [5, 7, 9, 11, 13]


def test_on_a_fast_path_the_spacing_alone_decides_as_before():
    # 0 ms links (SRTT 8 ms): a bunched first flight and packet 3 3 ms later is 2.45.1's shape
    # there (its packet 2 waits for the site's second write); our SRTT is too small a yardstick
    conn = client_after_syn_reply(0.008)
    bunched_first_flight(conn, start=0.01, third_after=0.003)
    assert conn.stats.i2pd245_sender is True
