"""Which senders get the resend-storm ACK hold (``streaming/i2pd245.py``): one whose data packet
3 answers our first ACK a round trip later (i2pd 2.45.1, a first flight of 2), also when its
packet 2 waited a few ms for the site's write; not a paced i2pd 2.54+ sender that spreads its
first flight over tens of ms, nor one that answered our pre-ACK's request for an immediate ACK
(only 2.54+ does), whatever its timing."""

from __future__ import annotations

from i2proxy.streaming.connection import Connection
from i2proxy.streaming.options import StreamingOptions
from i2proxy.streaming.packet import Packet, decode, encode
from tests.unit.i2pd_sender import PEER_STREAM_ID, data_packet, syn_reply
from tests.unit.streaming_sim import keys


def new_client(request: bytes = b"GET / HTTP/1.1\r\n\r\n") -> tuple[Connection, list[Packet]]:
    """Our client after its first flight (SYN with ``request``, pre-ACK), and that flight."""
    conn = Connection.outgoing(
        keys=keys(0),
        remote_destination=keys(1).destination,
        local_stream_id=777,
        now=0.0,
        options=StreamingOptions(),
    )
    conn.send(request)
    return conn, [decode(d) for d in conn.packets_to_send(0.0)]


def quick_ack(conn: Connection) -> bytes:
    """i2pd 2.54+'s answer to a plain ACK with DELAY_REQUESTED 0: a plain ACK of our SYN."""
    return encode(
        Packet(send_stream_id=conn.local_stream_id, receive_stream_id=PEER_STREAM_ID, ack_through=0)
    )


def client_after(
    rtt: float, third_after_ack: float, spacing: float = 0.0, *, answered: bool = False
) -> tuple[Connection, float]:
    """Our client with an empty (i2pd) SYN reply after ``rtt`` (and, with ``answered``, the
    answer to its pre-ACK's ACK request), data packets 1 and 2 one RTT later ``spacing`` apart,
    our ACK of them, and packet 3 ``third_after_ack`` after that ACK; returns it and the time."""
    conn, _ = new_client()
    conn.receive_packet(syn_reply(conn), rtt)
    if answered:
        conn.receive_packet(quick_ack(conn), rtt)
    conn.receive_packet(data_packet(conn, 1), 2 * rtt)
    data_at = 2 * rtt + spacing
    conn.receive_packet(data_packet(conn, 2), data_at)
    assert conn.packets_to_send(data_at)  # the ACK of 1-2 (and of the SYN reply)
    now = data_at + third_after_ack
    conn.receive_packet(data_packet(conn, 3), now)
    conn.packets_to_send(now)
    return conn, now


def acked_within(conn: Connection, now: float, limit: float) -> bool:
    """Does an ACK leave within ``limit`` seconds of ``now`` (timers run as they fall due)?"""
    if conn.packets_to_send(now):
        return True
    while (when := conn.get_timer()) is not None and when <= now + limit:
        conn.handle_timer(when)
        if conn.packets_to_send(when):
            return True
    return False


def test_a_paced_sender_is_not_taken_for_245():
    # a 2.58 first stream at 50 ms per link: packets 60 ms apart (RTT/10 by its own estimate)
    conn, now = client_after(rtt=0.100, third_after_ack=0.060, spacing=0.060)
    conn.receive_packet(data_packet(conn, 2), now + 0.005)  # a resend: its timer fired
    assert acked_within(conn, now + 0.005, 0.020)  # within the ACK delay, not after a hold
    assert conn.stats.ack_holds == 0


def test_a_sender_answering_our_ack_a_round_trip_later_is_held():
    conn, now = client_after(rtt=0.100, third_after_ack=0.100, spacing=0.0002)
    conn.receive_packet(data_packet(conn, 2), now + 0.005)
    assert conn.packets_to_send(now + 0.005) == []
    assert conn.stats.ack_holds == 1


def test_a_245_sender_whose_packet_2_waited_for_the_sites_write_is_held():
    # 0 ms path: packet 2 4 ms after packet 1, packet 3 4.5 ms after our ACK (traced on 2.45.1)
    conn, now = client_after(rtt=0.002, third_after_ack=0.0045, spacing=0.004)
    conn.receive_packet(data_packet(conn, 2), now + 0.001)
    assert conn.packets_to_send(now + 0.001) == []
    assert conn.stats.ack_holds == 1


def test_the_pre_ack_asks_for_an_immediate_ack():
    _, flight = new_client()
    pre_acks = [p for p in flight if p.is_plain_ack and p.send_stream_id == 0]
    assert len(pre_acks) == 1 and pre_acks[0].delay_requested == 0


def test_a_sender_that_answered_the_ack_request_is_not_held_whatever_its_timing():
    # the 2.45.1 timing of test_a_sender_answering_our_ack_a_round_trip_later_is_held
    conn, now = client_after(rtt=0.100, third_after_ack=0.100, spacing=0.0002, answered=True)
    assert conn.stats.ack_request_answered and conn.stats.i2pd245_sender is False
    conn.receive_packet(data_packet(conn, 2), now + 0.005)
    assert acked_within(conn, now + 0.005, 0.020)
    assert conn.stats.ack_holds == 0


def test_a_plain_ack_after_a_syn_resend_is_no_answer_to_the_request():
    # 2.45.1 answers a duplicate SYN with a plain ACK of it
    conn, _ = new_client()
    resent_at = conn.get_timer()
    assert resent_at is not None
    conn.handle_timer(resent_at)
    assert any(decode(d).is_syn for d in conn.packets_to_send(resent_at))
    conn.receive_packet(quick_ack(conn), resent_at + 0.1)
    assert not conn.stats.ack_request_answered


def test_a_plain_ack_once_we_sent_data_packets_is_no_answer_to_the_request():
    # 2.45.1 acknowledges our data packets with plain ACKs (a request longer than the SYN)
    conn, flight = new_client(b"P" * 5000)
    assert max(p.sequence_num for p in flight) >= 1
    conn.receive_packet(quick_ack(conn), 0.1)
    assert not conn.stats.ack_request_answered
