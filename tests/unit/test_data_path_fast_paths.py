"""The data path's fast paths give exactly what the general code gives, for every input.

Packets without NACKs or options (every data packet and ACK of a bulk transfer), stored gzip
frames, MessagePayload bodies and SendMessageExpires take shortcuts; anything else, and every
malformed input, must take the general code and fail there the same way.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from i2proxy.i2cp import messages as m
from i2proxy.i2cp.errors import I2CPProtocolError, PayloadFormatError
from i2proxy.i2cp.payload import _decode_payload_general, decode_payload, encode_payload
from i2proxy.streaming.packet import (
    Flag,
    Packet,
    PacketError,
    _decode_general,
    _encode_general,
    decode,
    encode,
)

u32 = st.integers(0, 0xFFFFFFFF)


def _outcome(function, *args):
    try:
        return function(*args)
    except (PacketError, PayloadFormatError, I2CPProtocolError) as exc:
        return (type(exc), str(exc))


def _packet_fields(packet):
    if isinstance(packet, tuple):
        return packet
    return (
        packet,
        type(packet.flags),
        packet.raw,
        packet.signature_offset,
        type(packet.payload),
    )


@given(
    header=st.tuples(u32, u32, u32, u32, st.integers(0, 255), st.integers(0, 0xFFFF)),
    nack_count=st.sampled_from([0, 0, 0, 1, 2]),
    option_size=st.sampled_from([0, 0, 0, 1, 2, 4]),
    tail=st.binary(max_size=64),
)
def test_decode_fast_path_equals_the_general_parse(header, nack_count, option_size, tail):
    send_id, receive_id, seq, ack, delay, flags = header
    data = struct.pack("!IIIIB", send_id, receive_id, seq, ack, nack_count)
    data += b"\x00\x00\x00\x07" * nack_count + struct.pack("!BHH", delay, flags, option_size)
    data += tail
    for blob in (data, data[: len(data) // 2]):
        fast = _outcome(decode, blob)
        general = _outcome(_decode_general, blob, None, None)
        assert _packet_fields(fast) == _packet_fields(general)


@pytest.mark.parametrize(
    "flags",
    [0, int(Flag.NO_ACK), int(Flag.CLOSE), int(Flag.ECHO), 0xF000, int(Flag.DELAY_REQUESTED)],
)
def test_header_only_packets_decode_alike_and_option_flags_without_options_fail(flags):
    data = struct.pack("!IIIIBBHH", 1, 2, 3, 4, 0, 9, flags, 0) + b"payload"
    fast, general = _outcome(decode, data), _outcome(_decode_general, data, None, None)
    assert _packet_fields(fast) == _packet_fields(general)
    if flags == int(Flag.DELAY_REQUESTED):
        assert fast[0] is PacketError  # the option its flag announces is missing
    else:
        assert fast.payload == b"payload" and fast.flags == flags


@given(
    ids=st.tuples(u32, u32, u32, u32),
    nacks=st.sampled_from([(), (), (5,), (1, 2, 3)]),
    resend_delay=st.integers(-1, 256),
    flags=st.integers(0, 0xFFFF),
    delay=st.none() | st.none() | st.integers(0, 0xFFFF),
    payload=st.binary(max_size=200),
)
def test_encode_fast_path_gives_the_general_bytes(ids, nacks, resend_delay, flags, delay, payload):
    packet = Packet(
        *ids,
        nacks=nacks,
        resend_delay=resend_delay,
        flags=Flag(flags & 0x0FFF) if flags & 0xF000 == 0 else flags,  # type: ignore[arg-type]
        delay_requested=delay,
        payload=payload,
    )
    assert _outcome(encode, packet) == _outcome(_encode_general, packet, None)


@pytest.mark.parametrize("field", ["send_stream_id", "sequence_num", "resend_delay"])
def test_encode_out_of_range_fields_still_raise_packet_error(field):
    packet = Packet(1, 2, 3, 4)
    setattr(packet, field, -1)
    with pytest.raises(PacketError, match=field):
        encode(packet)


def _stored_frames():
    return st.builds(
        lambda data, src, dst, proto: encode_payload(
            data, protocol=proto, src_port=src, dst_port=dst
        ),
        st.binary(max_size=300),
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFFFF),
        st.integers(0, 255),
    )


@given(frame=_stored_frames(), at=st.integers(0, 400), byte=st.integers(0, 255))
def test_payload_fast_path_equals_the_general_parse_even_when_mangled(frame, at, byte):
    mangled = bytearray(frame)
    mangled[at % len(mangled)] = byte
    for blob in (frame, bytes(mangled), frame[:-1], frame + b"\x00"):
        assert _outcome(decode_payload, blob) == _outcome(_decode_payload_general, blob, 65536)


def test_payload_fast_path_honours_max_size():
    frame = encode_payload(b"x" * 100, protocol=6)
    with pytest.raises(PayloadFormatError, match="exceeds 99"):
        decode_payload(frame, max_size=99)


def test_corrupted_stored_frames_are_rejected():
    frame = bytearray(encode_payload(b"data" * 100, protocol=6))
    frame[20] ^= 1  # inside the data: CRC no longer matches
    with pytest.raises(PayloadFormatError, match="CRC32"):
        decode_payload(bytes(frame))


@given(
    fields=st.tuples(st.integers(0, 0xFFFF), u32),
    payload=st.binary(max_size=100),
    announced=st.integers(-3, 3),
)
def test_message_payload_fast_path_equals_the_field_reader(fields, payload, announced):
    body = struct.pack(">HII", *fields, max(0, len(payload) + announced)) + payload
    fast = _outcome(m.MessagePayload.decode_body, body)
    if isinstance(fast, m.MessagePayload):
        assert fast == m.MessagePayload(*fields, payload)
    else:
        assert fast[0] is I2CPProtocolError


def test_message_payload_truncated_body_raises():
    with pytest.raises(I2CPProtocolError, match="MessagePayload"):
        m.MessagePayload.decode_body(b"\x00\x01\x00\x00")


@given(chunks=st.lists(st.integers(1, 300), min_size=1, max_size=40))
def test_frame_decoder_gives_the_same_frames_however_the_bytes_are_cut(chunks):
    messages = [m.MessagePayload(1, i, bytes([i]) * (i * 37 % 500)) for i in range(12)] + [
        m.MessageStatus(1, 2, 4, 0, 9)
    ]
    wire = b"".join(m.encode_message(message) for message in messages)
    decoder = m.FrameDecoder()
    frames, offset, i = [], 0, 0
    while offset < len(wire):
        size = chunks[i % len(chunks)]
        frames += decoder.feed(wire[offset : offset + size])
        offset += size
        i += 1
    assert [frame.decode() for frame in frames] == messages
    assert decoder.buffered == 0


def test_frame_decoder_refuses_an_overlong_message_at_once():
    decoder = m.FrameDecoder(max_body_length=100)
    good = m.encode_message(m.MessageStatus(1, 2, 4, 0, 9))
    with pytest.raises(m.MessageTooLong):
        decoder.feed(good + struct.pack(">IB", 101, 31))


@given(
    session_id=st.integers(0, 0xFFFF),
    destination=st.binary(min_size=387, max_size=400),
    payload=st.binary(max_size=300),
    nonce=u32,
    flags=st.integers(0, 0xFFFF),
    expiration=st.integers(0, (1 << 48) - 1),
)
def test_send_message_expires_bytes_equal_the_message_encoding(
    session_id, destination, payload, nonce, flags, expiration
):
    expected = m.encode_message(
        m.SendMessageExpires(
            session_id, destination, payload, nonce, flags=flags, expiration_ms=expiration
        )
    )
    got = m.SendMessageExpires.encode_message(
        session_id, destination, payload, nonce, flags, expiration
    )
    assert got == expected


def test_send_message_expires_too_long_raises_like_the_message():
    with pytest.raises(m.MessageTooLong):
        m.SendMessageExpires.encode_message(1, b"d" * 387, b"x" * 65535, 0, 0, 0)


def test_session_drops_and_counts_a_malformed_message_payload_and_goes_on():
    from i2proxy.i2cp import events as ev
    from i2proxy.i2cp.session import I2CPSession

    session = I2CPSession(identity=None)  # type: ignore[arg-type]  # no handshake needed
    good = encode_payload(b"packet", protocol=6, src_port=9, dst_port=80)
    body_lies = struct.pack(">HII", 1, 5, len(good) + 3) + good  # announces 3 bytes too many
    wire = struct.pack(">IB", len(body_lies), m.MessageType.MESSAGE_PAYLOAD) + body_lies
    wire += m.encode_message(m.MessagePayload(1, 6, good))
    session.receive_data(wire, 0.0)
    dropped, received = session.next_event(), session.next_event()
    assert isinstance(dropped, ev.MessageDropped) and "MessagePayload" in str(dropped.error)
    assert received == ev.PayloadReceived(decode_payload(good), 6)
    assert session.dropped_messages == 1 and session.next_event() is None
