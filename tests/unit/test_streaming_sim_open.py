"""One-phase open: the SYN carries the request, the answer costs one round trip.

Against three kinds of server over a simulated 50 ms one-way link:
- our own (answer rides in the SYN reply; speculative ACKs are not trusted),
- an i2pd 2.45.1 model (empty SYN reply, window of one, any ACK trusted),
- a peer that bundles its answer into the SYN reply AND trusts speculative ACKs (the danger case
  for the pre-ACK).
"""

from __future__ import annotations

import pytest

from i2proxy.streaming.connection import Connection, PeerProfile, State
from i2proxy.streaming.events import ConnectionReset, DataReceived, ResetReason
from i2proxy.streaming.options import StreamingOptions
from tests.unit.streaming_sim import (
    I2PD_OPTIONS,
    BundlingTrustingConnection,
    Endpoint,
    I2pdLikeConnection,
    Link,
    Simulation,
    ended,
    only,
)

ONE_WAY = 0.05
REQUEST = b"GET / HTTP/1.1\r\nHost: x.b32.i2p\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


def answering_server(server: Endpoint, close: bool = True) -> None:
    """Server application: answers (and closes) as soon as the whole request is in."""

    def on_event(conn, event, now):
        if isinstance(event, DataReceived) and bytes(server.received[conn.local_stream_id]) == (
            REQUEST
        ):
            conn.send(RESPONSE)
            if close:
                conn.close()

    server.on_event = on_event


def first_byte_time(client: Endpoint) -> dict:
    seen: dict = {}

    def on_event(conn, event, now):
        if isinstance(event, DataReceived) and "t" not in seen:
            seen["t"] = now

    client.on_event = on_event
    return seen


def run_exchange(
    server_class: type[Connection],
    server_options: StreamingOptions,
    *,
    client_options: StreamingOptions | None = None,
    profile: PeerProfile | None = None,
    drop_syn_reply: bool = False,
):
    client = Endpoint("client", 0, client_options or StreamingOptions())
    server = Endpoint("server", 1, server_options, server_class)
    client.profile = profile
    drop = (lambda i, p: i == 0 and p.is_syn) if drop_syn_reply else None
    sim = Simulation(client, server, Link(delay=ONE_WAY), Link(delay=ONE_WAY, drop=drop))
    answering_server(server)
    seen = first_byte_time(client)
    conn = client.connect(server, 0.0, REQUEST)
    sim.run(lambda: ended(client, conn) or conn.is_terminated, max_time=120)
    return client, server, conn, seen, sim


def test_our_server_answers_in_the_syn_reply_one_round_trip():
    client, server, conn, seen, sim = run_exchange(Connection, StreamingOptions())
    assert bytes(client.received[conn.local_stream_id]) == RESPONSE
    assert seen["t"] == pytest.approx(2 * ONE_WAY)
    syn_reply = next(p for _, p in sim.links[id(server)][0].log if p.is_syn)
    assert syn_reply.payload == RESPONSE and syn_reply.has(syn_reply.flags.CLOSE)
    assert conn.stats.initial_data_in_syn and conn.stats.syn_payload_bytes == len(REQUEST)


def test_i2pd_server_without_pre_ack_costs_two_round_trips():
    """Reproduces the interop finding: i2pd holds its answer until its SYN reply is ACKed."""
    client, _, conn, seen, _ = run_exchange(
        I2pdLikeConnection, I2PD_OPTIONS, client_options=StreamingOptions(pre_ack=False)
    )
    assert bytes(client.received[conn.local_stream_id]) == RESPONSE
    assert seen["t"] >= 4 * ONE_WAY - 1e-9


def test_i2pd_server_with_pre_ack_answers_in_one_round_trip():
    client, _, conn, seen, _ = run_exchange(I2pdLikeConnection, I2PD_OPTIONS)
    assert bytes(client.received[conn.local_stream_id]) == RESPONSE
    assert conn.stats.pre_ack_sent
    assert seen["t"] == pytest.approx(2 * ONE_WAY)


def test_pre_ack_learns_that_i2pd_syn_replies_are_empty():
    _client, _, conn, _, _ = run_exchange(I2pdLikeConnection, I2PD_OPTIONS)
    assert conn.profile().syn_reply_empty is True


def test_pre_ack_is_not_trusted_by_our_server_so_a_lost_syn_reply_is_resent():
    """Our server ignores ACKs from packets sent before its SYN reply could be seen, so its
    data-bearing SYN reply is retransmitted and nothing is lost."""
    options = StreamingOptions(initial_rto=0.5)
    client, _, conn, _, _sim = run_exchange(Connection, options, drop_syn_reply=True)
    assert bytes(client.received[conn.local_stream_id]) == RESPONSE
    assert ended(client, conn)


def test_lost_data_bearing_syn_reply_after_trusted_pre_ack_resets_instead_of_losing_bytes():
    """The danger case: the peer counted our pre-ACK, so it never resends its SYN reply and the
    answer in it is gone. The client must fail loudly, never deliver a silently shortened
    stream."""
    options = StreamingOptions(initial_rto=0.5)
    server_options = options.with_overrides(connect_delay=0.0)
    client, _server, conn, _, _ = run_exchange(
        BundlingTrustingConnection, server_options, client_options=options, drop_syn_reply=True
    )
    # The whole answer (with CLOSE) was in the lost packet and the peer will never resend it:
    # the client must not report a clean (empty) end of stream; it fails when no SYN reply
    # ever arrives.
    assert not ended(client, conn)
    assert bytes(client.received[conn.local_stream_id]) == b""
    resets = [e for e in client.events[conn.local_stream_id] if isinstance(e, ConnectionReset)]
    assert resets and resets[0].reason is ResetReason.CONNECT_TIMEOUT


def test_guard_resets_when_later_packets_prove_the_syn_reply_was_lost():
    """A bundling peer that trusted the pre-ACK and keeps sending: seq 1 arrives, seq 0 never
    does; after the guard the stream is reset with PRE_ACK_DATA_LOST."""
    options = StreamingOptions(initial_rto=0.5, pre_ack_guard=1.0)
    client = Endpoint("client", 0, options)
    server = Endpoint(
        "server", 1, options.with_overrides(connect_delay=0.0), BundlingTrustingConnection
    )
    sim = Simulation(
        client, server, Link(delay=ONE_WAY), Link(delay=ONE_WAY, drop=lambda i, p: p.is_syn)
    )

    def on_event(conn, event, now):
        if isinstance(event, DataReceived) and not conn.stats.bytes_sent:
            conn.send(b"part one of the answer ")
            sim_state["server"] = conn

    sim_state: dict = {}
    server.on_event = on_event

    conn = client.connect(server, 0.0, REQUEST)
    sim.run(lambda: "server" in sim_state, max_time=5)
    sim_state["server"].send(b"part two")
    sim.run(lambda: conn.is_terminated, max_time=30)
    resets = [e for e in client.events[conn.local_stream_id] if isinstance(e, ConnectionReset)]
    assert resets and resets[0].reason is ResetReason.PRE_ACK_DATA_LOST
    assert bytes(client.received[conn.local_stream_id]) == b""  # never "part two" alone


def test_lost_empty_syn_reply_from_a_known_i2pd_peer_is_skipped_and_the_answer_delivered():
    """Control block says this peer's SYN replies are empty (i2pd): after the guard the lost
    one is taken as empty and the stream continues byte-exact."""
    profile = PeerProfile(syn_reply_empty=True)
    client, _, conn, _, _ = run_exchange(
        I2pdLikeConnection,
        I2PD_OPTIONS,
        client_options=StreamingOptions(pre_ack_guard=1.0),
        profile=profile,
        drop_syn_reply=True,
    )
    assert bytes(client.received[conn.local_stream_id]) == RESPONSE
    assert ended(client, conn)
    assert conn.state in (State.CLOSED, State.ESTABLISHED)


def test_lost_empty_syn_reply_from_an_unknown_peer_fails_loudly():
    client, _, conn, _, _ = run_exchange(
        I2pdLikeConnection,
        I2PD_OPTIONS,
        client_options=StreamingOptions(pre_ack_guard=1.0),
        drop_syn_reply=True,
    )
    resets = [e for e in client.events[conn.local_stream_id] if isinstance(e, ConnectionReset)]
    assert resets and resets[0].reason is ResetReason.PRE_ACK_DATA_LOST


def test_no_pre_ack_to_a_peer_known_to_bundle_data_in_its_syn_reply():
    profile = PeerProfile(syn_reply_empty=False)
    client, _, conn, _, _ = run_exchange(Connection, StreamingOptions(), profile=profile)
    assert not conn.stats.pre_ack_sent
    assert bytes(client.received[conn.local_stream_id]) == RESPONSE


def test_packets_before_their_syn_are_buffered_and_delivered():
    """A request larger than one packet: follow-on packets may overtake the SYN."""
    client = Endpoint("client", 0)
    server = Endpoint("server", 1)
    big = bytes(range(256)) * 40  # 10240 bytes: SYN + 5 follow-on packets
    syn_delay = Link(delay=ONE_WAY, reorder=0.0)
    sim = Simulation(client, server, syn_delay, Link(delay=ONE_WAY))
    original = syn_delay.schedule

    def slow_syn(data, now, rng):
        times = original(data, now, rng)
        return [t + 0.03 for t in times] if syn_delay.log[-1][1].is_syn else times

    syn_delay.schedule = slow_syn  # the SYN arrives after its follow-on packets
    conn = client.connect(server, 0.0, big)
    conn.close()
    sim.run(lambda: server.connections and ended(server, only(server)), max_time=60)
    assert bytes(server.received[only(server).local_stream_id]) == big


def test_empty_syn_gets_an_immediate_syn_reply_so_a_waiting_client_can_send():
    """SAM/i2pd clients send an empty SYN and wait for our reply before their request."""
    client = Endpoint("client", 0, StreamingOptions(connect_delay=0.0))
    server = Endpoint("server", 1, StreamingOptions(connect_delay=5.0))
    back = Link(delay=ONE_WAY)
    sim = Simulation(client, server, Link(delay=ONE_WAY), back)
    conn = client.connect(server, 0.0)
    sim.run(lambda: conn.state is State.ESTABLISHED, max_time=10)
    assert sim.now == pytest.approx(2 * ONE_WAY)


def test_peer_that_did_not_count_the_pre_ack_resends_its_lost_syn_reply_within_the_guard():
    """A peer with a 9 s initial RTO that did not count the pre-ACK: our ACK of its later packet
    (NACKing 0) gives it an RTT sample, so it resends the lost SYN reply after a few round
    trips, well inside the guard, and the answer arrives whole and in order."""
    client = Endpoint("client", 0)
    server = Endpoint("server", 1, StreamingOptions(initial_rto=9.0, connect_delay=0.0))
    sim = Simulation(
        client,
        server,
        Link(delay=ONE_WAY),
        Link(delay=ONE_WAY, drop=lambda i, p: i == 0 and p.is_syn),
    )

    def on_event(conn, event, now):
        if isinstance(event, DataReceived) and not conn.stats.bytes_sent:
            conn.send(b"first part, in the SYN reply / ")
            server_conns.append(conn)

    server_conns: list = []
    server.on_event = on_event
    conn = client.connect(server, 0.0, REQUEST)
    sim.run(lambda: bool(server_conns), max_time=5)
    server_conns[0].send(b"second part")
    server_conns[0].close()
    sim.run(lambda: ended(client, conn) or conn.is_terminated, max_time=60)
    assert bytes(client.received[conn.local_stream_id]) == (
        b"first part, in the SYN reply / second part"
    )
    assert sim.now < 1.0
    assert conn.stats.duplicates == 0 and not conn._seq0_skipped
