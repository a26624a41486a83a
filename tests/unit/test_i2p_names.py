"""``.b32.i2p`` names: 52 characters are a hash, 56+ are b33 (recognised, not supported)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from i2proxy.i2p.base64 import b32encode
from i2proxy.i2p.errors import B33NotSupported, I2PFormatError
from i2proxy.i2p.names import b32_hash_from_name, b32_name_from_hash, is_b32_name

PROJEKT = "udhdrtrcetjm5sxzskjyr5ztpeszydbh4dpl3pl4utgqqw2v4jna.b32.i2p"


def test_52_characters_give_the_32_byte_hash():
    digest = b32_hash_from_name(PROJEKT)
    assert len(digest) == 32
    assert b32_name_from_hash(digest) == PROJEKT


def test_names_are_case_insensitive_and_may_end_with_a_dot():
    assert b32_hash_from_name(PROJEKT.upper()) == b32_hash_from_name(PROJEKT)
    assert b32_hash_from_name(PROJEKT + ".") == b32_hash_from_name(PROJEKT)


def test_b33_names_are_recognised_and_reported():
    b33 = b32encode(bytes(range(35))) + ".b32.i2p"
    assert len(b33) - len(".b32.i2p") == 56
    with pytest.raises(B33NotSupported, match="b33"):
        b32_hash_from_name(b33)
    assert isinstance(B33NotSupported("x"), I2PFormatError)
    assert not is_b32_name(b33)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("example.i2p", "does not end in .b32.i2p"),
        ("abc.b32.i2p", "3 characters before .b32.i2p, expected 52"),
        (PROJEKT.replace("u", "1", 1), "invalid character '1'"),
        ("a" * 51 + "b.b32.i2p", "non-zero bits"),
        ("a" * 300 + ".b32.i2p", "at most 255"),
        ("a" * 57 + ".b32.i2p", "b33 name: base32: length 57"),
    ],
)
def test_malformed_names_are_rejected_precisely(name, message):
    with pytest.raises(I2PFormatError, match=message):
        b32_hash_from_name(name)


@settings(deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_hash_name_round_trip(digest):
    assert b32_hash_from_name(b32_name_from_hash(digest)) == digest
