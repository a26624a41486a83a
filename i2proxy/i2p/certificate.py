"""The I2P Certificate that ends a Destination: NULL, or KEY (signing and crypto types).

A KEY certificate's payload is sig type (2) ‖ crypto type (2) ‖ excess signing-key bytes ‖
excess crypto-key bytes: keys longer than their 128/256-byte slot spill into the certificate.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from i2proxy.i2p.errors import I2PFormatError, need
from i2proxy.i2p.sigtypes import (
    CRYPTO_PUBLIC_KEY_SIZES,
    SIG_SIZES,
    CryptoType,
    SigType,
    crypto_type,
    sig_type,
)

SIGNING_KEY_FIELD = 128
PUBLIC_KEY_FIELD = 256


class CertType(IntEnum):
    """Certificate types; only NULL and KEY are valid in a Destination today."""

    NULL = 0
    HASHCASH = 1
    HIDDEN = 2
    SIGNED = 3
    MULTIPLE = 4
    KEY = 5


@dataclass(frozen=True)
class Certificate:
    """A certificate as it appeared on the wire (``payload`` kept verbatim)."""

    cert_type: int
    payload: bytes = b""

    @classmethod
    def null(cls) -> Certificate:
        """The NULL certificate: legacy DSA-SHA1 + ElGamal destination."""
        return cls(CertType.NULL, b"")

    @classmethod
    def key(
        cls, sig: SigType, crypto: CryptoType = CryptoType.ELGAMAL, excess: bytes = b""
    ) -> Certificate:
        """A KEY certificate; ``excess`` is the key material that did not fit its slot."""
        return cls(CertType.KEY, struct.pack(">HH", sig, crypto) + excess)

    @classmethod
    def parse(cls, data: bytes, offset: int = 0) -> tuple[Certificate, int]:
        """Parse type ‖ length ‖ payload at ``offset``; return it and the offset after it."""
        need(data, offset, 3, "certificate header")
        ctype, length = struct.unpack_from(">BH", data, offset)
        need(data, offset + 3, length, f"certificate payload ({length} bytes)")
        raw = bytes(data[offset : offset + 3 + length])
        cert = _COMMON.get(raw)
        if cert is None:
            cert = cls(ctype, raw[3:])
            cert._validate(offset)
        return cert, offset + 3 + length

    def _validate(self, offset: int) -> None:
        if self.cert_type == CertType.NULL and self.payload:
            raise I2PFormatError(
                f"NULL certificate with {len(self.payload)}-byte payload", offset=offset
            )
        if self.cert_type == CertType.KEY:
            if len(self.payload) < 4:
                raise I2PFormatError(
                    f"KEY certificate payload is {len(self.payload)} bytes, need at least 4",
                    offset=offset,
                )
            st = sig_type(int.from_bytes(self.payload[0:2], "big"), offset=offset + 3)
            ct = crypto_type(int.from_bytes(self.payload[2:4], "big"), offset=offset + 5)
            expected = 4 + excess_signing_length(st) + excess_crypto_length(ct)
            if len(self.payload) != expected:
                raise I2PFormatError(
                    f"KEY certificate for {st.name}/{ct.name} has {len(self.payload)}-byte "
                    f"payload, expected {expected}",
                    offset=offset,
                )
        elif self.cert_type not in (CertType.NULL,):
            raise I2PFormatError(
                f"certificate type {self.cert_type} is not allowed in a destination",
                offset=offset,
            )

    def to_bytes(self) -> bytes:
        """Serialise type ‖ length ‖ payload."""
        return struct.pack(">BH", self.cert_type, len(self.payload)) + self.payload

    @property
    def sig_type(self) -> SigType:
        """Signing type: from a KEY certificate, else the legacy default DSA-SHA1."""
        if self.cert_type == CertType.KEY:
            return SigType(int.from_bytes(self.payload[0:2], "big"))
        return SigType.DSA_SHA1

    @property
    def crypto_type(self) -> CryptoType:
        """Crypto type: from a KEY certificate, else the legacy default ElGamal."""
        if self.cert_type == CertType.KEY:
            return CryptoType(int.from_bytes(self.payload[2:4], "big"))
        return CryptoType.ELGAMAL

    @property
    def excess_signing_key(self) -> bytes:
        """Signing-key bytes beyond the 128-byte slot (P-521, RSA)."""
        if self.cert_type != CertType.KEY:
            return b""
        return self.payload[4 : 4 + excess_signing_length(self.sig_type)]

    @property
    def excess_crypto_key(self) -> bytes:
        """Crypto-key bytes beyond the 256-byte slot (none for the types defined today)."""
        if self.cert_type != CertType.KEY:
            return b""
        return self.payload[4 + excess_signing_length(self.sig_type) :]


def excess_signing_length(st: SigType) -> int:
    """How many signing-key bytes overflow the 128-byte slot into the certificate."""
    return max(0, SIG_SIZES[st].public_key - SIGNING_KEY_FIELD)


def excess_crypto_length(ct: CryptoType) -> int:
    """How many crypto-key bytes overflow the 256-byte slot into the certificate."""
    return max(0, CRYPTO_PUBLIC_KEY_SIZES[ct] - PUBLIC_KEY_FIELD)


# The few certificates without excess key bytes (NULL, KEY for each type pair) are immutable and
# cover almost every destination: share them instead of parsing and validating each time.
_COMMON: dict[bytes, Certificate] = {
    c.to_bytes(): c
    for c in [Certificate.null()]
    + [
        Certificate.key(st, ct)
        for st in SigType
        for ct in CryptoType
        if excess_signing_length(st) == 0 and excess_crypto_length(ct) == 0
    ]
}
