"""Signing private keys in I2P's raw forms.

Raw forms (as in i2pd ``.dat`` files and SAM private keys): Ed25519 is the 32-byte seed, ECDSA
the big-endian private scalar padded to the curve size, DSA the 20-byte ``x``.  Signatures come
out raw (Ed25519 R ‖ S, ECDSA/DSA r ‖ s), never DER.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from i2proxy.i2p.dsa import dsa_generate, dsa_private_key_valid, dsa_public_key, dsa_sign
from i2proxy.i2p.errors import I2PFormatError, UnsupportedTypeError
from i2proxy.i2p.sigtypes import SIG_SIZES, SigType

_ECDSA: dict[SigType, tuple[ec.EllipticCurve, hashes.HashAlgorithm]] = {
    SigType.ECDSA_SHA256_P256: (ec.SECP256R1(), hashes.SHA256()),
    SigType.ECDSA_SHA384_P384: (ec.SECP384R1(), hashes.SHA384()),
    SigType.ECDSA_SHA512_P521: (ec.SECP521R1(), hashes.SHA512()),
}

SIGNABLE_TYPES = frozenset({SigType.EDDSA_SHA512_ED25519, SigType.DSA_SHA1, *_ECDSA})


@dataclass(frozen=True)
class SigningPrivateKey:
    """A private signing key of a given :class:`SigType`, stored raw."""

    sig_type: SigType
    raw: bytes

    def __post_init__(self) -> None:
        if self.sig_type not in SIGNABLE_TYPES:
            raise UnsupportedTypeError(f"cannot sign with {self.sig_type!r}")
        expected = SIG_SIZES[self.sig_type].private_key
        if len(self.raw) != expected:
            raise I2PFormatError(
                f"{self.sig_type.name} private key is {len(self.raw)} bytes, expected {expected}"
            )
        if self.sig_type == SigType.DSA_SHA1:
            if not dsa_private_key_valid(self.raw):
                raise I2PFormatError("DSA private key is out of range")
        else:
            # Load once (rejects invalid scalars now): loading cost more than the signature
            # itself, and every SYN and CLOSE is signed.
            object.__setattr__(self, "_loaded", self._load())

    @classmethod
    def generate(cls, sig_type: SigType = SigType.EDDSA_SHA512_ED25519) -> SigningPrivateKey:
        """A fresh random key."""
        sig_type = SigType(sig_type)
        if sig_type == SigType.EDDSA_SHA512_ED25519:
            key = ed25519.Ed25519PrivateKey.generate()
            raw = key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            return cls(sig_type, raw)
        if sig_type in _ECDSA:
            curve, _ = _ECDSA[sig_type]
            scalar = ec.generate_private_key(curve).private_numbers().private_value
            return cls(sig_type, scalar.to_bytes(SIG_SIZES[sig_type].private_key, "big"))
        if sig_type == SigType.DSA_SHA1:
            return cls(sig_type, dsa_generate())
        raise UnsupportedTypeError(f"cannot generate {sig_type!r} keys")

    def _key(self) -> ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey:
        return self._loaded  # type: ignore[attr-defined]

    def _load(self) -> ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey:
        if self.sig_type == SigType.EDDSA_SHA512_ED25519:
            return ed25519.Ed25519PrivateKey.from_private_bytes(self.raw)
        curve, _ = _ECDSA[self.sig_type]
        try:
            return ec.derive_private_key(int.from_bytes(self.raw, "big"), curve)
        except ValueError as exc:
            raise I2PFormatError(f"{self.sig_type.name} private key: {exc}") from None

    def public_bytes(self) -> bytes:
        """The raw public key as it goes into a Destination (Ed25519: 32 bytes; ECDSA: X ‖ Y)."""
        if self.sig_type == SigType.DSA_SHA1:
            return dsa_public_key(self.raw)
        key = self._key()
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        point = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return point[1:]

    def sign(self, data: bytes) -> bytes:
        """Sign ``data``; the result is the raw signature of :attr:`SigSizes.signature` bytes."""
        if self.sig_type == SigType.DSA_SHA1:
            return dsa_sign(self.raw, data)
        key = self._key()
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(data)
        _, digest = _ECDSA[self.sig_type]
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest)))
        half = SIG_SIZES[self.sig_type].signature // 2
        return r.to_bytes(half, "big") + s.to_bytes(half, "big")

    def __repr__(self) -> str:
        return f"SigningPrivateKey({self.sig_type.name}, <secret>)"
