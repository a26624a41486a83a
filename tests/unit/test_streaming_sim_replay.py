"""Replay protection in the SYN (spec 0.9.58) and offline-signed peers (spec 0.9.39).

Each test reads like the clause it checks:
- "the SYN's NACK field carries the 32-byte hash of the destination it is sent to (NACK count 8)";
- "a receiver drops a SYN whose eight NACKs name another destination; older peers send none";
- "an offline-signed peer signs with its transient key; the key rides only in its SYN, so its
  later CLOSE and RESET are verified with the key kept from there".
"""

from __future__ import annotations

import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from i2proxy.streaming.connection import Connection, PacketRejected
from i2proxy.streaming.events import ConnectionReset, StreamEnded
from i2proxy.streaming.packet import (
    REPLAY_NACK_COUNT,
    Flag,
    OfflineSignature,
    Packet,
    decode,
    encode,
    replay_nacks,
)
from tests.unit.streaming_sim import Endpoint, keys


def drain(conn: Connection) -> list:
    out = []
    while (event := conn.next_event()) is not None:
        out.append(event)
    return out


def syn_from(sender: int, *, nacks: tuple[int, ...] = (), stream_id: int = 55) -> Packet:
    packet = Packet(
        0,
        stream_id,
        nacks=nacks,
        flags=Flag.SYNCHRONIZE | Flag.NO_ACK,
        from_destination=keys(sender).destination,
        max_packet_size=1730,
    )
    return decode(encode(packet, keys(sender)))


# ---------------------------------------------------------------- our SYN


def test_our_syn_carries_the_target_hash_as_eight_nacks():
    conn = Endpoint("client", 0).connect(Endpoint("server", 1), 0.0, b"GET / HTTP/1.1\r\n\r\n")
    syn = decode(conn.packets_to_send(0.0)[0])
    assert syn.is_syn and syn.has(Flag.NO_ACK)
    assert len(syn.nacks) == REPLAY_NACK_COUNT
    assert struct.pack("!8I", *syn.nacks) == keys(1).destination.hash


def test_a_retransmitted_syn_still_names_its_target():
    conn = Endpoint("client", 0).connect(Endpoint("server", 1), 0.0, b"x")
    conn.packets_to_send(0.0)
    later = conn.get_timer()
    assert later is not None
    conn.handle_timer(later)
    resent = [decode(d) for d in conn.packets_to_send(later)]
    syns = [p for p in resent if p.is_syn]
    assert syns and struct.pack("!8I", *syns[0].nacks) == keys(1).destination.hash


def test_our_syn_reply_and_data_packets_carry_no_replay_nacks():
    syn = syn_from(0)
    server = Connection.incoming(syn, keys=keys(1), local_stream_id=9, now=0.0)
    server.send(b"answer")
    reply = decode(server.packets_to_send(0.0)[0])
    assert reply.is_syn and reply.nacks == ()


# ---------------------------------------------------------------- incoming SYN


def test_a_syn_naming_us_in_its_nacks_is_accepted():
    syn = syn_from(0, nacks=replay_nacks(keys(1).destination.hash))
    conn = Connection.incoming(syn, keys=keys(1), local_stream_id=9, now=0.0)
    assert conn.remote_stream_id == 55


def test_a_syn_whose_nacks_name_another_destination_is_dropped():
    syn = syn_from(0, nacks=replay_nacks(keys(2).destination.hash))
    with pytest.raises(PacketRejected, match="another destination"):
        Connection.incoming(syn, keys=keys(1), local_stream_id=9, now=0.0)


def test_a_syn_without_replay_nacks_from_an_older_peer_is_accepted():
    Connection.incoming(syn_from(0), keys=keys(1), local_stream_id=9, now=0.0)
    Connection.incoming(syn_from(0, nacks=(1, 2, 3)), keys=keys(1), local_stream_id=10, now=0.0)


async def test_the_manager_drops_a_replayed_syn_and_counts_it():
    from i2proxy.streaming.manager import StreamManager

    sent: list[bytes] = []
    manager = StreamManager(keys(1), lambda dest, data, src, dst: sent.append(data))
    manager.listen(lambda reader, writer: None)
    replayed = encode(
        Packet(
            0,
            77,
            nacks=replay_nacks(keys(2).destination.hash),
            flags=Flag.SYNCHRONIZE | Flag.NO_ACK,
            from_destination=keys(0).destination,
        ),
        keys(0),
    )
    manager.handle_payload(replayed)
    assert manager.invalid_packets == 1
    assert manager.stream_count == 0 and sent == []
    assert manager.replay_protected_syns == 0
    genuine = encode(
        Packet(
            0,
            78,
            nacks=replay_nacks(keys(1).destination.hash),
            flags=Flag.SYNCHRONIZE | Flag.NO_ACK,
            from_destination=keys(0).destination,
        ),
        keys(0),
    )
    manager.handle_payload(genuine)
    assert manager.replay_protected_syns == 1 and manager.stream_count == 1
    await manager.close()


# ---------------------------------------------------------------- offline-signed peers


class TransientSigner:
    """Signs as ``keys(index)``'s destination with a transient Ed25519 key it authorised."""

    def __init__(self, index: int) -> None:
        self.destination = keys(index).destination
        self._key = Ed25519PrivateKey.generate()
        public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        block = struct.pack("!IH", 2_000_000_000, 7) + public
        self.offline = OfflineSignature(2_000_000_000, 7, public, keys(index).sign(block))

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)


def offline_syn(signer: TransientSigner) -> Packet:
    packet = Packet(
        0,
        55,
        flags=Flag.SYNCHRONIZE | Flag.NO_ACK,
        from_destination=signer.destination,
        max_packet_size=1730,
        offline_signature=signer.offline,
        payload=b"GET /",
    )
    return decode(encode(packet, signer))


def test_an_offline_signed_peers_close_is_verified_with_the_transient_key_from_its_syn():
    signer = TransientSigner(0)
    conn = Connection.incoming(offline_syn(signer), keys=keys(1), local_stream_id=9, now=0.0)
    conn.packets_to_send(0.0)
    close = Packet(9, 55, sequence_num=1, flags=Flag.CLOSE)
    conn.receive_packet(encode(close, signer), 0.1)
    assert conn.stats.invalid_packets == 0
    assert any(isinstance(e, StreamEnded) for e in drain(conn))


def test_an_offline_signed_peers_reset_is_obeyed():
    signer = TransientSigner(0)
    conn = Connection.incoming(offline_syn(signer), keys=keys(1), local_stream_id=9, now=0.0)
    conn.packets_to_send(0.0)
    conn.receive_packet(encode(Packet(9, 55, flags=Flag.RESET), signer), 0.1)
    assert any(isinstance(e, ConnectionReset) for e in drain(conn))


def test_a_close_signed_by_the_destination_key_instead_of_the_transient_key_is_dropped():
    signer = TransientSigner(0)
    conn = Connection.incoming(offline_syn(signer), keys=keys(1), local_stream_id=9, now=0.0)
    conn.packets_to_send(0.0)
    conn.receive_packet(encode(Packet(9, 55, sequence_num=1, flags=Flag.CLOSE), keys(0)), 0.1)
    assert conn.stats.invalid_packets == 1
    assert not any(isinstance(e, StreamEnded) for e in drain(conn))


def test_a_transient_key_not_authorised_by_the_destination_is_rejected():
    signer = TransientSigner(0)
    forged = TransientSigner(2)  # authorised by keys(2), claimed for keys(0)
    signer.offline = forged.offline
    signer._key = forged._key
    with pytest.raises(PacketRejected, match="signature"):
        Connection.incoming(offline_syn(signer), keys=keys(1), local_stream_id=9, now=0.0)


def test_an_offline_signed_servers_syn_reply_key_verifies_its_later_close():
    signer = TransientSigner(1)
    conn = Endpoint("client", 0).connect(Endpoint("server", 1), 0.0, b"x")
    conn.packets_to_send(0.0)
    reply = Packet(
        conn.local_stream_id,
        66,
        flags=Flag.SYNCHRONIZE,
        from_destination=signer.destination,
        offline_signature=signer.offline,
        payload=b"hi",
    )
    conn.receive_packet(encode(reply, signer), 0.1)
    assert conn.state.value == "established"
    conn.receive_packet(
        encode(Packet(conn.local_stream_id, 66, sequence_num=1, flags=Flag.CLOSE), signer), 0.2
    )
    assert conn.stats.invalid_packets == 0
    assert any(isinstance(e, StreamEnded) for e in drain(conn))
