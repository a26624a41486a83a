"""LeaseSet2 (type 3): byte layout from the interop notes, signing rule, decode, tampering."""

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from i2proxy.i2p.destination import CryptoType
from i2proxy.i2p.errors import I2PFormatError, TruncatedError
from i2proxy.i2p.keys import PrivateKeys
from i2proxy.i2p.leaseset import Lease2, LeaseSet2
from i2proxy.i2p.signing import SigningPrivateKey
from i2proxy.i2p.sigtypes import SigType

NOW = 1_700_000_000


@pytest.fixture(scope="module")
def keys() -> PrivateKeys:
    return PrivateKeys.generate()


def build(keys: PrivateKeys, n_leases: int = 2) -> LeaseSet2:
    leases = [Lease2(bytes([i]) * 32, 1000 + i, NOW + 600) for i in range(n_leases)]
    return LeaseSet2.build(
        keys.destination,
        published=NOW,
        expires=NOW + 600,
        leases=leases,
        encryption_keys=[(k.crypto_type, k.public) for k in keys.encryption_keys],
    ).sign(keys)


def test_layout_matches_the_interop_notes(keys):
    ls = build(keys)
    raw = ls.to_bytes()
    dest = keys.destination.to_bytes()
    pos = len(dest)
    assert raw[:pos] == dest
    assert struct.unpack_from(">IHH", raw, pos) == (NOW, 600, 0)
    pos += 8
    assert raw[pos : pos + 2] == b"\x00\x00"  # empty properties
    pos += 2
    assert raw[pos] == 2  # two encryption keys
    assert raw[pos + 1 : pos + 5] == b"\x00\x04\x00\x20"  # X25519, 32 bytes
    pos += 5 + 32
    assert raw[pos : pos + 4] == b"\x00\x00\x01\x00"  # ElGamal, 256 bytes
    pos += 4 + 256
    assert raw[pos] == 2
    pos += 1
    assert raw[pos : pos + 40] == b"\x00" * 32 + struct.pack(">II", 1000, NOW + 600)
    pos += 80
    assert len(raw) == pos + 64


def test_signature_covers_type_byte_then_leaseset(keys):
    ls = build(keys)
    body = ls.to_bytes()[:-64]
    assert keys.destination.verify(b"\x03" + body, ls.signature)
    assert not keys.destination.verify(body, ls.signature)
    assert ls.verify()


def test_decode_round_trips_and_verifies(keys):
    ls = build(keys)
    parsed = LeaseSet2.from_bytes(ls.to_bytes())
    assert parsed == ls
    assert parsed.verify()
    assert parsed.to_bytes() == ls.to_bytes()
    assert [k.crypto_type for k in parsed.encryption_keys] == [CryptoType.X25519, 0]


def test_tampering_breaks_verification(keys):
    raw = bytearray(build(keys).to_bytes())
    raw[len(keys.destination.to_bytes()) + 3] ^= 1  # published time
    assert not LeaseSet2.from_bytes(bytes(raw)).verify()


def test_signature_by_another_destination_fails(keys):
    other = PrivateKeys.generate()
    unsigned = build(keys)
    forged = unsigned.sign(other)
    assert not forged.verify()


def test_unsigned_leaseset_cannot_be_serialised(keys):
    ls = LeaseSet2.build(
        keys.destination,
        published=NOW,
        expires=NOW + 1,
        leases=[],
        encryption_keys=[(4, keys.x25519.public)],
    )
    with pytest.raises(I2PFormatError, match="not signed"):
        ls.to_bytes()


def test_build_rejects_impossible_values(keys):
    with pytest.raises(I2PFormatError, match=r"0\.\.65535 s after published"):
        LeaseSet2.build(
            keys.destination,
            published=NOW,
            expires=NOW + 70000,
            leases=[],
            encryption_keys=[(4, b"k" * 32)],
        )
    with pytest.raises(I2PFormatError, match="at most 16"):
        LeaseSet2.build(
            keys.destination,
            published=NOW,
            expires=NOW,
            leases=[Lease2(b"g" * 32, 1, NOW)] * 17,
            encryption_keys=[(4, b"k" * 32)],
        )


def test_decode_errors_name_the_place(keys):
    raw = build(keys).to_bytes()
    with pytest.raises(TruncatedError, match="leaseset2 signature"):
        LeaseSet2.from_bytes(raw[:-1])
    with pytest.raises(I2PFormatError, match=r"1 unexpected bytes after the signature"):
        LeaseSet2.from_bytes(raw + b"\x00")
    bad = bytearray(raw)
    key_len_at = len(keys.destination.to_bytes()) + 8 + 2 + 1 + 2
    bad[key_len_at : key_len_at + 2] = b"\x00\x21"
    with pytest.raises(I2PFormatError, match=f"X25519 key length 33.*offset {key_len_at}"):
        LeaseSet2.from_bytes(bytes(bad))


def test_unknown_encryption_key_types_are_kept_opaque(keys):
    ls = LeaseSet2.build(
        keys.destination,
        published=NOW,
        expires=NOW + 5,
        leases=[],
        encryption_keys=[(4, keys.x25519.public), (99, b"future")],
    ).sign(keys)
    parsed = LeaseSet2.from_bytes(ls.to_bytes())
    assert parsed.encryption_keys[1].crypto_type == 99
    assert parsed.verify()


def test_offline_signed_leaseset_verifies_through_the_transient_key(keys):
    from i2proxy.i2p.leaseset import FLAG_OFFLINE_KEYS, OfflineSignature

    transient = SigningPrivateKey.generate(SigType.ECDSA_P256)
    block = OfflineSignature(NOW + 86400, transient.sig_type, transient.public_bytes(), b"")
    block = OfflineSignature(
        block.expires,
        block.transient_sig_type,
        block.transient_public_key,
        keys.sign(block.signed_bytes()),
    )
    ls = LeaseSet2(
        keys.destination,
        NOW,
        NOW + 600,
        (),
        build(keys).encryption_keys[:1],
        flags=FLAG_OFFLINE_KEYS,
        offline_signature=block,
    )
    signed = ls.sign(transient)
    parsed = LeaseSet2.from_bytes(signed.to_bytes())
    assert parsed.offline_signature == block
    assert parsed.verify()
    assert len(parsed.signature) == 64


leases = st.builds(
    Lease2,
    st.binary(min_size=32, max_size=32),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(leases, max_size=16),
    st.integers(0, 2**32 - 1 - 65535),
    st.integers(0, 65535),
    st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=10), max_size=3),
)
def test_leaseset2_round_trip(keys, lease_list, published, lifetime, props):
    ls = LeaseSet2.build(
        keys.destination,
        published=published,
        expires=published + lifetime,
        leases=lease_list,
        encryption_keys=[(4, keys.x25519.public)],
        properties=props,
    ).sign(keys)
    parsed = LeaseSet2.from_bytes(ls.to_bytes())
    assert parsed == ls
    assert parsed.verify()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_raise_only_format_errors(data):
    with contextlib.suppress(I2PFormatError):
        LeaseSet2.from_bytes(data)


@settings(deadline=None)
@given(leases)
def test_lease2_round_trip(lease):
    raw = lease.to_bytes()
    assert len(raw) == 40
    assert Lease2.parse(raw) == (lease, 40)
