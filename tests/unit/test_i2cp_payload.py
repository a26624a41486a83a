"""I2CP payload framing: gzip with ports in MTIME and protocol in the OS byte."""

from __future__ import annotations

import gzip
import os
import zlib

import pytest

from i2proxy.i2cp.errors import PayloadFormatError
from i2proxy.i2cp.payload import Protocol, decode_payload, encode_payload


def test_stored_frame_layout_matches_i2pd():
    frame = encode_payload(b"hello", protocol=Protocol.STREAMING, src_port=80, dst_port=443)
    assert frame[:4] == b"\x1f\x8b\x08\x00"
    assert frame[4:6] == (80).to_bytes(2, "big")
    assert frame[6:8] == (443).to_bytes(2, "big")
    assert frame[8] == 2 and frame[9] == 6
    assert frame[10] == 0x01  # one final stored block, what i2pd's inflater fast path expects
    assert len(frame) == 23 + 5
    assert gzip.decompress(frame) == b"hello"  # a valid gzip member for any gzip reader


def test_roundtrip_stored_and_deflated():
    data = os.urandom(1800)
    for compress in (False, True):
        frame = encode_payload(data, protocol=17, src_port=1, dst_port=2, compress=compress)
        payload = decode_payload(frame)
        assert (payload.protocol, payload.src_port, payload.dst_port) == (17, 1, 2)
        assert payload.data == data


def test_accepts_a_standard_gzip_member_with_optional_fields():
    member = bytearray(gzip.compress(b"abc" * 100))
    member[3] |= 0x08  # FNAME
    member[10:10] = b"name\x00"
    payload = decode_payload(bytes(member))
    assert payload.data == b"abc" * 100


def test_rejects_corruption():
    frame = bytearray(encode_payload(b"data", protocol=6))
    frame[-9] ^= 1
    with pytest.raises(PayloadFormatError, match="CRC32"):
        decode_payload(bytes(frame))
    with pytest.raises(PayloadFormatError, match="not a gzip frame"):
        decode_payload(b"\x00" * 30)
    with pytest.raises(PayloadFormatError):
        decode_payload(encode_payload(b"x" * 500, protocol=6, compress=True)[:-20])


def test_bounds_inflated_size():
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = deflater.compress(b"\x00" * 1_000_000) + deflater.flush()
    frame = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x06" + bomb + b"\x00" * 8
    with pytest.raises(PayloadFormatError, match="inflates beyond"):
        decode_payload(frame)
