"""Timers: RFC 6298 RTO and backoff, Karn's rule, max resends, connect and inactivity timeouts,
delayed ACKs, clean close."""

from __future__ import annotations

import itertools

import pytest

from i2proxy.streaming.events import (
    ConnectionClosed,
    ConnectionReset,
    DataReceived,
    ResetReason,
)
from i2proxy.streaming.options import StreamingOptions
from i2proxy.streaming.packet import Flag
from i2proxy.streaming.rtt import RttEstimator
from tests.unit.streaming_sim import Endpoint, Link, Simulation, ended, only


def resets(endpoint, conn):
    return [e for e in endpoint.events[conn.local_stream_id] if isinstance(e, ConnectionReset)]


def quiet(*conns) -> bool:
    """Established and nothing in flight on either side."""
    return all(c.state.value == "established" and c.in_flight == 0 for c in conns)


def test_rto_first_sample_sets_srtt_r_rttvar_half_r_rto_three_r():
    est = RttEstimator(initial_rto=9.0, min_rto=0.1, max_rto=45.0)
    assert est.rto == 9.0
    est.add_sample(0.4)
    assert (est.srtt, est.rttvar) == (0.4, 0.2)
    assert est.rto == pytest.approx(0.4 + 4 * 0.2)


def test_rto_later_samples_use_alpha_one_eighth_beta_one_quarter():
    est = RttEstimator(initial_rto=9.0, min_rto=0.1, max_rto=45.0)
    est.add_sample(0.4)
    est.add_sample(0.8)
    rttvar = 0.75 * 0.2 + 0.25 * abs(0.4 - 0.8)
    srtt = 0.875 * 0.4 + 0.125 * 0.8
    assert est.rttvar == pytest.approx(rttvar) and est.srtt == pytest.approx(srtt)
    assert est.rto == pytest.approx(srtt + 4 * rttvar)


def test_rto_is_clamped_and_backoff_doubles_up_to_the_maximum():
    est = RttEstimator(initial_rto=1.0, min_rto=0.5, max_rto=6.0)
    est.add_sample(0.01)
    assert est.rto == 0.5
    est.back_off()
    assert est.rto == 1.0
    for _ in range(5):
        est.back_off()
    assert est.rto == 6.0
    est.add_sample(0.01)  # a new sample ends the backoff
    assert est.rto == 0.5


def test_syn_retransmissions_back_off_exponentially_then_reset_after_max_resends():
    options = StreamingOptions(initial_rto=1.0, max_rto=45.0, max_resends=8, connect_timeout=1e4)
    client, server = Endpoint("client", 0, options), Endpoint("server", 1, options)
    blackhole = Link(loss=1.0)
    sim = Simulation(client, server, blackhole, Link())
    conn = client.connect(server, 0.0, b"hello")
    sim.run(lambda: conn.is_terminated, max_time=1e4)
    syn_times = [t for t, p in blackhole.log if p.is_syn]
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(syn_times)]
    assert gaps == [1, 2, 4, 8, 16, 32, 45, 45]
    assert resets(client, conn)[0].reason is ResetReason.MAX_RESENDS
    assert conn.stats.retransmissions == 8


def test_karn_no_rtt_sample_from_a_retransmitted_packet():
    options = StreamingOptions(initial_rto=1.0)
    client, server = Endpoint("client", 0, options), Endpoint("server", 1, options)
    sim = Simulation(client, server, Link(drop=lambda i, p: i == 0), Link())
    conn = client.connect(server, 0.0, b"hi")
    sim.run(lambda: conn.state.value == "established", max_time=30)
    assert conn.stats.retransmissions == 1
    assert conn.rtt.srtt is None  # the only ACKed packet was sent twice


def test_connect_timeout_when_nothing_answers():
    options = StreamingOptions(connect_timeout=5.0)
    client, server = Endpoint("client", 0, options), Endpoint("server", 1, options)
    sim = Simulation(client, server, Link(loss=1.0), Link())
    conn = client.connect(server, 0.0, b"x")
    end = sim.run(lambda: conn.is_terminated, max_time=100)
    assert end == pytest.approx(5.0)
    assert resets(client, conn)[0].reason is ResetReason.CONNECT_TIMEOUT


def test_data_unacknowledged_after_max_resends_resets_and_tells_the_peer():
    options = StreamingOptions(initial_rto=0.5, max_rto=2.0, max_resends=3)
    client, server = Endpoint("client", 0, options), Endpoint("server", 1, options)
    cut = {"on": False}
    up = Link(drop=lambda i, p: cut["on"] and not p.has(Flag.RESET))
    sim = Simulation(client, server, up, Link(drop=lambda i, p: cut["on"]))
    conn = client.connect(server, 0.0, b"open")
    sim.run(lambda: server.connections and quiet(conn, only(server)), max_time=10)
    cut["on"] = True
    conn.send(b"lost forever")
    sim.run(lambda: conn.is_terminated, max_time=100)
    assert resets(client, conn)[0].reason is ResetReason.MAX_RESENDS
    assert any(p.has(Flag.RESET) for _, p in up.log)
    sim.run(lambda: only(server).is_terminated, max_time=200)
    assert resets(server, only(server))[0].reason is ResetReason.PEER_RESET


def test_a_single_packet_is_acked_after_a_tenth_of_the_rtt_two_at_once():
    options = StreamingOptions(initial_ack_delay=0.2)
    client, server = Endpoint("client", 0, options), Endpoint("server", 1, options)
    back = Link(delay=0.05)
    sim = Simulation(client, server, Link(delay=0.05), back)
    conn = client.connect(server, 0.0, b"open")
    sim.run(lambda: conn.state.value == "established" and conn.in_flight == 0, max_time=10)
    sim.run(max_time=sim.now + 1.0)
    srtt = only(server).rtt.srtt
    assert 0.1 <= srtt < 0.2
    start, before = sim.now, len(back.log)
    conn.send(b"one")
    sim.run(lambda: len(back.log) > before, max_time=start + 5)
    assert sim.now - (start + 0.05) == pytest.approx(srtt / 10)  # i2pd's RTT/10, not 200 ms
    start, before = sim.now, len(back.log)
    conn.send(b"a" * 1730 * 2)  # two packets arrive together: ACKed at once
    sim.run(lambda: len(back.log) > before, max_time=start + 5)
    assert sim.now - start == pytest.approx(0.05, abs=0.0015)  # one way, no ACK delay


def test_idle_connection_sends_an_empty_sequenced_probe_and_survives_when_acked():
    options = StreamingOptions(inactivity_timeout=10.0)
    client, server = Endpoint("client", 0, options), Endpoint("server", 1, options)
    up = Link()
    sim = Simulation(client, server, up, Link())
    conn = client.connect(server, 0.0, b"open")
    sim.run(max_time=35.0)
    probes = [round(t) for t, p in up.log if p.sequence_num > 0 and not p.payload]
    # the first after 10 s of silence; later ones only when the peer's own probes stop coming
    assert probes and probes[0] == 10
    assert not conn.is_terminated and conn.in_flight == 0


def test_idle_connection_resets_when_the_probe_is_never_acked():
    options = StreamingOptions(inactivity_timeout=10.0, max_resends=3, initial_rto=1.0, max_rto=2.0)
    client, server = Endpoint("client", 0, options), Endpoint("server", 1, options)
    cut = {"on": False}
    cut_link = Link(drop=lambda i, p: cut["on"])
    sim = Simulation(client, server, cut_link, Link(drop=lambda i, p: cut["on"]))
    conn = client.connect(server, 0.0, b"open")
    sim.run(lambda: server.connections and quiet(conn, only(server)), max_time=5)
    cut_at = sim.now
    cut["on"] = True
    sim.run(lambda: conn.is_terminated, max_time=100)
    assert resets(client, conn)[0].reason is ResetReason.MAX_RESENDS
    assert 10.0 < sim.now - cut_at < 20.0


def test_inactivity_action_disconnect_resets_at_the_timeout():
    options = StreamingOptions(inactivity_timeout=10.0, inactivity_action="disconnect")
    client, server = Endpoint("client", 0, options), Endpoint("server", 1, options)
    sim = Simulation(client, server, Link(), Link())
    conn = client.connect(server, 0.0, b"open")
    sim.run(lambda: conn.is_terminated, max_time=100)
    assert resets(client, conn)[0].reason is ResetReason.INACTIVITY


def test_both_sides_close_and_each_reports_connection_closed():
    client, server = Endpoint("client", 0), Endpoint("server", 1)
    sim = Simulation(client, server, Link(), Link())

    def on_event(conn, event, now):
        if isinstance(event, DataReceived):
            conn.send(b"bye")
            conn.close()

    server.on_event = on_event
    conn = client.connect(server, 0.0, b"hi")
    conn.close()
    sim.run(max_time=100)
    assert ended(client, conn) and ended(server, only(server))
    for endpoint, c in ((client, conn), (server, only(server))):
        assert isinstance(endpoint.events[c.local_stream_id][-1], ConnectionClosed)
        assert c.get_timer() is None


def test_our_close_answering_the_peer_close_need_not_be_acked_like_i2pd():
    """i2pd terminates once its CLOSE is ACKed and never ACKs ours: the stream still ends
    cleanly (ConnectionClosed) within the linger, without a reset."""
    client, server = Endpoint("client", 0), Endpoint("server", 1)
    up = Link(drop=lambda i, p: p.has(Flag.CLOSE))  # our CLOSE never gets through
    sim = Simulation(client, server, up, Link())

    def on_server_event(conn, event, now):
        if isinstance(event, DataReceived):
            conn.send(b"answer")
            conn.close()

    def on_client_event(conn, event, now):
        if type(event).__name__ == "StreamEnded":
            conn.close()

    server.on_event = on_server_event
    client.on_event = on_client_event
    conn = client.connect(server, 0.0, b"request")
    sim.run(
        lambda: any(isinstance(e, ConnectionClosed) for e in client.events[conn.local_stream_id]),
        max_time=60,
    )
    assert isinstance(client.events[conn.local_stream_id][-1], ConnectionClosed)
    assert not resets(client, conn)
    assert sim.now < 12


def test_close_after_a_burst_goes_alone_once_all_data_is_acknowledged():
    """i2pd's SAM bridge truncates data still queued when CLOSE arrives: CLOSE must wait."""
    client, server = Endpoint("client", 0), Endpoint("server", 1)
    up, down = Link(delay=0.05), Link(delay=0.05)
    sim = Simulation(client, server, up, down)
    conn = client.connect(server, 0.0, b"x" * 20_000)
    conn.close()
    sim.run(lambda: server.connections and ended(server, only(server)), max_time=60)
    close_at, close = next((t, p) for t, p in up.log if p.has(Flag.CLOSE))
    assert close.payload == b""
    last_data = max(p.sequence_num for _, p in up.log if p.payload)
    acks = [t for t, p in down.log if p.ack_through >= last_data and not p.has(Flag.NO_ACK)]
    assert acks and close_at >= min(acks) + 0.05  # sent after that ACK arrived
    assert bytes(server.received[only(server).local_stream_id]) == b"x" * 20_000
