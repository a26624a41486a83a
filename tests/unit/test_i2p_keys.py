"""PrivateKeys: the destination layout i2pd needs, signing, and its JSON and binary forms."""

import json
import os

import pytest

from i2proxy.i2p.destination import CryptoType, Destination, SigType
from i2proxy.i2p.encryption import ELGAMAL_G, ELGAMAL_P, EncryptionKey
from i2proxy.i2p.errors import I2PFormatError
from i2proxy.i2p.keys import PrivateKeys
from i2proxy.i2p.signing import SigningPrivateKey


@pytest.fixture(scope="module")
def keys() -> PrivateKeys:
    return PrivateKeys.generate()


def test_generated_destination_has_the_layout_i2pd_accepts(keys):
    raw = keys.destination.to_bytes()
    assert len(raw) == 391
    # KEY certificate: Ed25519 signing, crypto type 0 (ElGamal) -- see the interop notes.
    assert raw[384:] == bytes.fromhex("05000400070000")
    # The 256-byte field holds the ElGamal public key g^x mod p.
    assert raw[:256] == keys.elgamal.public
    assert int.from_bytes(raw[:256], "big") == pow(
        ELGAMAL_G, int.from_bytes(keys.elgamal.private, "big"), ELGAMAL_P
    )
    # Signing field: 96 bytes of padding made of one 32-byte block repeated, then the key.
    padding = raw[256:352]
    assert padding == padding[:32] * 3
    assert raw[352:384] == keys.signing_key.public_bytes()
    assert keys.destination.sig_type == SigType.ED25519
    assert keys.destination.crypto_type == CryptoType.ELGAMAL


def test_generated_keys_hold_x25519_and_elgamal(keys):
    assert [k.crypto_type for k in keys.encryption_keys] == [CryptoType.X25519, CryptoType.ELGAMAL]
    assert len(keys.x25519.public) == 32
    assert len(keys.elgamal.public) == 256


def test_two_generated_destinations_differ():
    assert PrivateKeys.generate().destination != PrivateKeys.generate().destination


def test_sign_verifies_with_the_destination(keys):
    assert keys.destination.verify(b"data", keys.sign(b"data"))


def test_key_file_document_is_documented_json_and_round_trips(keys):
    doc = json.loads(keys.to_json())
    assert doc["format"] == "i2proxy-private-keys"
    assert doc["version"] == 1
    assert doc["destination"] == keys.destination.to_base64()
    assert [e["type"] for e in doc["encryption_private_keys"]] == [4, 0]
    assert PrivateKeys.from_json(keys.to_json()) == keys


def test_a_damaged_key_document_is_reported(keys):
    doc = json.loads(keys.to_json())
    other = PrivateKeys.generate()
    doc["signing_private_key"] = json.loads(other.to_json())["signing_private_key"]
    with pytest.raises(I2PFormatError, match="signing private key does not match"):
        PrivateKeys.from_json(json.dumps(doc))
    with pytest.raises(I2PFormatError, match="not JSON"):
        PrivateKeys.from_json("{not json")
    with pytest.raises(I2PFormatError, match="'format' is not"):
        PrivateKeys.from_json('{"format": "other"}')


@pytest.mark.parametrize(
    "sig_type",
    [SigType.DSA_SHA1, SigType.ECDSA_P256, SigType.ECDSA_P384, SigType.ECDSA_P521, SigType.ED25519],
)
def test_generate_with_other_signing_types(sig_type):
    keys = PrivateKeys.generate(sig_type)
    assert keys.destination.sig_type == sig_type
    assert keys.destination.verify(b"m", keys.sign(b"m"))
    assert Destination.from_bytes(keys.destination.to_bytes()) == keys.destination
    assert PrivateKeys.from_json(keys.to_json()) == keys


def test_key_lengths_are_checked():
    with pytest.raises(I2PFormatError, match="ED25519 private key is 31 bytes"):
        SigningPrivateKey(SigType.ED25519, b"\x00" * 31)
    with pytest.raises(I2PFormatError, match="X25519 private key is 33 bytes"):
        EncryptionKey(CryptoType.X25519, b"\x00" * 33)
    with pytest.raises(I2PFormatError, match="out of range"):
        EncryptionKey(CryptoType.ELGAMAL, b"\x00" * 256)


def test_secrets_are_not_in_repr(keys):
    assert "secret" in repr(keys.signing_key)
    assert keys.signing_key.raw.hex() not in repr(keys)


def test_sam_layout_is_destination_elgamal_key_then_signing_seed(keys):
    raw = keys.to_binary()
    dest = keys.destination.to_bytes()
    assert raw == dest + keys.elgamal.private + keys.signing_key.raw
    assert len(raw) == 391 + 256 + 32


def test_sam_base64_round_trip_keeps_identity_and_elgamal_key(keys):
    imported = PrivateKeys.from_sam_base64(keys.to_sam_base64())
    assert imported.destination == keys.destination
    assert imported.signing_key == keys.signing_key
    assert imported.elgamal == keys.elgamal
    assert imported.crypto_key_slot is None
    # The SAM layout has no room for the X25519 key: a fresh one is made, as i2pd does.
    assert imported.x25519 is not None and imported.x25519 != keys.x25519
    assert imported.to_sam_base64() == keys.to_sam_base64()


def _i2pd_style_binary(sig_type: SigType, crypto_type: CryptoType = CryptoType.ELGAMAL) -> bytes:
    """The layout i2pd 2.45.1 writes for destinations it creates (``CreateRandomKeys`` with
    ``isDestination``): the public-key field is a repeated random block, the crypto private key
    is 256 unrelated random bytes (32 for crypto type 4)."""
    signing = SigningPrivateKey.generate(sig_type)
    block = os.urandom(32)
    pad_len = max(0, 128 - len(signing.public_bytes()))
    dest = Destination.create(
        sig_type=sig_type,
        signing_public_key=signing.public_bytes(),
        crypto_type=CryptoType.ELGAMAL,
        crypto_public_key=block * 8,
        padding=(block * 4)[:pad_len],
    )
    if crypto_type == CryptoType.X25519:
        from i2proxy.i2p.certificate import Certificate

        dest = Destination(
            dest.public_key_field,
            dest.signing_key_field,
            Certificate.key(sig_type, CryptoType.X25519, dest.certificate.excess_signing_key),
        )
    slot = os.urandom(32 if crypto_type == CryptoType.X25519 else 256)
    return dest.to_bytes() + slot + signing.raw


@pytest.mark.parametrize(
    "sig_type",
    [SigType.DSA_SHA1, SigType.ECDSA_P256, SigType.ECDSA_P384, SigType.ECDSA_P521, SigType.ED25519],
)
@pytest.mark.parametrize("crypto_type", [CryptoType.ELGAMAL, CryptoType.X25519])
def test_i2pd_made_key_files_import_and_export_byte_identically(sig_type, crypto_type):
    raw = _i2pd_style_binary(sig_type, crypto_type)
    keys = PrivateKeys.from_binary(raw)
    assert keys.destination.sig_type == sig_type
    assert keys.destination.crypto_type == crypto_type
    assert keys.to_binary() == raw
    assert keys.destination.verify(b"x", keys.sign(b"x"))
    assert {k.crypto_type for k in keys.encryption_keys} == {CryptoType.X25519, CryptoType.ELGAMAL}
    assert PrivateKeys.from_json(keys.to_json()).to_binary() == raw


def test_key_file_import_errors_name_the_place(keys):
    raw = keys.to_binary()
    with pytest.raises(I2PFormatError, match=r"EDDSA_SHA512_ED25519 signing private key: need"):
        PrivateKeys.from_binary(raw[:-1])
    with pytest.raises(I2PFormatError, match=r"1 unexpected bytes after the signing key"):
        PrivateKeys.from_binary(raw + b"\x00")
    with pytest.raises(I2PFormatError, match="offline-signed key file"):
        PrivateKeys.from_binary(raw[:-32] + b"\x00" * 32)
    wrong = raw[:-32] + PrivateKeys.generate().signing_key.raw
    with pytest.raises(I2PFormatError, match="signing private key does not match"):
        PrivateKeys.from_binary(wrong)
    with pytest.raises(I2PFormatError, match="SAM private key: base64"):
        PrivateKeys.from_sam_base64("!!!!")
