"""Destination (KeysAndCert): the public identity of an I2P service or client.

Layout: public-key field (256) ‖ signing-key field (128) ‖ Certificate.  A crypto public key
shorter than 256 bytes sits at the *start* of its field, a signing key shorter than 128 bytes at
the *end* of its field; the bytes between are padding.  The padding is random, so it is kept
verbatim: re-serialising must reproduce the original bytes, or the hash (and the b32 address)
would change.
"""

from __future__ import annotations

from dataclasses import dataclass

from i2proxy.i2p import base64 as i2b64
from i2proxy.i2p.certificate import (
    PUBLIC_KEY_FIELD,
    SIGNING_KEY_FIELD,
    Certificate,
    CertType,
)
from i2proxy.i2p.errors import I2PFormatError, need
from i2proxy.i2p.lazy import lazy
from i2proxy.i2p.signatures import sha256
from i2proxy.i2p.signatures import verify as _verify
from i2proxy.i2p.sigtypes import CRYPTO_PUBLIC_KEY_SIZES, SIG_SIZES, CryptoType, SigType

__all__ = ["CertType", "Certificate", "CryptoType", "Destination", "SigType"]

MIN_LENGTH = PUBLIC_KEY_FIELD + SIGNING_KEY_FIELD + 3


@dataclass(frozen=True)
class Destination:
    """An immutable, parsed Destination; equal destinations have equal bytes."""

    public_key_field: bytes
    signing_key_field: bytes
    certificate: Certificate

    def __post_init__(self) -> None:
        if len(self.public_key_field) != PUBLIC_KEY_FIELD:
            raise I2PFormatError(f"public-key field is {len(self.public_key_field)} bytes, not 256")
        if len(self.signing_key_field) != SIGNING_KEY_FIELD:
            raise I2PFormatError(
                f"signing-key field is {len(self.signing_key_field)} bytes, not 128"
            )

    # --- parsing -------------------------------------------------------------------------------

    @classmethod
    def parse(cls, data: bytes, offset: int = 0) -> tuple[Destination, int]:
        """Parse a Destination at ``offset``; return it and the offset just after it."""
        need(data, offset, MIN_LENGTH, "destination")
        pub = bytes(data[offset : offset + PUBLIC_KEY_FIELD])
        sig = bytes(data[offset + PUBLIC_KEY_FIELD : offset + PUBLIC_KEY_FIELD + SIGNING_KEY_FIELD])
        try:
            cert, end = Certificate.parse(data, offset + PUBLIC_KEY_FIELD + SIGNING_KEY_FIELD)
        except I2PFormatError as exc:
            raise exc.within("destination") from None
        return cls(pub, sig, cert), end

    @classmethod
    def from_bytes(cls, data: bytes) -> Destination:
        """Parse exactly one Destination; trailing bytes are an error."""
        dest, end = cls.parse(data)
        if end != len(data):
            raise I2PFormatError(
                f"destination: {len(data) - end} unexpected bytes after the certificate",
                offset=end,
            )
        return dest

    @classmethod
    def from_base64(cls, text: str) -> Destination:
        """Parse the I2P-base64 form (as in hosts.txt or SAM replies)."""
        try:
            raw = i2b64.b64decode(text)
        except I2PFormatError as exc:
            raise exc.within("destination") from None
        return cls.from_bytes(raw)

    @classmethod
    def create(
        cls,
        *,
        sig_type: SigType,
        signing_public_key: bytes,
        crypto_type: CryptoType,
        crypto_public_key: bytes,
        padding: bytes,
    ) -> Destination:
        """Build a Destination from keys; ``padding`` fills both fields' unused bytes in order.

        A KEY certificate is always used (even for DSA/ElGamal) so the types are explicit.
        """
        sig_len = SIG_SIZES[sig_type].public_key
        crypto_len = CRYPTO_PUBLIC_KEY_SIZES[crypto_type]
        if len(signing_public_key) != sig_len or len(crypto_public_key) != crypto_len:
            raise I2PFormatError("destination: key length does not match its type")
        pub_pad = max(0, PUBLIC_KEY_FIELD - crypto_len)
        sig_pad = max(0, SIGNING_KEY_FIELD - sig_len)
        if len(padding) != pub_pad + sig_pad:
            raise I2PFormatError(f"destination: need {pub_pad + sig_pad} padding bytes")
        pub_field = (crypto_public_key + padding[:pub_pad])[:PUBLIC_KEY_FIELD]
        sig_field = (padding[pub_pad:] + signing_public_key)[:SIGNING_KEY_FIELD]
        excess = signing_public_key[SIGNING_KEY_FIELD:] + crypto_public_key[PUBLIC_KEY_FIELD:]
        return cls(pub_field, sig_field, Certificate.key(sig_type, crypto_type, excess))

    # --- serialising ---------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The wire form, byte-identical to what was parsed."""
        return self._bytes

    @lazy
    def _bytes(self) -> bytes:
        return self.public_key_field + self.signing_key_field + self.certificate.to_bytes()

    def to_base64(self) -> str:
        """I2P-base64 form."""
        return i2b64.b64encode(self._bytes)

    def __len__(self) -> int:
        return len(self._bytes)

    # --- identity ------------------------------------------------------------------------------

    @lazy
    def hash(self) -> bytes:
        """SHA-256 of the serialised destination: its 32-byte identity in the network."""
        return sha256(self._bytes)

    @lazy
    def b32(self) -> str:
        """The ``<52 chars>.b32.i2p`` address."""
        return i2b64.b32encode(self.hash) + ".b32.i2p"

    # --- keys ----------------------------------------------------------------------------------

    @property
    def sig_type(self) -> SigType:
        """Signing type (DSA-SHA1 for a NULL certificate)."""
        return self.certificate.sig_type

    @property
    def crypto_type(self) -> CryptoType:
        """Crypto type (ElGamal for a NULL certificate)."""
        return self.certificate.crypto_type

    @property
    def signature_length(self) -> int:
        """Length of a signature made by this destination."""
        return SIG_SIZES[self.sig_type].signature

    @lazy
    def signing_public_key(self) -> bytes:
        """The raw signing public key, reassembled from its slot and the certificate excess."""
        length = SIG_SIZES[self.sig_type].public_key
        if length <= SIGNING_KEY_FIELD:
            return self.signing_key_field[SIGNING_KEY_FIELD - length :]
        return self.signing_key_field + self.certificate.excess_signing_key

    @lazy
    def encryption_public_key(self) -> bytes:
        """The raw crypto public key from the start of the 256-byte field."""
        length = CRYPTO_PUBLIC_KEY_SIZES[self.crypto_type]
        if length <= PUBLIC_KEY_FIELD:
            return self.public_key_field[:length]
        return self.public_key_field + self.certificate.excess_crypto_key

    def verify(self, data: bytes, signature: bytes) -> bool:
        """True iff ``signature`` over ``data`` was made with this destination's signing key."""
        return _verify(self.sig_type, self.signing_public_key, data, signature)

    def __repr__(self) -> str:
        return f"Destination({self.b32}, {self.sig_type.name}, {self.crypto_type.name})"
