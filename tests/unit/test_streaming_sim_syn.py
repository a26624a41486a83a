"""The SYN under load: when it is resent, and what a lost SYN reply costs.

Each test is one rule of ``Connection``'s SYN path (``_hold_syn_timer``, the pre-ACK guard),
driven through the deterministic simulator.
"""

from __future__ import annotations

import itertools
import math

from i2proxy.streaming.connection import PeerProfile
from i2proxy.streaming.events import DataReceived, StreamEnded
from i2proxy.streaming.options import StreamingOptions
from i2proxy.streaming.packet import Flag, Packet
from tests.unit.streaming_sim import (
    I2PD_OPTIONS,
    Endpoint,
    I2pdLikeConnection,
    Link,
    Simulation,
    ended,
)
from tests.unit.test_streaming_sim_open import REQUEST, RESPONSE, answering_server


def syn_times(link: Link) -> list[float]:
    return [t for t, packet in link.log if packet.is_syn]


def test_a_short_shared_rtt_does_not_make_the_syn_resend_before_the_initial_rto():
    """Earlier connections measured 20 ms (RTO 0.1 s), but this SYN's answer takes 2 s (the
    peer is busy): it is sent once, not at 0.1, 0.3, 0.7 and 1.5 s as the shared RTO said."""
    client = Endpoint("client", 0, StreamingOptions(initial_rto=3.0))
    client.profile = PeerProfile(srtt=0.02, syn_reply_empty=True)
    server = Endpoint("server", 1, I2PD_OPTIONS, I2pdLikeConnection)
    up, down = Link(delay=1.0), Link(delay=1.0)
    sim = Simulation(client, server, up, down)
    answering_server(server)
    conn = client.connect(server, 0.0, REQUEST)
    sim.run(lambda: ended(client, conn) or conn.is_terminated, max_time=60)
    assert bytes(client.received[conn.local_stream_id]) == RESPONSE
    assert syn_times(up) == [0.0]
    assert conn.stats.retransmissions == 0


def test_an_unanswered_syn_is_resent_after_the_initial_rto_then_doubling():
    client = Endpoint("client", 0, StreamingOptions(initial_rto=3.0, connect_timeout=40))
    client.profile = PeerProfile(srtt=0.02)
    server = Endpoint("server", 1)
    up = Link(delay=0.01, drop=lambda i, p: p.is_syn)
    sim = Simulation(client, server, up, Link(delay=0.01))
    conn = client.connect(server, 0.0, REQUEST)
    sim.run(lambda: conn.is_terminated, max_time=60)
    sent = syn_times(up)
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(sent)]
    assert gaps[:3] == [3.0, 6.0, 12.0]


def test_a_lost_empty_syn_reply_from_a_known_i2pd_peer_costs_no_guard_wait():
    """The peer's SYN replies are known to be empty (control block): when its data arrives
    without the SYN reply (dropped by a router under load), the stream goes on at once instead
    of waiting out the 10 s pre-ACK guard first."""
    client = Endpoint("client", 0, StreamingOptions(pre_ack_guard=10.0))
    client.profile = PeerProfile(syn_reply_empty=True)
    server = Endpoint("server", 1, I2PD_OPTIONS, I2pdLikeConnection)
    down = Link(delay=0.05, drop=lambda i, p: i == 0 and p.is_syn)
    sim = Simulation(client, server, Link(delay=0.05), down)
    answering_server(server)
    conn = client.connect(server, 0.0, REQUEST)
    sim.run(lambda: ended(client, conn) or conn.is_terminated, max_time=60)
    assert bytes(client.received[conn.local_stream_id]) == RESPONSE
    assert sim.now < 1.0


def close_after_answer(client: Endpoint, server: Endpoint) -> None:
    """The HTTP proxy's order: the client closes once the whole answer is in; the server's
    application closes when it sees the client's CLOSE (i2pd answers a CLOSE with its own)."""

    def client_event(conn, event, now):
        if isinstance(event, DataReceived) and bytes(client.received[conn.local_stream_id]) == (
            RESPONSE
        ):
            conn.close()

    def server_event(conn, event, now):
        if isinstance(event, DataReceived) and bytes(server.received[conn.local_stream_id]) == (
            REQUEST
        ):
            conn.send(RESPONSE)
        if isinstance(event, StreamEnded):
            conn.close()

    client.on_event = client_event
    server.on_event = server_event


def packets_after_peer_close(profile: PeerProfile | None) -> tuple[list[Packet], float]:
    """What the client sends after the server's CLOSE (its answer to ours) arrived, until the
    server would resend that CLOSE; and when the server's CLOSE left."""
    client = Endpoint("client", 0, StreamingOptions(initial_rto=3.0))
    client.profile = profile
    server = Endpoint("server", 1, I2PD_OPTIONS, I2pdLikeConnection)
    up, down = Link(delay=0.05), Link(delay=0.05)
    sim = Simulation(client, server, up, down)
    close_after_answer(client, server)
    conn = client.connect(server, 0.0, REQUEST)
    sim.run(lambda: ended(client, conn) and conn.state.value == "closed", max_time=60)
    assert bytes(client.received[conn.local_stream_id]) == RESPONSE
    sim.run(max_time=sim.now + 0.5)
    # Our simulated server, unlike i2pd, waits for that ACK and resends its CLOSE: look only
    # until the resend arrives.
    close_sent = [t for t, p in down.log if p.has(Flag.CLOSE)]
    arrived = close_sent[0] + down.delay
    resent = close_sent[1] + down.delay if len(close_sent) > 1 else math.inf
    return [p for t, p in up.log if arrived <= t < resent], close_sent[0]


def test_no_ack_for_the_close_an_i2pd_peer_answered_ours_with():
    """i2pd answers our CLOSE with its own and forgets the stream at once: an ACK of that CLOSE
    would only reach a stream that no longer exists ("Unknown stream" once per request)."""
    after, _ = packets_after_peer_close(PeerProfile(syn_reply_empty=True))
    assert after == []


def test_the_close_of_a_peer_not_known_as_i2pd_is_acknowledged():
    """Java waits for the ACK of its CLOSE: a peer whose SYN replies are not known to be empty
    gets it at once."""
    after, _ = packets_after_peer_close(PeerProfile(syn_reply_empty=False))
    assert len(after) == 1 and after[0].is_plain_ack
    assert after[0].ack_through >= 1
