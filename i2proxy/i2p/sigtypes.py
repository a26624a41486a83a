"""Signing and encryption type codes, with the key and signature sizes they imply.

The sizes decide where one field ends and the next begins in every structure that carries keys,
so they live in one table that parsers and builders share.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from i2proxy.i2p.errors import UnsupportedTypeError


class SigType(IntEnum):
    """Signing types of the I2P common-structures spec (KEY certificate, LeaseSet2, ...)."""

    DSA_SHA1 = 0
    ECDSA_SHA256_P256 = 1
    ECDSA_SHA384_P384 = 2
    ECDSA_SHA512_P521 = 3
    RSA_SHA256_2048 = 4
    RSA_SHA384_3072 = 5
    RSA_SHA512_4096 = 6
    EDDSA_SHA512_ED25519 = 7
    EDDSA_SHA512_ED25519PH = 8
    GOST_R3410_256 = 9
    GOST_R3410_512 = 10
    REDDSA_SHA512_ED25519 = 11
    # Short aliases (same values) for readable call sites.
    ECDSA_P256 = 1
    ECDSA_P384 = 2
    ECDSA_P521 = 3
    ED25519 = 7
    ED25519PH = 8
    REDDSA = 11


class CryptoType(IntEnum):
    """Encryption (crypto) types of destinations and LeaseSet2 encryption keys."""

    ELGAMAL = 0
    ECIES_P256 = 1
    ECIES_P384 = 2
    ECIES_P521 = 3
    X25519 = 4
    ECIES_X25519 = 4


@dataclass(frozen=True)
class SigSizes:
    """Byte lengths that a signing type fixes."""

    public_key: int
    private_key: int
    signature: int


SIG_SIZES: dict[SigType, SigSizes] = {
    SigType.DSA_SHA1: SigSizes(128, 20, 40),
    SigType.ECDSA_SHA256_P256: SigSizes(64, 32, 64),
    SigType.ECDSA_SHA384_P384: SigSizes(96, 48, 96),
    SigType.ECDSA_SHA512_P521: SigSizes(132, 66, 132),
    SigType.RSA_SHA256_2048: SigSizes(256, 512, 256),
    SigType.RSA_SHA384_3072: SigSizes(384, 768, 384),
    SigType.RSA_SHA512_4096: SigSizes(512, 1024, 512),
    SigType.EDDSA_SHA512_ED25519: SigSizes(32, 32, 64),
    SigType.EDDSA_SHA512_ED25519PH: SigSizes(32, 32, 64),
    SigType.GOST_R3410_256: SigSizes(64, 32, 64),
    SigType.GOST_R3410_512: SigSizes(128, 64, 128),
    SigType.REDDSA_SHA512_ED25519: SigSizes(32, 32, 64),
}

CRYPTO_PUBLIC_KEY_SIZES: dict[CryptoType, int] = {
    CryptoType.ELGAMAL: 256,
    CryptoType.ECIES_P256: 64,
    CryptoType.ECIES_P384: 96,
    CryptoType.ECIES_P521: 132,
    CryptoType.X25519: 32,
}

CRYPTO_PRIVATE_KEY_SIZES: dict[CryptoType, int] = {
    CryptoType.ELGAMAL: 256,
    CryptoType.ECIES_P256: 32,
    CryptoType.ECIES_P384: 48,
    CryptoType.ECIES_P521: 66,
    CryptoType.X25519: 32,
}


def sig_type(code: int, *, offset: int | None = None) -> SigType:
    """Map a wire code to :class:`SigType`, or raise :class:`UnsupportedTypeError`."""
    try:
        return SigType(code)
    except ValueError:
        raise UnsupportedTypeError(f"unknown signing type {code}", offset=offset) from None


def crypto_type(code: int, *, offset: int | None = None) -> CryptoType:
    """Map a wire code to :class:`CryptoType`, or raise :class:`UnsupportedTypeError`."""
    try:
        return CryptoType(code)
    except ValueError:
        raise UnsupportedTypeError(f"unknown crypto type {code}", offset=offset) from None


def sig_sizes(t: SigType) -> SigSizes:
    """Sizes for signing type ``t``."""
    return SIG_SIZES[t]
