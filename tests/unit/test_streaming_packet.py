"""Packet codec: the layout, every flag and option of the streaming spec, strict errors."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from i2proxy.streaming.packet import (
    MIN_HEADER_SIZE,
    Flag,
    OfflineSignature,
    Packet,
    PacketError,
    decode,
    encode,
    signed_bytes,
    verify_signature,
)
from tests.unit.streaming_sim import keys


def test_minimal_header_is_22_bytes_big_endian():
    data = encode(Packet(send_stream_id=1, receive_stream_id=2, sequence_num=3, ack_through=4))
    assert len(data) == MIN_HEADER_SIZE
    assert data == struct.pack("!IIIIBBHH", 1, 2, 3, 4, 0, 0, 0, 0)


def test_flag_bits_match_the_spec_table():
    assert [f.value for f in Flag] == [1 << i for i in range(12)]
    assert Flag.SYNCHRONIZE == 1 and Flag.NO_ACK == 0x400 and Flag.OFFLINE_SIGNATURE == 0x800


def test_nacks_and_resend_delay_round_trip():
    p = Packet(5, 6, 7, 9, nacks=(8, 6), resend_delay=3, payload=b"data")
    q = decode(encode(p))
    assert (q.nacks, q.resend_delay, q.payload, q.ack_through) == ((8, 6), 3, b"data", 9)


def test_syn_like_i2pd_has_flags_04a9_and_options_in_spec_order():
    k = keys(0)
    syn = Packet(
        0,
        1234,
        flags=Flag.SYNCHRONIZE | Flag.NO_ACK,
        from_destination=k.destination,
        max_packet_size=1812,
        payload=b"GET / HTTP/1.1\r\n\r\n",
    )
    data = encode(syn, k)
    flags, optsize = struct.unpack_from("!HH", data, 18)
    assert flags == 0x04A9
    assert optsize == 391 + 2 + 64
    options = data[22 : 22 + optsize]
    assert options[:391] == k.destination.to_bytes()
    assert options[391:393] == struct.pack("!H", 1812)
    q = decode(data)
    assert q.from_destination == k.destination and q.max_packet_size == 1812
    assert verify_signature(q, k.destination)


def test_signature_covers_whole_packet_with_signature_zeroed():
    k = keys(0)
    data = encode(Packet(9, 8, 1, 0, flags=Flag.CLOSE, payload=b"bye"), k)
    q = decode(data, signature_length=64)
    zeroed = signed_bytes(q)
    assert zeroed[q.signature_offset : q.signature_offset + 64] == bytes(64)
    assert k.destination.verify(zeroed, q.signature)
    tampered = bytearray(data)
    tampered[-1] ^= 1  # payload byte
    assert not verify_signature(decode(bytes(tampered), signature_length=64), k.destination)
    assert not verify_signature(q, keys(1).destination)


def test_signature_without_from_takes_rest_of_options_when_length_unknown():
    k = keys(0)
    q = decode(encode(Packet(9, 8, 1, 0, flags=Flag.RESET), k))
    assert len(q.signature) == 64 and verify_signature(q, k.destination)


def test_delay_requested_and_choke():
    q = decode(encode(Packet(1, 2, delay_requested=61000)))
    assert q.has(Flag.DELAY_REQUESTED) and q.choke
    assert not decode(encode(Packet(1, 2, delay_requested=100))).choke


def test_close_reset_and_syn_must_be_signed():
    for flag in (Flag.SYNCHRONIZE, Flag.CLOSE, Flag.RESET):
        with pytest.raises(PacketError, match="must be signed"):
            encode(Packet(1, 2, flags=flag))


def test_offline_signature_is_parsed_and_verified():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    k = keys(0)
    transient = Ed25519PrivateKey.generate()
    pub = transient.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    unsigned = OfflineSignature(2_000_000_000, 7, pub, b"")
    offline = OfflineSignature(2_000_000_000, 7, pub, k.sign(unsigned.signed_bytes()))

    class TransientSigner:
        destination = k.destination

        @staticmethod
        def sign(data: bytes) -> bytes:
            return transient.sign(data)

    data = encode(
        Packet(
            0, 5, flags=Flag.SYNCHRONIZE, from_destination=k.destination, offline_signature=offline
        ),
        TransientSigner(),
    )
    q = decode(data)
    assert q.has(Flag.OFFLINE_SIGNATURE) and q.offline_signature == offline
    assert verify_signature(q, k.destination)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x00" * 21, "shorter than"),
        (struct.pack("!IIIIB", 1, 2, 3, 4, 3) + b"\x00" * 5, "NACKs announced"),
        (struct.pack("!IIIIBBHH", 1, 2, 3, 4, 0, 0, 0, 10) + b"\x00" * 3, "runs past"),
        (struct.pack("!IIIIBBHH", 1, 2, 3, 4, 0, 0, 0x40, 1) + b"\x00", "DELAY_REQUESTED"),
        (struct.pack("!IIIIBBHH", 1, 2, 3, 4, 0, 0, 0, 2) + b"\x00\x00", "left unparsed"),
        (struct.pack("!IIIIBBHH", 1, 2, 3, 4, 0, 0, 0x20, 10) + b"\x00" * 10, "FROM_INCLUDED"),
        (b"\x00" * 70000, "exceeds"),
    ],
)
def test_malformed_packets_raise_precise_errors(data, message):
    with pytest.raises(PacketError, match=message):
        decode(data)


def test_random_garbage_never_raises_anything_but_packet_error():
    import random

    rng = random.Random(4)
    for _ in range(3000):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80)))
        with contextlib.suppress(PacketError):
            decode(blob)


u32 = st.integers(0, 0xFFFFFFFF)


@given(
    ids=st.tuples(u32, u32, u32, u32),
    nacks=st.lists(u32, max_size=20),
    resend_delay=st.integers(0, 255),
    control=st.sampled_from([Flag(0), Flag.ECHO, Flag.NO_ACK, Flag.PROFILE_INTERACTIVE]),
    delay=st.none() | st.integers(0, 0xFFFF),
    mps=st.none() | st.integers(1, 0xFFFF),
    payload=st.binary(max_size=300),
)
def test_any_unsigned_packet_round_trips(ids, nacks, resend_delay, control, delay, mps, payload):
    p = Packet(
        *ids,
        nacks=tuple(nacks),
        resend_delay=resend_delay,
        flags=control,
        delay_requested=delay,
        max_packet_size=mps,
        payload=payload,
    )
    q = decode(encode(p))
    assert (q.send_stream_id, q.receive_stream_id, q.sequence_num, q.ack_through) == ids
    assert (q.nacks, q.resend_delay, q.delay_requested, q.max_packet_size, q.payload) == (
        tuple(nacks),
        resend_delay,
        delay,
        mps,
        payload,
    )
    assert q.flags & ~(Flag.DELAY_REQUESTED | Flag.MAX_PACKET_SIZE_INCLUDED) == control
