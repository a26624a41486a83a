"""Loss recovery (streaming/recovery.py): each test is one rule of docs/STREAMING.md
"Loss recovery", driven through two real connections over the deterministic simulator."""

from __future__ import annotations

import pytest

from i2proxy.streaming.congestion import CubicCongestion, RenoCongestion, create
from i2proxy.streaming.options import OptionError, StreamingOptions
from i2proxy.streaming.packet import Flag
from i2proxy.streaming.recovery import PACKET_THRESHOLD, Recovery
from tests.unit.streaming_sim import EXACT_TIMING, Link, Simulation, established, only

OPTIONS = EXACT_TIMING
PACKET = 1730
ONE_WAY = 0.05


def send_spaced(sim: Simulation, conn, count: int, gap: float) -> None:
    """One full packet every ``gap`` seconds."""
    for _ in range(count):
        conn.send(bytes(PACKET))
        sim.run(max_time=sim.now + gap)


def data_sends(link: Link, seq: int) -> list[float]:
    """When the data packet with sequence ``seq`` was put on the link (first send and resends)."""
    return [t for t, p in link.log if p.sequence_num == seq and p.payload]


def test_rto_resends_only_the_oldest_packet_and_backs_off_not_a_flood():
    cut = {"on": False}
    up = Link(delay=ONE_WAY, drop=lambda i, p: cut["on"])
    _client, _server, conn, sim = established(up, Link(delay=ONE_WAY))
    cut["on"] = True
    start = sim.now
    conn.send(bytes(PACKET * 10))
    sim.run(max_time=start + 0.001)
    first_seq = min(conn.recovery.sent)
    rto = conn.rtt.rto
    sim.run(max_time=start + rto + 2 * rto + 4 * rto + 0.01)  # three expiries, backing off
    resent = [
        (round(t - start, 3), p.sequence_num) for t, p in up.log if t > start + 0.01 and p.payload
    ]
    assert [seq for _, seq in resent] == [first_seq] * 3  # the oldest alone, each time
    gaps = [b[0] - a[0] for a, b in zip([(0, 0), *resent], resent, strict=False)]
    assert gaps == pytest.approx([rto, 2 * rto, 4 * rto], abs=0.002)


def test_packets_reordered_by_fewer_than_three_are_not_retransmitted():
    # seq 5 arrives after 6 and 7 (held 25 ms while packets leave every 10 ms)
    up = Link(delay=ONE_WAY, hold=lambda i, p: 0.025 if p.sequence_num == 5 and p.payload else 0)
    _client, server, conn, sim = established(up, Link(delay=ONE_WAY))
    send_spaced(sim, conn, 12, 0.01)
    sim.run(lambda: conn.in_flight == 0, max_time=sim.now + 10)
    assert conn.stats.retransmissions == 0
    assert only(server).stats.duplicates == 0
    assert len(data_sends(up, 5)) == 1


def test_a_lost_packet_is_resent_once_three_later_packets_are_acknowledged():
    drops = {"done": False}

    def drop_seq5_once(i, p):
        if p.sequence_num == 5 and p.payload and not drops["done"]:
            drops["done"] = True
            return True
        return False

    up, down = Link(delay=ONE_WAY, drop=drop_seq5_once), Link(delay=ONE_WAY)
    _client, server, conn, sim = established(up, down)
    send_spaced(sim, conn, 12, 0.01)
    sim.run(lambda: conn.in_flight == 0, max_time=sim.now + 10)
    first, resend = data_sends(up, 5)
    # The ACK that proves three later packets arrived (ack through >= 5 + 3, 5 NACKed) left
    # the server one one-way delay before the resend, and none earlier triggered it.
    proof = [
        t
        for t, p in down.log
        if 5 in p.nacks and p.ack_through >= 5 + PACKET_THRESHOLD and t + ONE_WAY <= resend
    ]
    weaker = [t for t, p in down.log if 5 in p.nacks and p.ack_through < 5 + PACKET_THRESHOLD]
    assert proof and resend == pytest.approx(proof[0] + ONE_WAY)
    assert weaker and all(t + ONE_WAY < resend for t in weaker)  # earlier NACKs did not
    assert resend - first < conn.rtt.rto  # well before the retransmission timer
    assert conn.stats.retransmissions == 1
    assert bytes(server.received[only(server).local_stream_id]) == b"open" + bytes(PACKET * 12)


def test_a_tail_loss_costs_one_timeout_then_the_rest_is_resent_by_time_threshold():
    lost = {5, 6, 7, 8}
    seen: set[int] = set()

    def drop_tail_once(i, p):
        if p.sequence_num in lost and p.payload and p.sequence_num not in seen:
            seen.add(p.sequence_num)
            return True
        return False

    up = Link(delay=ONE_WAY, drop=drop_tail_once)
    _client, server, conn, sim = established(up, Link(delay=ONE_WAY))
    start = sim.now
    conn.send(bytes(PACKET * 8))  # seq 1..8, the last four lost
    sim.run(lambda: conn.in_flight == 0, max_time=start + 30)
    assert conn.stats.retransmissions == 4  # each lost packet once, nothing else
    # one RTO (for 5) and one more round trip (6, 7, 8 together), not an RTO per packet
    assert sim.now - start < conn.rtt.rto + 4 * 2 * ONE_WAY + 1.0
    resends = {seq: data_sends(up, seq)[1] for seq in (6, 7, 8)}
    assert len(set(resends.values())) == 1
    assert bytes(server.received[only(server).local_stream_id]) == b"open" + bytes(PACKET * 8)


def test_losses_in_one_window_halve_the_window_once():
    reno = RenoCongestion(initial_window=20, max_window=128)
    reno.on_packets_lost(1.0, largest_sent_time=0.9, timeout=False)
    assert reno.window == 10
    for sent_time in (0.91, 0.95, 0.99):  # same flight: sent before the episode began
        reno.on_packets_lost(1.05, largest_sent_time=sent_time, timeout=False)
    assert reno.window == 10
    reno.on_packets_lost(2.0, largest_sent_time=1.5, timeout=False)  # a new flight
    assert reno.window == 5


def test_no_window_growth_from_packets_sent_before_the_loss():
    reno = RenoCongestion(initial_window=20, max_window=128)
    reno.on_packets_lost(1.0, largest_sent_time=0.9, timeout=False)
    reno.on_packet_acked(1.1, sent_time=0.95)
    assert reno.window == 10
    for _ in range(10):
        reno.on_packet_acked(1.2, sent_time=1.05)
    assert reno.window == 11  # congestion avoidance: +1 per window


def test_a_second_timeout_in_the_same_episode_collapses_the_window():
    reno = RenoCongestion(initial_window=20, max_window=128)
    reno.on_packets_lost(1.0, largest_sent_time=0.5, timeout=True)
    assert reno.window == 2
    reno.on_packets_lost(3.0, largest_sent_time=0.5, timeout=True)
    assert reno.window == 1


def test_cubic_regrows_faster_than_reno_after_a_loss_on_a_long_path():
    windows = {}
    for cls in (RenoCongestion, CubicCongestion):
        cc = cls(initial_window=100, max_window=512)
        cc.on_rtt_sample(0.0, 0.8, 0.8)
        cc.on_packets_lost(0.0, largest_sent_time=-1.0, timeout=False)
        now = 0.0
        for _ in range(10):  # ten round trips of 0.8 s, a window's worth of ACKs each
            now += 0.8
            for _ in range(cc.window):
                cc.on_packet_acked(now, sent_time=now - 0.79)  # sent after the loss
        windows[cls] = cc.window
    assert windows[RenoCongestion] == 60  # 50 + 1 per round trip
    assert windows[CubicCongestion] > 90  # back near the 100 where the loss happened


def test_congestion_controller_is_chosen_by_the_streaming_option():
    options = StreamingOptions.from_properties({"i2p.streaming.congestion": "cubic"})
    _client, _server, conn, _sim = established(Link(), Link(), options)
    assert isinstance(conn.congestion, CubicCongestion)
    assert isinstance(create("reno", 6, 128), RenoCongestion)
    with pytest.raises(OptionError):
        StreamingOptions.from_properties({"i2p.streaming.congestion": "vegas"})


@pytest.mark.parametrize("algorithm", ["reno", "cubic"])
def test_both_controllers_deliver_byte_exact_at_five_percent_loss(algorithm):
    options = OPTIONS.with_overrides(congestion=algorithm)
    up, down = Link(delay=ONE_WAY, loss=0.05), Link(delay=ONE_WAY, loss=0.05)
    client, server, conn, sim = established(up, down, options)
    data = bytes(range(256)) * 800
    only(server).send(data)
    only(server).close()
    sim.run(lambda: len(client.received[conn.local_stream_id]) == len(data), max_time=600)
    assert bytes(client.received[conn.local_stream_id]) == data


def test_a_window_is_paced_over_the_rtt_not_sent_in_one_burst():
    options = OPTIONS.with_overrides(pacing=True, initial_window_size=32)
    up = Link(delay=ONE_WAY)
    _client, _server, conn, sim = established(up, Link(delay=ONE_WAY), options)
    srtt, window = conn.rtt.srtt, 32
    assert conn.congestion.window >= window
    start = sim.now
    conn.send(bytes(conn._payload_limit() * window))  # exactly `window` full packets
    sim.run(lambda: conn.in_flight == 0 and not conn.unsent_bytes, max_time=start + 10)
    times = [t for t, p in up.log if t >= start and p.payload]
    assert len(times) == window
    burst = max(times.count(t) for t in times)
    assert burst <= window // 4  # at most a quarter window at one instant
    spread = times[-1] - times[0]
    # spread out (the window grows as ACKs come back, so later gaps shrink), within one RTT
    assert srtt / 3 <= spread <= srtt


def test_new_packets_stop_two_windows_ahead_of_the_oldest_unacknowledged():
    options = OPTIONS.with_overrides(max_window_size=8, initial_window_size=8)
    # (the window is set by hand below; maxWindowSize only sets the spread limit here)
    recovery = Recovery(options)
    for seq in range(1, 9):
        assert recovery.can_send(seq, 0.0)
        recovery.on_packet_sent(seq, b"x", Flag(0), 0.0)
    recovery.on_ack_received(8, (1,), 0.1)  # 2..8 arrived, 1 missing
    recovery.congestion.window = 16  # as if the loss of 1 had not shrunk it
    for seq in range(9, 17):
        assert recovery.can_send(seq, 0.1)
        recovery.on_packet_sent(seq, b"x", Flag(0), 0.1)
    recovery.on_ack_received(16, (1,), 0.2)
    assert recovery.window_room() > 0  # the window alone would allow more...
    assert not recovery.can_send(17, 0.2)  # ...but the receiver keeps only 2 windows past 1
