"""Security: SYN, CLOSE and RESET must carry a valid signature of the peer; FROM must match;
anything invalid is dropped and counted, never fatal."""

from __future__ import annotations

import random
import struct

import pytest

from i2proxy.streaming.connection import Connection, PacketRejected
from i2proxy.streaming.events import ConnectionReset, StreamEnded
from i2proxy.streaming.packet import Flag, Packet, decode, encode
from tests.unit.streaming_sim import Endpoint, Link, Simulation, keys, only


def established_pair():
    client, server = Endpoint("client", 0), Endpoint("server", 1)
    sim = Simulation(client, server, Link(), Link())
    conn = client.connect(server, 0.0, b"hello")
    sim.run(lambda: conn.state.value == "established" and conn.in_flight == 0, max_time=10)
    return sim, client, server, conn, only(server)


def from_server(conn: Connection, server_conn: Connection, **fields) -> Packet:
    base = dict(
        send_stream_id=conn.local_stream_id,
        receive_stream_id=server_conn.local_stream_id,
        sequence_num=server_conn._next_seq,
        ack_through=0,
    )
    base.update(fields)
    return Packet(**base)


def events_of(endpoint, conn):
    return [type(e) for e in endpoint.events[conn.local_stream_id]]


def drain(conn):
    out = []
    while (event := conn.next_event()) is not None:
        out.append(event)
    return out


def test_close_signed_by_someone_else_is_dropped_and_counted():
    sim, _client, _server, conn, sconn = established_pair()
    drain(conn)
    forged = encode(from_server(conn, sconn, flags=Flag.CLOSE), keys(2))
    conn.receive_packet(forged, sim.now)
    assert conn.stats.invalid_packets == 1
    assert not any(isinstance(e, StreamEnded) for e in drain(conn))


def test_unsigned_reset_is_dropped():
    sim, _client, _server, conn, sconn = established_pair()
    drain(conn)
    raw = bytearray(encode(from_server(conn, sconn)))
    struct.pack_into("!H", raw, 18, int(Flag.RESET))
    conn.receive_packet(bytes(raw), sim.now)
    assert conn.stats.invalid_packets == 1
    assert not conn.is_terminated


def test_reset_signed_by_the_peer_is_obeyed():
    sim, _client, _server, conn, sconn = established_pair()
    drain(conn)
    conn.receive_packet(encode(from_server(conn, sconn, flags=Flag.RESET), keys(1)), sim.now)
    assert conn.is_terminated
    assert any(isinstance(e, ConnectionReset) for e in drain(conn))


def test_syn_reply_from_another_destination_is_dropped():
    client = Endpoint("client", 0)
    conn = client.connect(Endpoint("server", 1), 0.0, b"x")
    conn.packets_to_send(0.0)
    impostor = Packet(
        conn.local_stream_id,
        777,
        flags=Flag.SYNCHRONIZE,
        from_destination=keys(2).destination,
        max_packet_size=1730,
    )
    conn.receive_packet(encode(impostor, keys(2)), 0.1)
    assert conn.stats.invalid_packets == 1
    assert conn.state.value == "syn-sent"


def test_incoming_syn_whose_signature_is_not_from_its_from_is_rejected():
    syn = Packet(0, 55, flags=Flag.SYNCHRONIZE, from_destination=keys(0).destination)

    class Liar:
        destination = keys(0).destination

        @staticmethod
        def sign(data: bytes) -> bytes:
            return keys(2).sign(data)

    packet = decode(encode(syn, Liar()))
    with pytest.raises(PacketRejected, match="signature"):
        Connection.incoming(packet, keys=keys(1), local_stream_id=9, now=0.0)


def test_packets_for_another_stream_id_pair_are_dropped():
    sim, client, _server, conn, sconn = established_pair()
    drain(conn)
    wrong = encode(from_server(conn, sconn, receive_stream_id=424242, payload=b"inject"))
    conn.receive_packet(wrong, sim.now)
    assert conn.stats.invalid_packets == 1
    assert bytes(client.received[conn.local_stream_id]) == b""


def test_mutated_packets_are_dropped_or_handled_never_raised():
    sim, _client, _server, conn, sconn = established_pair()
    rng = random.Random(9)
    valid = [
        encode(from_server(conn, sconn, payload=b"data")),
        encode(from_server(conn, sconn, flags=Flag.CLOSE), keys(1)),
        encode(from_server(conn, sconn, nacks=(1, 2), delay_requested=5)),
    ]
    for _ in range(3000):
        raw = bytearray(rng.choice(valid))
        for _ in range(rng.randrange(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        if rng.random() < 0.2:
            raw = raw[: rng.randrange(len(raw))]
        conn.receive_packet(bytes(raw), sim.now)  # must not raise
        conn.packets_to_send(sim.now)
        conn.handle_timer(sim.now)
        drain(conn)
    assert conn.stats.invalid_packets > 0
