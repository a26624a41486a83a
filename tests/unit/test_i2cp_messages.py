"""The I2CP codec: each message's byte layout as the spec (and i2pd 2.45.1) defines it."""

from __future__ import annotations

import os
import struct

import pytest

from i2proxy.i2cp import messages as m
from i2proxy.i2cp.errors import I2CPProtocolError, MessageTooLong

# A 391-byte destination: 256 + 128 key fields, KEY certificate (sig type 7, crypto type 0).
DEST = os.urandom(384) + bytes.fromhex("05000400070000")


def roundtrip(message: m.Message) -> m.Message:
    wire = m.encode_message(message)
    length, kind = struct.unpack_from(">IB", wire)
    assert length == len(wire) - 5
    assert kind == message.TYPE
    frames = m.FrameDecoder().feed(wire)
    assert len(frames) == 1
    return frames[0].decode()


def test_get_date_carries_version_string():
    wire = m.encode_message(m.GetDate("0.9.62"))
    assert wire == b"\x00\x00\x00\x07\x20\x060.9.62"
    assert roundtrip(m.GetDate("0.9.62", {"i2cp.username": "u"})) == m.GetDate(
        "0.9.62", {"i2cp.username": "u"}
    )


def test_set_date_is_date_then_version():
    body = (1_700_000_000_123).to_bytes(8, "big") + b"\x060.9.62"
    assert m.SetDate.decode_body(body) == m.SetDate(1_700_000_000_123, "0.9.62")
    assert m.SetDate.decode_body(body[:8]) == m.SetDate(1_700_000_000_123, None)


def test_mapping_is_sorted_and_framed_with_size():
    encoded = m.encode_mapping({"b": "2", "a": "1"})
    assert encoded == b"\x00\x0c\x01a=\x011;\x01b=\x012;"
    assert m.decode_mapping(encoded[2:]) == {"a": "1", "b": "2"}


def test_mapping_rejects_missing_separator():
    with pytest.raises(I2CPProtocolError, match="expected '='"):
        m.decode_mapping(b"\x01a:\x011;")


def test_create_session_signature_covers_destination_mapping_date_as_sent():
    signed: list[bytes] = []

    def sign(data: bytes) -> bytes:
        signed.append(data)
        return b"S" * 64

    config = m.SessionConfig.build(DEST, {"inbound.length": "1"}, 1234, sign)
    body = m.CreateSession(config).encode_body()
    assert signed == [body[:-64]]
    assert body[:391] == DEST
    assert body[-72:-64] == (1234).to_bytes(8, "big")
    assert roundtrip(m.CreateSession(config)) == m.CreateSession(config)


def test_session_status_and_destroy():
    assert m.SessionStatus.decode_body(b"\x12\x34\x01") == m.SessionStatus(0x1234, 1)
    assert m.encode_message(m.DestroySession(7)) == b"\x00\x00\x00\x02\x03\x00\x07"


def test_request_variable_lease_set_lists_leases_with_ms_dates():
    lease = m.RequestedLease(b"G" * 32, 99, 1_700_000_600_000)
    body = (
        b"\x00\x05\x01" + b"G" * 32 + (99).to_bytes(4, "big") + lease.end_date_ms.to_bytes(8, "big")
    )
    assert m.RequestVariableLeaseSet.decode_body(body) == m.RequestVariableLeaseSet(5, (lease,))
    with pytest.raises(I2CPProtocolError, match="lease 0 end date"):
        m.RequestVariableLeaseSet.decode_body(body[:-1])


def test_create_lease_set2_carries_store_type_lease_set_and_private_keys():
    lease_set = (
        DEST
        + struct.pack(">IHH", 1_700_000_000, 600, 0)
        + b"\x00\x00"  # no properties
        + b"\x02"
        + struct.pack(">HH", 4, 32)
        + b"x" * 32
        + struct.pack(">HH", 0, 256)
        + b"e" * 256
        + b"\x01"
        + b"G" * 32
        + struct.pack(">II", 5, 1_700_000_600)
        + b"s" * 64
    )
    message = m.CreateLeaseSet2(9, lease_set, ((4, b"k" * 32), (0, b"p" * 256)))
    body = message.encode_body()
    assert body[:3] == b"\x00\x09\x03"
    assert body[3 : 3 + len(lease_set)] == lease_set
    assert body[3 + len(lease_set)] == 2
    assert body[-260:-256] == b"\x00\x00\x01\x00"
    assert roundtrip(message) == message


def test_send_message_expires_layout():
    message = m.SendMessageExpires(
        3, DEST, b"payload", nonce=0, flags=m.FLAG_NO_LEASESET_BUNDLE, expiration_ms=2**40
    )
    body = message.encode_body()
    assert body[:2] == b"\x00\x03"
    assert body[2:393] == DEST
    assert body[393:397] == (7).to_bytes(4, "big")
    assert body[397:404] == b"payload"
    assert body[404:408] == b"\x00\x00\x00\x00"
    assert body[408:410] == b"\x01\x00"
    assert body[410:] == (2**40).to_bytes(6, "big")
    assert roundtrip(message) == message
    assert roundtrip(m.SendMessage(3, DEST, b"x", 42)) == m.SendMessage(3, DEST, b"x", 42)


def test_message_payload_and_status():
    body = b"\x00\x01" + (77).to_bytes(4, "big") + (3).to_bytes(4, "big") + b"abc"
    assert m.MessagePayload.decode_body(body) == m.MessagePayload(1, 77, b"abc")
    with pytest.raises(I2CPProtocolError, match="payload"):
        m.MessagePayload.decode_body(body[:-1])
    status = m.MessageStatus(1, 5, m.MessageStatusCode.NO_LEASESET, 0, 1234)
    assert roundtrip(status) == status
    assert m.MessageStatusCode(21).is_failure
    assert not m.MessageStatusCode(4).is_failure


def test_host_lookup_by_hash_and_by_name():
    by_hash = m.HostLookup(1, 2, 10_000, hash=b"h" * 32)
    assert by_hash.encode_body() == struct.pack(">HIIB", 1, 2, 10_000, 0) + b"h" * 32
    by_name = m.HostLookup(m.NO_SESSION, 3, 10_000, name="demo.i2p")
    assert by_name.encode_body()[10:] == b"\x01\x08demo.i2p"
    assert roundtrip(by_hash) == by_hash
    assert roundtrip(by_name) == by_name
    with pytest.raises(ValueError):
        m.HostLookup(1, 2, 3)


def test_host_reply_found_and_not_found():
    found = m.HostReply.decode_body(struct.pack(">HIB", 1, 2, 0) + DEST)
    assert found.destination == DEST
    missing = m.HostReply.decode_body(struct.pack(">HIB", 1, 2, 1))
    assert missing.destination is None and missing.result_code == 1
    with pytest.raises(I2CPProtocolError, match="destination"):
        m.HostReply.decode_body(struct.pack(">HIB", 1, 2, 0) + DEST[:100])


def test_bandwidth_limits_and_disconnect_and_reconfigure():
    limits = m.BandwidthLimits.decode_body(struct.pack(">16I", 100, 200, *([0] * 14)))
    assert (limits.client_inbound, limits.client_outbound) == (100, 200)
    assert m.encode_message(m.GetBandwidthLimits()) == b"\x00\x00\x00\x00\x08"
    assert roundtrip(m.Disconnect("bye")) == m.Disconnect("bye")
    config = m.SessionConfig.build(DEST, {"outbound.length": "2"}, 5, lambda _: b"z" * 64)
    assert roundtrip(m.ReconfigureSession(4, config)) == m.ReconfigureSession(4, config)


def test_frame_decoder_accepts_arbitrary_chunks():
    wire = m.encode_message(m.SessionStatus(1, 1)) + m.encode_message(m.Disconnect("x"))
    decoder = m.FrameDecoder()
    frames = []
    for i in range(len(wire)):
        frames += decoder.feed(wire[i : i + 1])
    assert [f.decode() for f in frames] == [m.SessionStatus(1, 1), m.Disconnect("x")]
    assert decoder.buffered == 0


def test_frame_decoder_rejects_oversized_length_before_buffering():
    decoder = m.FrameDecoder()
    with pytest.raises(MessageTooLong):
        decoder.feed(struct.pack(">IB", 65536, 31))


def test_unknown_message_type_is_kept_not_fatal():
    frames = m.FrameDecoder().feed(b"\x00\x00\x00\x02\xc8hi")
    assert frames[0].decode() == m.UnknownMessage(200, b"hi")


def test_encoder_bounds_the_body():
    with pytest.raises(MessageTooLong):
        m.encode_message(m.SendMessage(1, DEST, b"x" * 65535))


def test_trailing_bytes_are_an_error():
    with pytest.raises(I2CPProtocolError, match="unexpected bytes"):
        m.SessionStatus.decode_body(b"\x00\x01\x01\x00")
