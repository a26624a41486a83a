"""What our ACK pattern does to an i2pd 2.58.0 sender's estimates (``tests/unit/i2pd258_sender.py``,
its ``ProcessAck`` rules as read in Streaming.cpp 2.58.0). docs/STREAMING.md "The i2pd 2.58
sender"."""

from __future__ import annotations

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
    est = I2pd258Estimator(first_rtt_sample=True, win_dropped=False, resend_timer=False)
    est.on_ack(10, 1, {1: 0}, 2)  # first sample 10: jitter 10 / 5 + 3
    assert est.jitter == 5
    for n in range(2, 200):  # samples 10, 11, 10, 11 ...: |delta| + 3 = 4 each after the 1st
        est.on_ack(10 * n + n % 2, n, {n: 10 * (n - 1)}, n + 1)
    # 197 differences; i2pd divides the sum by their count (the first term is not counted)
    assert est.jitter == (5 + 197 * 4) // 197 == 4
    est.on_ack(3000, 200, {200: 2790}, 201)  # one 210 ms sample
    assert est.jitter == (5 + 197 * 4 + 202) // 198 == 5  # the drop threshold: MinRTT + 30 ms


def test_at_0ms_an_ack_every_second_packet_drops_the_window_at_every_ack_path_stall():
    # the delay-based drop alone (with the resend timer, its second expiry comes first:
    # test_a_stall_longer_than_two_rtos_resets_the_window_and_the_estimates)
    run = paced_run(ack_every_packets=2, stalls=STALLS, resend_timer=False, **FAST)
    # ~100 samples inflated by up to 200 ms each move the slow EWMA (alpha 0.02) past
    # MinRTT + 6 x jitter, a jitter that ~500 calm samples a second had kept near 3 ms
    assert len(run.estimator.drops) == len(STALLS)
    assert all(window == 3 for _, window in run.estimator.drops)


def test_at_0ms_an_ack_clock_of_10ms_sees_the_same_stalls_without_a_window_drop():
    run = paced_run(ack_clock=10, stalls=STALLS, resend_timer=False, **FAST)
    assert run.estimator.drops == []
    assert run.acks < 1000  # against 4 999 one per second packet
    # an ACK every 8th packet spaces the samples alike and keeps the window too
    every_8th = paced_run(ack_every_packets=8, stalls=STALLS, resend_timer=False, **FAST)
    assert every_8th.estimator.drops == []


def test_a_clock_at_the_2ms_floor_is_as_dense_as_every_second_packet_and_drops_alike():
    run = paced_run(ack_clock=2, stalls=STALLS, resend_timer=False, **FAST)
    assert len(run.estimator.drops) == len(STALLS)


def test_on_a_100ms_path_no_ack_pattern_drops_the_window_at_these_stalls():
    for pattern in ({"ack_every_packets": 2}, {"ack_clock": 10}, {"ack_clock": 40}):
        assert paced_run(stalls=STALLS, **SLOW, **pattern).estimator.drops == []


def test_at_0ms_a_200ms_stall_is_two_resend_expiries_unless_acks_are_40ms_apart():
    # RTO = max(20, 1.3 RTT + jitter + ACK interval), re-armed by every ACK and not backed off:
    # a 200 ms silence is two expiries when RTO < 100 ms, and the second puts the window back
    # to 10, restarts the estimates and switches tunnel or lease
    for pattern in ({"ack_every_packets": 2}, {"ack_clock": 10}, {"ack_clock": 20}):
        run = paced_run(stalls=STALLS, resend_timer=False, **FAST, **pattern)
        assert MIN_RTO <= run.estimator.rto < 100
        assert run.estimator.double_expiries == len(STALLS)
    # the ACK interval is in the RTO: ACKs 40 ms apart make it > 100 ms (one expiry), but the
    # sender's window must then cover 40 ms of packets
    run = paced_run(ack_clock=40, stalls=STALLS, resend_timer=False, **FAST)
    assert run.estimator.rto > 100


def test_on_a_100ms_path_the_rto_is_near_a_stall_for_every_pattern():
    for pattern in ({"ack_every_packets": 2}, {"ack_clock": 10}, {"ack_clock": 40}):
        assert 150 < paced_run(stalls=STALLS, **SLOW, **pattern).estimator.rto < 300


#: One ACK message in a hundred lost on the link (1 % loss per TCP segment), each stalling
#: the ACK path from when it left: a tail-loss probe, ~400 ms at 50 ms per link (100 ms RTT),
#: ~1 s at 200 ms per link. Fewer ACKs meet fewer of them.
LOST_1_IN_100 = {"lost_ack_every": 100}


def test_at_100ms_each_stall_is_a_double_expiry_unless_acks_are_half_an_rtt_apart():
    # 2 x RTO = 2 x (1.3 x 100 + jitter + ACK interval) against a 400 ms silence: only the
    # ACK interval is ours. An ACK per 2nd packet (or per 10 ms) meets 16-19 lost ACKs in 20 s
    # and every one resets the window to 10; ACKs 50 ms apart (half the RTT) meet 3, of which
    # at most one is a double expiry
    slow = {"seconds": 20, "packet_every": 3, "rtt": 100, "lost_ack_stall": 400, **LOST_1_IN_100}
    for dense in ({"ack_every_packets": 2}, {"ack_clock": 10}):
        assert paced_run(**slow, **dense).estimator.double_expiries >= 16
    half_rtt = paced_run(ack_clock=50, **slow)
    assert half_rtt.acks < 400
    assert half_rtt.estimator.double_expiries <= 1
    assert half_rtt.estimator.rto > 200  # the ACK interval is in it


def test_at_200ms_acks_20ms_or_more_apart_keep_the_window_at_every_stall():
    # RTT 400 ms and a 1 s silence: one expiry, never two, for any pattern; but samples every
    # packet or 10 ms make the slow EWMA cross MinRTT + 6 x jitter at every stall (the
    # delay-based drop, window to 3), and the 50 ms ceiling does not
    slow = {"seconds": 20, "packet_every": 10, "rtt": 400, "lost_ack_stall": 1000, **LOST_1_IN_100}
    for pattern in ({"ack_every_packets": 2}, {"ack_clock": 10}):
        est = paced_run(**slow, **pattern).estimator
        assert est.double_expiries == 0
        assert len(est.drops) >= 9
    est = paced_run(ack_clock=50, **slow).estimator
    assert (est.double_expiries, est.drops) == (0, [])


def test_at_0ms_the_10ms_floor_meets_a_quarter_of_the_stalls_of_an_ack_per_2nd_packet():
    # a 200 ms silence is two expiries for any clock a window can cover at 0 ms (RTO 20-60
    # ms), so what the receiver decides is how many of its ACKs meet a loss
    fast = {"seconds": 20, "packet_every": 1, "rtt": 4, "lost_ack_stall": 200, **LOST_1_IN_100}
    ratio = paced_run(ack_every_packets=2, **fast).estimator.double_expiries
    floor = paced_run(ack_clock=10, **fast).estimator.double_expiries
    assert ratio >= 90
    assert floor <= ratio / 4
