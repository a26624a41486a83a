"""Receiver rules: when ACKs leave, choke and unchoke (docs/STREAMING.md "ACKs" and "Flow
control"), driven through two real connections over the deterministic simulator."""

from __future__ import annotations

import pytest

from i2proxy.streaming.connection import UNCHOKE_REPEATS
from i2proxy.streaming.events import DataReceived
from i2proxy.streaming.options import StreamingOptions
from i2proxy.streaming.packet import CHOKE_SEND_DELAY_MS, Packet, decode
from tests.unit.streaming_sim import EXACT_TIMING, Endpoint, Link, Simulation, ended, only
from tests.unit.streaming_sim import established as open_connection

OPTIONS = EXACT_TIMING
PACKET = 1730
ONE_WAY = 0.05


def established(up: Link, down: Link, options: StreamingOptions = OPTIONS):
    """Open, then one more quiet second so no ACK of the open is still due."""
    client, server, conn, sim = open_connection(up, down, options)
    sim.run(max_time=sim.now + 1)
    return client, server, conn, sim


def acks(link: Link, since: float) -> list[tuple[float, Packet]]:
    return [(t, p) for t, p in link.log if t >= since and p.is_plain_ack]


def test_a_new_hole_is_nacked_at_once_packets_behind_it_are_acked_every_second_packet():
    up = Link(delay=ONE_WAY, drop=lambda i, p: p.sequence_num == 3 and p.payload)
    down = Link(delay=ONE_WAY)
    _client, _server, conn, sim = established(up, down)
    start = sim.now
    for _ in range(8):  # seq 1..8, one every 2 ms; 3 is lost every time
        conn.send(bytes(PACKET))
        sim.run(max_time=sim.now + 0.002)
    sim.run(max_time=start + ONE_WAY + 0.015)
    sent = [
        (round((t - start - ONE_WAY) * 1000), p.ack_through, p.nacks) for t, p in acks(down, start)
    ]
    assert sent == [
        (2, 2, ()),  # two in order
        (6, 4, (3,)),  # seq 4 opens the hole: at once
        (10, 6, (3,)),  # 5 waits, 6 makes two
        (14, 8, (3,)),  # 7 waits, 8 makes two
    ]


def test_the_packet_that_fills_a_hole_is_acked_at_once():
    seen = set()

    def lose_3_once(i, p):
        if p.sequence_num == 3 and p.payload and 3 not in seen:
            seen.add(3)
            return True
        return False

    up, down = Link(delay=ONE_WAY, drop=lose_3_once), Link(delay=ONE_WAY)
    _client, _server, conn, sim = established(up, down)
    conn.send(bytes(PACKET * 8))
    sim.run(lambda: conn.in_flight == 0, max_time=sim.now + 10)
    (resent_at,) = [t for t, p in up.log if p.sequence_num == 3 and p.payload][1:]
    complete = [t for t, p in down.log if p.ack_through == 8 and not p.nacks]
    assert complete[0] == pytest.approx(resent_at + ONE_WAY)  # no ACK delay


def test_duplicates_are_acked_but_not_once_each():
    client, server, conn, sim = established(Link(delay=ONE_WAY), Link(delay=ONE_WAY))
    peer = only(server)
    start = sim.now
    conn.send(bytes(PACKET * 4))
    sim.run(lambda: conn.in_flight == 0, max_time=start + 5)
    # replay the four packets twice, as a peer's RTO would
    replay = [p for t, p in sim.links[id(client)][0].log if t >= start and p.payload]
    before = len(acks(sim.links[id(server)][0], start))
    at = sim.now
    for _ in range(2):
        for packet in replay:
            peer.receive_packet(packet, at)
    out = peer.packets_to_send(at)
    assert peer.stats.duplicates == 8
    assert len(out) <= 1  # at most one ACK for eight duplicates at once
    assert len(acks(sim.links[id(server)][0], start)) == before


def test_a_sender_request_for_an_immediate_ack_is_honoured():
    _client, server, conn, sim = established(Link(delay=ONE_WAY), Link(delay=ONE_WAY))
    peer = only(server)
    packet = Packet(
        send_stream_id=peer.local_stream_id,
        receive_stream_id=conn.local_stream_id,
        sequence_num=conn._next_seq,
        ack_through=0,
        delay_requested=0,  # Java sets this every 8th packet and when its window fills
        payload=b"x",
    )
    conn._next_seq += 1
    peer.receive_packet(packet, sim.now)
    assert any(decode(d).is_plain_ack for d in peer.packets_to_send(sim.now))


def test_choke_is_sent_as_60001_and_i2pd_choke_of_60000_is_obeyed():
    assert CHOKE_SEND_DELAY_MS == 60001  # Java: >= 60001; i2pd: >= 60000, and 61000 = "Java"
    assert Packet(1, 2, delay_requested=60000).choke  # i2pd's DELAY_CHOKING
    assert Packet(1, 2, delay_requested=61000).choke  # Java's
    assert not Packet(1, 2, delay_requested=59999).choke


def test_unchoke_is_repeated_until_data_flows_even_when_the_first_is_lost():
    options = OPTIONS.with_overrides(receive_buffer=20_000)
    drop_unchoke = {"count": 0}

    def lose_first_unchoke(i, p):
        # (the pre-ACK asks for an immediate ACK too, but before the peer's id is known)
        if p.delay_requested == 0 and p.send_stream_id and drop_unchoke["count"] == 0:
            drop_unchoke["count"] += 1
            return True
        return False

    up = Link(delay=ONE_WAY, drop=lose_first_unchoke)
    client, server = Endpoint("client", 0, options), Endpoint("server", 1, options)
    sim = Simulation(client, server, up, Link(delay=ONE_WAY))
    data = bytes(range(256)) * 1200

    def on_event(conn, event, now):
        if isinstance(event, DataReceived) and not conn.stats.bytes_sent:
            conn.send(data)
            conn.close()

    server.on_event = on_event
    conn = client.connect(server, 0.0, b"go")
    conn.pause_receiving()
    sim.run(max_time=5.0)
    assert any(p.choke and p.delay_requested == CHOKE_SEND_DELAY_MS for _, p in up.log)
    resumed = sim.now
    conn.resume_receiving()
    sim.run(lambda: ended(client, conn), max_time=600)
    assert drop_unchoke["count"] == 1  # the first unchoke was lost
    unchokes = [t for t, p in up.log if t >= resumed and p.delay_requested == 0]
    assert 2 <= len(unchokes) <= 1 + UNCHOKE_REPEATS
    # repeated one RTO later, not at the 1-RTO-per-probe pace of a choked sender
    assert unchokes[1] - unchokes[0] <= conn.rtt.rto + 0.01
    assert bytes(client.received[conn.local_stream_id]) == data
    # once data flows, the unchoke stops riding on our packets
    last_data = max(t for t, p in sim.links[id(server)][0].log if p.payload)
    assert all(t <= last_data + ONE_WAY for t in unchokes)
