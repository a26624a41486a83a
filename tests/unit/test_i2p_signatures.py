"""Signatures per signing type: raw formats checked against independent computations."""

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from i2proxy.i2p.dsa import DSA_G, DSA_P, DSA_Q
from i2proxy.i2p.errors import UnsupportedTypeError
from i2proxy.i2p.signatures import verify
from i2proxy.i2p.signing import SigningPrivateKey
from i2proxy.i2p.sigtypes import SIG_SIZES, SigType


def test_ed25519_rfc8032_test_vector_1():
    public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    signature = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e3970"
        "1cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    secret = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    assert verify(SigType.ED25519, public, b"", signature)
    assert SigningPrivateKey(SigType.ED25519, secret).public_bytes() == public
    assert SigningPrivateKey(SigType.ED25519, secret).sign(b"") == signature
    # RedDSA verifies with the same equation and the key as-is.
    assert verify(SigType.REDDSA, public, b"", signature)


def test_dsa_signature_is_r_then_s_over_sha1_checked_by_hand():
    key = SigningPrivateKey.generate(SigType.DSA_SHA1)
    sig = key.sign(b"message")
    assert len(sig) == 40
    r, s = int.from_bytes(sig[:20], "big"), int.from_bytes(sig[20:], "big")
    y = int.from_bytes(key.public_bytes(), "big")
    # FIPS 186 verification written out, independent of cryptography.
    w = pow(s, -1, DSA_Q)
    h = int.from_bytes(hashlib.sha1(b"message").digest(), "big")
    v = pow(DSA_G, h * w % DSA_Q, DSA_P) * pow(y, r * w % DSA_Q, DSA_P) % DSA_P % DSA_Q
    assert v == r
    assert verify(SigType.DSA_SHA1, key.public_bytes(), b"message", sig)
    assert not verify(SigType.DSA_SHA1, key.public_bytes(), b"messagE", sig)


@pytest.mark.parametrize(
    ("sig_type", "curve", "digest"),
    [
        (SigType.ECDSA_P256, ec.SECP256R1(), hashes.SHA256()),
        (SigType.ECDSA_P384, ec.SECP384R1(), hashes.SHA384()),
        (SigType.ECDSA_P521, ec.SECP521R1(), hashes.SHA512()),
    ],
)
def test_ecdsa_raw_public_key_and_signature_layout(sig_type, curve, digest):
    key = SigningPrivateKey.generate(sig_type)
    public = key.public_bytes()
    half = SIG_SIZES[sig_type].public_key // 2
    numbers = ec.derive_private_key(int.from_bytes(key.raw, "big"), curve).public_key()
    numbers = numbers.public_numbers()
    assert public == numbers.x.to_bytes(half, "big") + numbers.y.to_bytes(half, "big")
    sig = key.sign(b"m")
    r, s = int.from_bytes(sig[:half], "big"), int.from_bytes(sig[half:], "big")
    ec.EllipticCurvePublicNumbers(numbers.x, numbers.y, curve).public_key().verify(
        encode_dss_signature(r, s), b"m", ec.ECDSA(digest)
    )
    assert verify(sig_type, public, b"m", sig)
    assert not verify(sig_type, public, b"n", sig)


@pytest.mark.parametrize(
    "sig_type",
    [
        SigType.DSA_SHA1,
        SigType.ECDSA_P256,
        SigType.ECDSA_P384,
        SigType.ECDSA_P521,
        SigType.ED25519,
        SigType.REDDSA,
    ],
)
def test_garbage_keys_and_signatures_are_just_invalid(sig_type):
    sizes = SIG_SIZES[sig_type]
    assert not verify(sig_type, b"\xff" * sizes.public_key, b"m", b"\x01" * sizes.signature)
    assert not verify(sig_type, b"\x00" * sizes.public_key, b"m", b"\x00" * sizes.signature)
    assert not verify(sig_type, b"\x00" * 3, b"m", b"\x00" * sizes.signature)


def test_unverifiable_types_raise_instead_of_answering_false():
    with pytest.raises(UnsupportedTypeError):
        verify(SigType.RSA_SHA256_2048, b"\x00" * 256, b"m", b"\x00" * 256)


@settings(max_examples=25, deadline=None)
@given(
    st.sampled_from([SigType.DSA_SHA1, SigType.ECDSA_P256, SigType.ED25519]),
    st.binary(max_size=200),
)
def test_sign_verify_round_trip(sig_type, data):
    key = SigningPrivateKey.generate(sig_type)
    assert verify(sig_type, key.public_bytes(), data, key.sign(data))
