"""Our receiver against the i2pd 2.45.1 sender (``tests/unit/i2pd_sender.py``, its rules as read
in Streaming.cpp): the sender of every GET through i2proxy. docs/STREAMING.md "ACKs"."""

from __future__ import annotations

import itertools

from i2proxy.streaming.connection import ACK_EVERY, BULK_ACK_EVERY
from tests.unit.i2pd_sender import (
    MAX_WINDOW_SIZE,
    data_packet,
    download,
    established_client,
)

#: A busy 0 ms path: 1 ms each way, 4 000 packets/s through routers, relay and proxy.
PATH = {"delay": 0.001, "service": 0.00025}


def ack_gaps(conn, first: int, count: int, now: float = 1.0) -> list[int]:
    """Feed packets first..first+count-1 at one instant; the packets after which an ACK left,
    as gaps between them."""
    at = []
    for seq in range(first, first + count):
        conn.receive_packet(data_packet(conn, seq), now)
        if conn.packets_to_send(now):
            at.append(seq)
        while conn.next_event() is not None:
            pass
    return [b - a for a, b in itertools.pairwise(at)]


def test_acks_go_every_second_packet_at_first_and_thin_to_an_eighth_of_the_window():
    conn = established_client()
    assert set(ack_gaps(conn, 1, 128)) == {ACK_EVERY}  # window of a young stream: <= 16
    assert set(ack_gaps(conn, 129, 512 - 128)[1:]) <= {2, 3, 4}  # ~sqrt(2 * 512) = 32: 4
    conn = established_client()
    ack_gaps(conn, 1, 8192)
    assert set(ack_gaps(conn, 8193, 256)[1:]) == {BULK_ACK_EVERY}  # 128 / 8


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
