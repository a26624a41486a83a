"""Signature verification (and signing) per I2P signing type, on top of ``cryptography``.

I2P carries keys and signatures raw: EdDSA keys as 32 bytes, ECDSA public keys as X ‖ Y and
signatures as r ‖ s (each zero-padded to the field size).  This module converts between those raw
forms and ``cryptography`` objects, so the structure code never sees DER.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from i2proxy.i2p.dsa import dsa_verify
from i2proxy.i2p.errors import UnsupportedTypeError
from i2proxy.i2p.sigtypes import SIG_SIZES, SigType

_ECDSA_CURVES: dict[SigType, tuple[ec.EllipticCurve, hashes.HashAlgorithm]] = {
    SigType.ECDSA_SHA256_P256: (ec.SECP256R1(), hashes.SHA256()),
    SigType.ECDSA_SHA384_P384: (ec.SECP384R1(), hashes.SHA384()),
    SigType.ECDSA_SHA512_P521: (ec.SECP521R1(), hashes.SHA512()),
}

VERIFIABLE_TYPES = frozenset(
    {
        SigType.DSA_SHA1,
        SigType.ECDSA_SHA256_P256,
        SigType.ECDSA_SHA384_P384,
        SigType.ECDSA_SHA512_P521,
        SigType.EDDSA_SHA512_ED25519,
        SigType.REDDSA_SHA512_ED25519,
    }
)


def verify(sig_type: SigType, public_key: bytes, data: bytes, signature: bytes) -> bool:
    """True iff ``signature`` is valid for ``data`` under ``public_key`` of ``sig_type``.

    A wrong-length key or signature, or a key that is not a valid curve point, is simply
    "not valid" (False): the caller asked a yes/no question about bytes a peer sent.
    Types we cannot verify (RSA, GOST, Ed25519ph) raise :class:`UnsupportedTypeError`, because
    answering False would misreport a possibly genuine signature as forged.
    """
    sizes = SIG_SIZES.get(sig_type)
    if sig_type not in VERIFIABLE_TYPES or sizes is None:
        raise UnsupportedTypeError(f"cannot verify signing type {sig_type!r}")
    if len(public_key) != sizes.public_key or len(signature) != sizes.signature:
        return False
    try:
        if sig_type in (SigType.EDDSA_SHA512_ED25519, SigType.REDDSA_SHA512_ED25519):
            # RedDSA differs from Ed25519 only in how it signs (random nonce, the private key
            # is a scalar, not a seed): R = rB, S = r + H(R‖A‖M)·a.  Verification is the same
            # equation, so the public key is used as-is with standard Ed25519 verification
            # (i2pd's RedDSA25519Verifier is its EDDSA25519Verifier).
            ed25519.Ed25519PublicKey.from_public_bytes(public_key).verify(signature, data)
            return True
        if sig_type in _ECDSA_CURVES:
            curve, digest = _ECDSA_CURVES[sig_type]
            half = sizes.signature // 2
            key = ec.EllipticCurvePublicKey.from_encoded_point(curve, b"\x04" + public_key)
            r = int.from_bytes(signature[:half], "big")
            s = int.from_bytes(signature[half:], "big")
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(digest))
            return True
        if sig_type == SigType.DSA_SHA1:
            return dsa_verify(public_key, data, signature)
    except (InvalidSignature, ValueError):
        return False
    raise UnsupportedTypeError(f"cannot verify signing type {sig_type!r}")  # pragma: no cover


def sha256(data: bytes) -> bytes:
    """SHA-256 digest (destination and router hashes)."""
    return hashlib.sha256(data).digest()
