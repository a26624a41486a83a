"""I2P base64 (``-~`` alphabet) and lowercase unpadded base32: vectors, strictness, round trips."""

import base64 as std
import contextlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from i2proxy.i2p.base64 import b32decode, b32encode, b64decode, b64encode
from i2proxy.i2p.errors import I2PFormatError


def test_base64_uses_dash_and_tilde_where_standard_uses_plus_and_slash():
    data = bytes([0xFB, 0xFF, 0xBF])  # standard: "+/+/"
    assert std.b64encode(data) == b"+/+/"
    assert b64encode(data) == "-~-~"
    assert b64decode("-~-~") == data


def test_base64_pads_like_i2pd():
    assert b64encode(b"a") == "YQ=="
    assert b64encode(b"ab") == "YWI="


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("YQ=", "not a multiple of 4"),
        ("YQ", "not a multiple of 4"),
        ("Y===", "padding"),
        ("+/+/", "invalid character '+'"),
        ("ab c", "invalid character ' '"),
        ("YR==", "non-zero bits"),
        ("YWJ=", "non-zero bits"),
        ("Y=Q=", "invalid character '='"),
        ("AAAA=", "not a multiple of 4"),
        ("AAAA==", "not a multiple of 4"),
    ],
)
def test_base64_rejects_malformed_input_precisely(text, message):
    with pytest.raises(I2PFormatError, match=re.escape(message)):
        b64decode(text)


def test_base64_error_names_the_offset():
    with pytest.raises(I2PFormatError) as info:
        b64decode("AAAA/AAA")
    assert info.value.offset == 4
    assert "offset 4" in str(info.value)


@settings(deadline=None)
@given(st.binary(max_size=600))
def test_base64_round_trip(data):
    assert b64decode(b64encode(data)) == data


def test_base32_is_lowercase_and_unpadded():
    assert b32encode(b"\x00" * 32) == "a" * 52
    assert b32encode(b"f") == "my"
    assert b32decode("MY") == b"f"  # host names are case-insensitive


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("my=", "invalid character '='"),
        ("m1", "invalid character '1'"),
        ("m", "cannot encode whole bytes"),
        ("mz", "non-zero bits"),
    ],
)
def test_base32_rejects_malformed_input_precisely(text, message):
    with pytest.raises(I2PFormatError, match=re.escape(message)):
        b32decode(text)


@settings(deadline=None)
@given(st.binary(max_size=100))
def test_base32_round_trip(data):
    assert b32decode(b32encode(data)) == data


@settings(deadline=None)
@given(st.text(max_size=20))
def test_decoders_raise_only_format_errors(text):
    for decode in (b64decode, b32decode):
        with contextlib.suppress(I2PFormatError):
            decode(text)


@settings(deadline=None)
@given(st.text(alphabet="AQgw-~+/=Ya \n", max_size=16))
def test_base64_accepts_exactly_the_canonical_encodings(text):
    """Reference: a string is valid iff it is what encoding its bytes gives back."""
    try:
        reference = std.b64decode(text.translate(str.maketrans("-~", "+/")), validate=True)
        valid = "+" not in text and "/" not in text and b64encode(reference) == text
    except ValueError:
        valid = False
    if valid:
        assert b64decode(text) == reference
    else:
        with pytest.raises(I2PFormatError):
            b64decode(text)
