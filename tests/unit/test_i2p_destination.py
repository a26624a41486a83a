"""Destination parsing against the real default address book, KEY certificates and errors."""

import contextlib
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from i2proxy.i2p.base64 import b64decode, b64encode
from i2proxy.i2p.certificate import Certificate
from i2proxy.i2p.destination import CryptoType, Destination, SigType
from i2proxy.i2p.errors import I2PFormatError, TruncatedError, UnsupportedTypeError

# A copy of the shared real address book (68 entries), checked in so CI needs nothing else.
HOSTS = Path(__file__).parent / "data" / "i2p-default-hosts.txt"


def host_entries() -> list[tuple[str, str]]:
    entries = []
    for line in HOSTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, b64 = line.strip().partition("=")
            entries.append((name, b64))
    return entries


def test_default_hosts_file_has_all_68_entries():
    assert len(host_entries()) == 68


@pytest.mark.parametrize(("name", "b64"), host_entries(), ids=[n for n, _ in host_entries()])
def test_every_default_host_parses_and_reserialises_identically(name, b64):
    dest = Destination.from_base64(b64)
    assert dest.to_base64() == b64
    raw = b64decode(b64)
    # The signing type is what the certificate says, read independently of our parser.
    if raw[384] == 5:
        sig_code, crypto_code = struct.unpack(">HH", raw[387:391])
        assert dest.sig_type == sig_code
        assert dest.crypto_type == crypto_code
    else:
        assert raw[384:387] == b"\x00\x00\x00"
        assert dest.sig_type == SigType.DSA_SHA1
    assert len(dest.signing_public_key) == {0: 128, 1: 64, 3: 132, 7: 32}[dest.sig_type]


def _host(name: str) -> Destination:
    return Destination.from_base64(dict(host_entries())[name])


def test_known_addresses_by_hand():
    # i2p-projekt.i2p: NULL certificate (DSA-SHA1, ElGamal); its b32 is widely published.
    projekt = _host("i2p-projekt.i2p")
    assert projekt.b32 == "udhdrtrcetjm5sxzskjyr5ztpeszydbh4dpl3pl4utgqqw2v4jna.b32.i2p"
    assert projekt.sig_type == SigType.DSA_SHA1 and projekt.crypto_type == CryptoType.ELGAMAL
    assert len(projekt.to_bytes()) == 387
    # smtp.postman.i2p: KEY certificate 05 0004 0007 0000 -> Ed25519, key is the last 32 bytes
    # of the 128-byte signing field.
    smtp = _host("smtp.postman.i2p")
    assert smtp.certificate.to_bytes() == bytes.fromhex("05000400070000")
    assert smtp.signing_public_key == smtp.to_bytes()[384 - 32 : 384]
    assert smtp.signature_length == 64


def test_p521_key_spills_four_bytes_into_the_certificate():
    p521 = [Destination.from_base64(b) for _, b in host_entries()]
    p521 = [d for d in p521 if d.sig_type == SigType.ECDSA_SHA512_P521]
    assert p521, "the default hosts file has one P-521 destination"
    dest = p521[0]
    raw = dest.to_bytes()
    assert len(raw) == 395
    assert raw[384:391] == bytes.fromhex("05000800030000")
    assert dest.signing_public_key == raw[256:384] + raw[391:395]
    assert dest.signature_length == 132


def test_parse_returns_end_offset_inside_a_larger_buffer():
    dest = _host("smtp.postman.i2p")
    buf = b"xx" + dest.to_bytes() + b"tail"
    parsed, end = Destination.parse(buf, 2)
    assert parsed == dest
    assert buf[end:] == b"tail"


def test_truncated_destination_names_what_and_where():
    raw = _host("smtp.postman.i2p").to_bytes()
    with pytest.raises(TruncatedError, match="destination"):
        Destination.from_bytes(raw[:300])
    with pytest.raises(TruncatedError, match=r"certificate payload.*offset 387"):
        Destination.from_bytes(raw[:389])


def test_trailing_bytes_are_rejected():
    raw = _host("smtp.postman.i2p").to_bytes()
    with pytest.raises(I2PFormatError, match=r"1 unexpected bytes.*offset 391"):
        Destination.from_bytes(raw + b"\x00")


def test_bad_certificates_are_rejected():
    base = _host("smtp.postman.i2p").to_bytes()[:384]
    with pytest.raises(I2PFormatError, match="NULL certificate with 1-byte payload"):
        Destination.from_bytes(base + b"\x00\x00\x01\x00")
    with pytest.raises(I2PFormatError, match="KEY certificate payload is 2 bytes"):
        Destination.from_bytes(base + b"\x05\x00\x02\x00\x07")
    with pytest.raises(UnsupportedTypeError, match="unknown signing type 99"):
        Destination.from_bytes(base + bytes.fromhex("05000400630000"))
    with pytest.raises(I2PFormatError, match="expected 8"):  # P-521 without its excess bytes
        Destination.from_bytes(base + bytes.fromhex("05000400030000"))
    with pytest.raises(I2PFormatError, match="certificate type 1 is not allowed"):
        Destination.from_bytes(base + b"\x01\x00\x00")


def test_from_base64_reports_bad_base64():
    with pytest.raises(I2PFormatError, match="destination: base64"):
        Destination.from_base64("not base64!")


def test_ed25519_verify_with_destination():
    from i2proxy.i2p.keys import PrivateKeys

    keys = PrivateKeys.generate()
    sig = keys.sign(b"hello")
    assert keys.destination.verify(b"hello", sig)
    assert not keys.destination.verify(b"hellO", sig)
    assert not keys.destination.verify(b"hello", sig[:-1])


@st.composite
def destinations(draw):
    sig = draw(
        st.sampled_from(
            [
                SigType.DSA_SHA1,
                SigType.ECDSA_P256,
                SigType.ECDSA_P384,
                SigType.ECDSA_P521,
                SigType.ED25519,
                SigType.REDDSA,
            ]
        )
    )
    crypto = draw(st.sampled_from([CryptoType.ELGAMAL, CryptoType.X25519]))
    if draw(st.booleans()) and sig == SigType.DSA_SHA1 and crypto == CryptoType.ELGAMAL:
        return Destination(
            draw(st.binary(min_size=256, max_size=256)),
            draw(st.binary(min_size=128, max_size=128)),
            Certificate.null(),
        )
    excess = draw(st.binary(min_size=4, max_size=4)) if sig == SigType.ECDSA_P521 else b""
    return Destination(
        draw(st.binary(min_size=256, max_size=256)),
        draw(st.binary(min_size=128, max_size=128)),
        Certificate.key(sig, crypto, excess),
    )


@settings(deadline=None)
@given(destinations())
def test_destination_round_trip(dest):
    raw = dest.to_bytes()
    assert Destination.from_bytes(raw) == dest
    assert Destination.from_base64(dest.to_base64()).hash == dest.hash
    assert len(dest.b32) == 52 + len(".b32.i2p")


@settings(deadline=None)
@given(st.binary(max_size=450))
def test_random_bytes_raise_only_format_errors(data):
    with contextlib.suppress(I2PFormatError):
        Destination.from_bytes(data)


@settings(deadline=None)
@given(st.sampled_from(list(SigType)), st.sampled_from(list(CryptoType)), st.binary(max_size=8))
def test_certificate_round_trip_or_precise_error(sig, crypto, excess):
    cert = Certificate.key(sig, crypto, excess)
    try:
        parsed, end = Certificate.parse(cert.to_bytes())
    except I2PFormatError as exc:
        assert "expected" in str(exc)
    else:
        assert parsed == cert and end == len(cert.to_bytes())
        assert parsed.sig_type == sig and parsed.crypto_type == crypto


def test_errors_keep_their_type_and_offset_through_every_wrapping_layer():
    """``exc.offset`` is the documented way to find the bad byte; the outer structure's name is
    added to the message without losing it (or the more precise error type)."""
    from i2proxy.i2p.keys import PrivateKeys

    truncated = bytes(384) + b"\x05\x00\x04\x00\x07"
    with pytest.raises(TruncatedError) as info:
        Destination.from_bytes(truncated)
    assert info.value.offset == 387
    assert str(info.value).startswith("destination: ")
    assert str(info.value).count("(at offset 387)") == 1
    with pytest.raises(TruncatedError) as info:
        Destination.from_base64(b64encode(truncated))
    assert info.value.offset == 387
    with pytest.raises(I2PFormatError) as info:
        Destination.from_base64("AAAA/AAA")
    assert info.value.offset == 4
    with pytest.raises(TruncatedError) as info:
        PrivateKeys.from_sam_base64(b64encode(truncated))
    assert info.value.offset == 387 and str(info.value).startswith("SAM private key: destination")
