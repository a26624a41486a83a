"""Mapping (I2P Properties) and Date encodings."""

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from i2proxy.i2p.errors import I2PFormatError, TruncatedError
from i2proxy.i2p.structures import Date, Mapping, encode_mapping, parse_mapping


def test_mapping_is_sorted_with_two_byte_size_and_one_byte_string_lengths():
    raw = encode_mapping({"b": "2", "a": "xy"})
    body = b"\x01a=\x02xy;\x01b=\x012;"
    assert raw == len(body).to_bytes(2, "big") + body


def test_empty_mapping_is_two_zero_bytes():
    assert encode_mapping({}) == b"\x00\x00"
    assert parse_mapping(b"\x00\x00") == ({}, 2)


def test_parsed_mapping_keeps_peer_order_for_byte_identical_reserialisation():
    body = b"\x01b=\x011;\x01a=\x012;"
    raw = len(body).to_bytes(2, "big") + body
    mapping, end = Mapping.parse(raw)
    assert end == len(raw)
    assert mapping.to_bytes() == raw
    assert dict(mapping) == {"a": "2", "b": "1"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x00", "mapping size"),
        (b"\x00\x05\x01a=", "mapping body"),
        (b"\x00\x05\x01a:\x00;", "expected '=' after mapping key"),
        (b"\x00\x05\x01a=\x00:", "expected ';' after mapping value"),
        (b"\x00\x04\x01a=\x05", "length 5 runs past the mapping"),
        (b"\x00\x0a\x01a=\x00;\x01a=\x00;", "duplicate key 'a'"),
        (b"\x00\x05\x01\xff=\x00;", "invalid UTF-8"),
    ],
)
def test_malformed_mappings_are_rejected_precisely(raw, message):
    with pytest.raises(I2PFormatError, match=message):
        Mapping.parse(raw)


def test_truncation_is_a_truncated_error_with_offset():
    with pytest.raises(TruncatedError) as info:
        Mapping.parse(b"\x00\x10abc")
    assert info.value.offset == 2


def test_strings_longer_than_255_bytes_cannot_be_encoded():
    with pytest.raises(I2PFormatError, match="exceeds 255"):
        encode_mapping({"k": "v" * 256})


keys = st.text(min_size=1, max_size=40).filter(lambda s: len(s.encode()) <= 255)


@settings(deadline=None)
@given(st.dictionaries(keys, keys, max_size=8))
def test_mapping_round_trip(options):
    raw = encode_mapping(options)
    assert parse_mapping(raw) == (options, len(raw))
    assert list(Mapping.parse(raw)[0]) == sorted(options)


@settings(deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_raise_only_format_errors(data):
    with contextlib.suppress(I2PFormatError):
        Mapping.parse(data)


def test_date_is_eight_byte_milliseconds():
    assert Date.from_seconds(1.5).to_bytes() == (1500).to_bytes(8, "big")
    assert Date.parse(b"\x00" * 7 + b"\x01") == (Date(1), 8)
    with pytest.raises(TruncatedError, match="date"):
        Date.parse(b"\x00" * 7)


@settings(deadline=None)
@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_date_round_trip(millis):
    assert Date.parse(Date(millis).to_bytes())[0] == Date(millis)
