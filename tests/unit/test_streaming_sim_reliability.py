"""Reliability: in-order, byte-exact delivery over a lossy, reordering, duplicating link."""

from __future__ import annotations

import hashlib

import pytest

from i2proxy.streaming.events import ConnectionReset, DataReceived
from i2proxy.streaming.options import StreamingOptions
from tests.unit.streaming_sim import Endpoint, Link, Simulation, ended, only

FAST = StreamingOptions(initial_rto=1.0, connect_timeout=120)


def blob(size: int, seed: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(b"%d-%d" % (seed, counter)).digest()
        counter += 1
    return bytes(out[:size])


def exchange(link_ab: Link, link_ba: Link, up: bytes, down: bytes, seed: int, options=FAST):
    """Client uploads ``up`` and closes; server answers ``down`` after the whole upload."""
    client, server = Endpoint("client", 0, options), Endpoint("server", 1, options)
    sim = Simulation(client, server, link_ab, link_ba, seed=seed)

    def on_event(conn, event, now):
        if isinstance(event, DataReceived) and len(server.received[conn.local_stream_id]) == len(
            up
        ):
            conn.send(down)
            conn.close()

    server.on_event = on_event
    conn = client.connect(server, 0.0, up)
    conn.close()
    sim.run(
        lambda: ended(client, conn) and conn.is_terminated and only(server).is_terminated,
        max_time=3600,
    )
    return client, server, conn, sim


@pytest.mark.parametrize("seed", range(6))
def test_byte_exact_delivery_both_ways_at_ten_percent_loss(seed):
    up, down = blob(60_000, seed), blob(200_000, seed + 100)
    client, server, conn, _sim = exchange(Link(loss=0.1), Link(loss=0.1), up, down, seed)
    assert bytes(server.received[only(server).local_stream_id]) == up
    assert bytes(client.received[conn.local_stream_id]) == down
    assert not any(isinstance(e, ConnectionReset) for e in client.events[conn.local_stream_id])


@pytest.mark.parametrize("seed", range(4))
def test_retransmissions_stay_bounded_at_ten_percent_loss(seed):
    up, down = blob(10_000, seed), blob(300_000, seed)
    _client, server, conn, _sim = exchange(Link(loss=0.1), Link(loss=0.1), up, down, seed)
    data_packets = len(down) // 1730 + len(up) // 1730 + 4
    retransmissions = conn.stats.retransmissions + only(server).stats.retransmissions
    # each retransmission repairs one loss; 10 % loss of data and ACKs must not snowball
    assert retransmissions <= data_packets * 0.5, retransmissions


@pytest.mark.parametrize("seed", range(4))
def test_reordering_and_duplication_deliver_in_order_exactly_once(seed):
    link = dict(reorder=0.3, reorder_jitter=0.2, duplicate=0.2)
    up, down = blob(30_000, seed), blob(150_000, seed)
    client, server, conn, _sim = exchange(Link(**link), Link(**link), up, down, seed)
    assert bytes(server.received[only(server).local_stream_id]) == up
    assert bytes(client.received[conn.local_stream_id]) == down
    assert conn.stats.duplicates + only(server).stats.duplicates > 0


@pytest.mark.parametrize("seed", range(3))
def test_loss_reordering_and_duplication_together(seed):
    link = dict(loss=0.1, reorder=0.2, reorder_jitter=0.15, duplicate=0.1)
    up, down = blob(20_000, seed), blob(120_000, seed)
    client, server, conn, _sim = exchange(Link(**link), Link(**link), up, down, seed)
    assert bytes(client.received[conn.local_stream_id]) == down
    assert bytes(server.received[only(server).local_stream_id]) == up


def test_window_never_exceeds_the_configured_maximum():
    options = FAST.with_overrides(max_window_size=8, initial_window_size=4)
    client, server = Endpoint("client", 0, options), Endpoint("server", 1, options)
    sim = Simulation(client, server, Link(delay=0.1), Link(delay=0.1))
    conn = client.connect(server, 0.0, blob(400_000, 1))
    conn.close()
    peak = 0
    while not ended(server, only(server)) if server.connections else True:
        sim.run(max_time=sim.now + 0.01)
        peak = max(peak, conn.in_flight)
        assert sim.now < 600
    assert 4 <= peak <= 8
    assert conn.congestion.window <= 8


def test_receiver_choke_stops_the_sender_and_unchoke_resumes():
    """A full receive buffer chokes the peer with DELAY_REQUESTED > 60000; nothing is lost."""
    options = FAST.with_overrides(receive_buffer=20_000)
    client, server = Endpoint("client", 0, options), Endpoint("server", 1, options)
    sim = Simulation(client, server, Link(delay=0.02), Link(delay=0.02))
    data = blob(300_000, 7)

    def on_event(conn, event, now):
        if isinstance(event, DataReceived) and not conn.stats.bytes_sent:
            conn.send(data)
            conn.close()

    server.on_event = on_event
    conn = client.connect(server, 0.0, b"go")
    conn.pause_receiving()
    sim.run(max_time=5.0)
    stalled = len(client.received[conn.local_stream_id])
    assert stalled < len(data)
    # Bounded: a full buffer plus what was already in flight when the choke arrived.
    assert stalled <= 20_000 + options.max_window_size * 1812
    chokes = [p for _, p in sim.links[id(client)][0].log if p.choke]
    assert chokes, "the receiver announced the choke"
    conn.resume_receiving()
    sim.run(lambda: ended(client, conn), max_time=600)
    assert bytes(client.received[conn.local_stream_id]) == data


def test_payloads_respect_the_peer_max_packet_size():
    small = FAST.with_overrides(max_message_size=1000)
    client, server = Endpoint("client", 0, small), Endpoint("server", 1, FAST)
    sim = Simulation(client, server, Link(), Link())
    data = blob(50_000, 3)

    def on_event(conn, event, now):
        if isinstance(event, DataReceived) and not conn.stats.bytes_sent:
            conn.send(data)
            conn.close()

    server.on_event = on_event
    conn = client.connect(server, 0.0, b"x")
    sim.run(lambda: ended(client, conn), max_time=60)
    sizes = [len(p.payload) for _, p in sim.links[id(server)][0].log]
    assert max(sizes) == 1000
    assert bytes(client.received[conn.local_stream_id]) == data
