"""What our ACK pattern does to an i2pd 2.58.0 sender's estimates (``tests/unit/i2pd258_sender.py``,
its ``ProcessAck`` rules as read in Streaming.cpp 2.58.0). docs/STREAMING.md "The i2pd 2.58
sender"."""

from __future__ import annotations

import itertools

from tests.unit.i2pd258_sender import MIN_RTO, I2pd258Estimator, paced_run

#: A 200 ms stall of the ACK path once a second (a router link's TCP segment lost with one
#: segment in flight waits a tail-loss probe; docs/TESTNET.md).
STALLS = tuple((start, 200) for start in range(1500, 10_000, 1000))
#: A 0 ms test network: ~4 ms round trip, one packet a millisecond (~1.7 MB/s).
FAST = {"seconds": 10, "packet_every": 1, "rtt": 4}
#: The 50 ms cells: 100 ms round trip, a window of 10 paced over it.
SLOW = {"seconds": 10, "packet_every": 10, "rtt": 100}


def test_an_ack_gives_one_rtt_sample_that_of_the_newest_packet_it_acknowledges():
    est = I2pd258Estimator(first_rtt_sample=True, win_dropped=False)
    est.on_ack(100, 3, {1: 10, 2: 40, 3: 90}, 4)
    assert est.min_rtt == est.rtt == 10  # 100 - 90: the older packets' 90 and 60 are not used


def test_the_jitter_is_a_mean_since_the_last_reset_so_calm_samples_dilute_a_stall():
    est = I2pd258Estimator(first_rtt_sample=True, win_dropped=False)
    est.on_ack(10, 1, {1: 0}, 2)  # first sample 10: jitter 10 / 5 + 3
    assert est.jitter == 5
    for n in range(2, 200):  # samples 10, 11, 10, 11 ...: |delta| + 3 = 4 each after the 1st
        est.on_ack(10 * n + n % 2, n, {n: 10 * (n - 1)}, n + 1)
    # 197 differences; i2pd divides the sum by their count (the first term is not counted)
    assert est.jitter == (5 + 197 * 4) // 197 == 4
    est.on_ack(3000, 200, {200: 2790}, 201)  # one 210 ms sample
    assert est.jitter == (5 + 197 * 4 + 202) // 198 == 5  # the drop threshold: MinRTT + 30 ms


def test_at_0ms_an_ack_every_second_packet_drops_the_window_at_every_ack_path_stall():
    run = paced_run(ack_every_packets=2, stalls=STALLS, **FAST)
    # ~100 samples inflated by up to 200 ms each move the slow EWMA (alpha 0.02) past
    # MinRTT + 6 x jitter, a jitter that ~500 calm samples a second had kept near 3 ms
    assert len(run.estimator.drops) == len(STALLS)
    assert all(window == 3 for _, window in run.estimator.drops)


def test_at_0ms_an_ack_clock_of_10ms_sees_the_same_stalls_without_a_window_drop():
    run = paced_run(ack_clock=10, stalls=STALLS, **FAST)
    assert run.estimator.drops == []
    assert run.acks < 1000  # against 4 999 one per second packet
    # an ACK every 8th packet spaces the samples alike and keeps the window too
    assert paced_run(ack_every_packets=8, stalls=STALLS, **FAST).estimator.drops == []


def test_a_clock_at_the_2ms_floor_is_as_dense_as_every_second_packet_and_drops_alike():
    run = paced_run(ack_clock=2, stalls=STALLS, **FAST)
    assert len(run.estimator.drops) == len(STALLS)


def test_on_a_100ms_path_no_ack_pattern_drops_the_window_at_these_stalls():
    for pattern in ({"ack_every_packets": 2}, {"ack_clock": 10}, {"ack_clock": 40}):
        assert paced_run(stalls=STALLS, **SLOW, **pattern).estimator.drops == []


def test_at_0ms_a_200ms_stall_is_two_resend_expiries_unless_acks_are_40ms_apart():
    # RTO = max(20, 1.3 RTT + jitter + ACK interval), re-armed by every ACK and not backed off:
    # a 200 ms silence is two expiries when RTO < 100 ms, and the second puts the window back
    # to 10, restarts the estimates and switches tunnel or lease
    for pattern in ({"ack_every_packets": 2}, {"ack_clock": 10}, {"ack_clock": 20}):
        assert MIN_RTO <= paced_run(stalls=STALLS, **FAST, **pattern).estimator.rto < 100
    # the ACK interval is in the RTO: ACKs 40 ms apart make it > 100 ms (one expiry), but the
    # sender's window must then cover 40 ms of packets
    assert paced_run(ack_clock=40, stalls=STALLS, **FAST).estimator.rto > 100


def test_on_a_100ms_path_the_rto_is_near_a_stall_for_every_pattern():
    for pattern in ({"ack_every_packets": 2}, {"ack_clock": 10}, {"ack_clock": 40}):
        assert 150 < paced_run(stalls=STALLS, **SLOW, **pattern).estimator.rto < 300


def test_a_paced_i2pd_sender_gets_acks_on_the_ack_delay_clock_and_nacks_at_once():
    from i2proxy.streaming.connection import MIN_ACK_DELAY
    from i2proxy.streaming.i2pd258 import MAX_ACK_INTERVAL
    from tests.unit.i2pd_sender import data_packet, established_client

    conn = established_client()  # an i2pd peer: empty SYN reply
    sent = []
    now = 1.0
    for seq in range(1, 201):  # one packet every 0.5 ms: its first flight was not 2 packets
        now += 0.0005
        conn.receive_packet(data_packet(conn, seq), now)
        if conn.packets_to_send(now):
            sent.append(now)
        timer = conn.get_timer()
        if timer is not None and timer <= now:
            conn.handle_timer(now)
            if conn.packets_to_send(now):
                sent.append(now)
    gaps = [b - a for a, b in itertools.pairwise(sent[1:])]
    # not at the ratio (one per 2nd packet: 100 ACKs) but once per ACK delay (2 ms here,
    # checked at the next packet) and never more than MAX_ACK_INTERVAL apart
    assert gaps and all(MIN_ACK_DELAY <= gap <= MAX_ACK_INTERVAL for gap in gaps)
    assert len(sent) <= 200 * 0.0005 / MIN_ACK_DELAY
    # a new hole is NACKed at once, whatever the clock
    conn.receive_packet(data_packet(conn, 203), now + 0.0001)
    assert conn.packets_to_send(now + 0.0001)
