"""Our receiver against the i2pd 2.45.1 sender (``tests/unit/i2pd_sender.py``, its rules as read
in Streaming.cpp): the sender of every GET through i2proxy. docs/STREAMING.md "ACKs"."""

from __future__ import annotations

import itertools

import pytest

from i2proxy.streaming import i2pd245
from i2proxy.streaming.connection import ACK_EVERY, BULK_ACK_EVERY
from i2proxy.streaming.packet import decode
from tests.unit.i2pd_sender import (
    MAX_WINDOW_SIZE,
    data_packet,
    download,
    established_client,
)

#: A busy 0 ms path: 1 ms each way, 4 000 packets/s through routers, relay and proxy.
PATH = {"delay": 0.001, "service": 0.00025}


def ack_gaps(conn, first: int, count: int, now: float = 1.0) -> list[int]:
    """Feed packets first..first+count-1 11 ms apart (past the ACK spacing for a paced i2pd
    sender, ``i2pd258``), packets 1 and 2 together as 2.45.1 sends its first flight of two;
    the packets after which an ACK left, as gaps between them."""
    at = []
    for seq in range(first, first + count):
        if seq != 2:
            now += 0.011
        conn.receive_packet(data_packet(conn, seq), now)
        if conn.packets_to_send(now):
            at.append(seq)
        while conn.next_event() is not None:
            pass
    return [b - a for a, b in itertools.pairwise(at)]


def test_acks_go_every_second_packet_at_first_and_thin_to_a_quarter_of_the_window():
    conn = established_client()
    assert set(ack_gaps(conn, 1, 32)) == {ACK_EVERY}  # window of a young stream: <= 8
    ack_gaps(conn, 33, 96)
    assert set(ack_gaps(conn, 129, 512 - 128)[1:]) <= {4, 5, 6, 7}  # ~sqrt(2 * 512) = 32: 8
    conn = established_client()
    ack_gaps(conn, 1, 8192)
    assert set(ack_gaps(conn, 8193, 256)[1:]) == {i2pd245.ACK_EVERY_245}  # 128 / 4


def test_on_a_long_path_a_245_sender_keeps_an_ack_per_eighth_of_the_window():
    conn = established_client()
    ack_gaps(conn, 1, 8192)
    conn.rtt.srtt = i2pd245.FAST_PATH_SRTT  # 50 ms per link: not measured with a quarter
    assert set(ack_gaps(conn, 8193, 256)[1:]) == {BULK_ACK_EVERY}  # 128 / 8


def test_fewer_acks_lose_less_time_to_acks_stalled_on_a_lossy_link():
    # 2 % of our ACK messages wait 0.2 s on the link (a lost segment, TCP's tail-loss probe)
    # and the 2.45.1 sender, its window full, waits with them: a quarter of the window per
    # ACK, not an eighth. Traced: 4-13 such gaps per slow 4 MB GET, 1.2-2.7 s (docs/BENCHMARKS.md).
    times = []
    for seed in range(1, 5):
        transfer = download(2400, **PATH, ack_stalls=0.02, seed=seed)
        assert transfer.received == 2400
        assert transfer.sender.resends == 0  # no ACK left its window empty before a stall
        assert transfer.sender.emptied == [0]
        assert transfer.acks < 400  # an eighth: ~545
        times.append(transfer.seconds)
    assert sorted(times)[1] < 2.0  # an eighth: 2.0-3.2 s, median 2.4 s; clean 0.61 s


def test_after_a_retransmission_acks_are_prompt_again():
    conn = established_client()
    ack_gaps(conn, 1, 8192)
    conn.receive_packet(data_packet(conn, 100), 1.0)  # a duplicate: the sender's timer fired
    conn.packets_to_send(1.0)
    assert set(ack_gaps(conn, 8193, 64)) == {ACK_EVERY}


def test_the_i2pd_245_sender_keeps_its_whole_window_and_resends_nothing():
    transfer = download(2500, **PATH)
    sender = transfer.sender
    assert transfer.received == 2500
    assert sender.resends == 0 and sender.halvings == 0
    assert sender.window == MAX_WINDOW_SIZE
    # after its SYN reply (our pre-ACK took it) no ACK took all it had in flight: its pipe never
    # ran dry and its resend timer was never re-armed at 1.5 x a few ms
    assert sender.emptied == [0]
    assert sender.rtt <= 4  # its frozen mean stayed at the path's round trip
    assert transfer.acks <= 2500 / 4  # one per 2nd packet was 1 250 ACKs


def test_a_slow_path_freezes_a_larger_rtt_and_still_no_resends():
    transfer = download(1500, delay=0.005, service=0.0005)
    assert transfer.received == 1500
    assert transfer.sender.resends == 0
    assert transfer.sender.emptied == [0]


# The resend storm (tests/unit/i2pd_sender.py, i2proxy/streaming/i2pd245.py): with a first RTT
# sample of 1 ms or more the 2.45.1 sender's timer runs at 1.5 x a frozen few-ms RTT, and every
# expiry with an ACK since the last is "attempt 1", which halves the window.


def test_a_first_rtt_sample_of_a_few_ms_no_longer_starts_a_resend_storm():
    quiet = download(2500, **PATH)  # pre-ACK sample 0 ms: the 9 s timer
    for lag in (0.001, 0.002, 0.003):  # 1-3 ms: a timer of 1-4 ms from the first data on
        transfer = download(2500, **PATH, pre_ack_lag=lag)
        sender = transfer.sender
        assert transfer.received == 2500
        assert transfer.receiver.stats.ack_holds >= 1
        assert sender.long_timeouts == 1  # attempt 2 once: its timer is 9 s from then on
        assert sender.resends <= 32 and sender.halvings <= 3
        assert transfer.seconds < 1.1 * quiet.seconds  # was 8x slower: window 1, all resent


def test_the_ack_after_a_hold_leaves_the_senders_window_not_empty():
    # an ACK of everything it sent would cancel its 9 s timer and re-arm it at the small RTO
    transfer = download(2500, **PATH, pre_ack_lag=0.002)
    assert transfer.sender.emptied == [0]


def test_an_expiry_of_the_quiet_timer_mid_transfer_costs_a_few_halvings_not_a_storm():
    # the 9 s timer, shortened to 0.3 s so that a short transfer outlives it
    transfer = download(4000, **PATH, initial_rto=300, pre_ack_lag=0.001)
    sender = transfer.sender
    assert transfer.received == 4000
    assert transfer.receiver.stats.ack_holds == sender.long_timeouts  # one hold per expiry
    assert sender.halvings <= 4 * sender.long_timeouts
    assert transfer.seconds < 2.0  # without the hold: 8 s, every packet resent


def test_acks_stop_just_before_the_quiet_timer_is_due_so_its_expiry_halves_once(monkeypatch):
    # the 9 s timer shortened to 0.3 s on both sides; a late ACK after its first expiry would
    # make the second "attempt 1" again (another halving)
    monkeypatch.setattr(i2pd245, "QUIET_TIMER", 0.3)
    transfer = download(4000, **PATH, initial_rto=300)
    sender = transfer.sender
    assert transfer.received == 4000
    assert sender.long_timeouts >= 3
    assert sender.halvings <= sender.long_timeouts + 1
    assert sender.emptied == [0]


def test_on_a_long_path_acks_go_on_through_the_quiet_timer_which_then_resends_nothing(
    monkeypatch,
):
    # 50 ms per link: the sender's RTO (1.5 x ~100 ms) outlasts its oldest packet while our ACKs
    # flow, so its quiet timer's expiries (shortened to 2 s on both sides) find nothing to
    # resend; holding ACKs before them made each one halve the window (8 halvings, 20.7 s)
    monkeypatch.setattr(i2pd245, "QUIET_TIMER", 2.0)
    transfer = download(4000, delay=0.05, initial_rto=2000)
    sender = transfer.sender
    assert transfer.received == 4000
    assert transfer.seconds > 3 * i2pd245.QUIET_TIMER  # it outlived several expiries
    assert transfer.receiver.rtt.srtt >= i2pd245.FAST_PATH_SRTT
    assert transfer.receiver.stats.ack_holds == 0
    assert sender.halvings == 0 and sender.resends == 0
    assert transfer.seconds < 12.0  # 8.8 s; with the holds 20.7 s


def hold_test_client(third_after_ack: float):
    """A client that got packets 1 and 2 at t=1, ACKed them, and packet 3 ``third_after_ack``
    later."""
    conn = established_client()
    for seq in (1, 2):
        conn.receive_packet(data_packet(conn, seq), 1.0)
    assert conn.packets_to_send(1.0)  # the ACK of 1-2
    conn.receive_packet(data_packet(conn, 3), 1.0 + third_after_ack)
    conn.packets_to_send(1.0 + third_after_ack)
    return conn


def test_a_duplicate_from_a_245_sender_holds_acks_until_its_expiries_stop():
    conn = hold_test_client(0.004)  # packet 3 came a round trip after our ACK: window of 2
    conn.receive_packet(data_packet(conn, 2), 1.010)  # expiry 1 resent packet 2
    conn.receive_packet(data_packet(conn, 4), 1.011)
    assert conn.packets_to_send(1.011) == []  # held, although 4 is new
    conn.receive_packet(data_packet(conn, 2), 1.020)  # expiry 2: the same packet again
    assert conn.packets_to_send(1.020) == []
    quiet, ack = next_ack(conn)
    assert quiet == pytest.approx(1.020 + 1.5 * 0.010)  # no third round within 1.5 gaps
    assert decode(ack).ack_through == 3  # all but the newest: the sender's window stays full
    later, ack = next_ack(conn)
    assert later - quiet <= 0.010  # the ACK delay
    assert decode(ack).ack_through == 4


def next_ack(conn) -> tuple[float, bytes]:
    """Run the connection's timers until a packet leaves: (when, the packet)."""
    for _ in range(100):
        now = conn.get_timer()
        conn.handle_timer(now)
        out = conn.packets_to_send(now)
        if out:
            (packet,) = out
            return now, packet
    raise AssertionError("no ACK left")


def test_a_sender_whose_first_flight_is_larger_than_two_is_not_held():
    conn = hold_test_client(0.0)  # packet 3 came with 1 and 2: i2pd 2.54+ (window 10), Java
    conn.receive_packet(data_packet(conn, 2), 1.010)
    assert conn.packets_to_send(1.010)  # the duplicate is acknowledged as before
    assert conn.stats.ack_holds == 0


def test_a_hold_ends_after_max_hold_if_the_expiries_do_not_stop():
    from i2proxy.streaming.i2pd245 import MAX_HOLD

    conn = hold_test_client(0.004)
    now = 1.010
    while now < 1.010 + MAX_HOLD:
        conn.receive_packet(data_packet(conn, 2), now)  # resent every 4 ms, forever
        assert conn.packets_to_send(now) == []
        now += 0.004
    conn.handle_timer(now)
    assert conn.packets_to_send(now)
    assert conn.stats.ack_holds == 1
