"""Encryption key pairs a destination hands to its router: X25519 (type 4) and ElGamal (type 0).

ElGamal is still needed: i2pd's SAM transient destinations default to ElGamal-only, and they can
only reach us if our LeaseSet2 offers an ElGamal key as well (see the interop notes).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import cached_property

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from i2proxy.i2p.errors import I2PFormatError, UnsupportedTypeError
from i2proxy.i2p.sigtypes import CRYPTO_PRIVATE_KEY_SIZES, CryptoType

# RFC 3526 2048-bit MODP group (group 14), generator 2: I2P's ElGamal group.
ELGAMAL_P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A0879"
    "8E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B"
    "0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA4836"
    "1C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804"
    "F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6"
    "955817183995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
    16,
)
ELGAMAL_G = 2

SUPPORTED = (CryptoType.X25519, CryptoType.ELGAMAL)


@dataclass(frozen=True)
class EncryptionKey:
    """One encryption private key; the public half is derived (and cached)."""

    crypto_type: CryptoType
    private: bytes

    def __post_init__(self) -> None:
        if self.crypto_type not in SUPPORTED:
            raise UnsupportedTypeError(f"unsupported encryption key type {self.crypto_type!r}")
        expected = CRYPTO_PRIVATE_KEY_SIZES[self.crypto_type]
        if len(self.private) != expected:
            raise I2PFormatError(
                f"{self.crypto_type.name} private key is {len(self.private)} bytes, "
                f"expected {expected}"
            )
        if self.crypto_type == CryptoType.ELGAMAL:
            x = int.from_bytes(self.private, "big")
            if not 1 < x < ELGAMAL_P - 1:
                raise I2PFormatError("ElGamal private key is out of range")

    @classmethod
    def generate(cls, crypto_type: CryptoType) -> EncryptionKey:
        """A fresh random key pair of ``crypto_type``."""
        if crypto_type == CryptoType.X25519:
            raw = x25519.X25519PrivateKey.generate().private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            return cls(CryptoType.X25519, raw)
        if crypto_type == CryptoType.ELGAMAL:
            x = secrets.randbelow(ELGAMAL_P - 3) + 2
            return cls(CryptoType.ELGAMAL, x.to_bytes(256, "big"))
        raise UnsupportedTypeError(f"cannot generate {crypto_type!r} keys")

    @cached_property
    def public(self) -> bytes:
        """The public key as it appears in a LeaseSet2 (X25519: 32 bytes; ElGamal: 256)."""
        if self.crypto_type == CryptoType.X25519:
            key = x25519.X25519PrivateKey.from_private_bytes(self.private)
            return key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        y = pow(ELGAMAL_G, int.from_bytes(self.private, "big"), ELGAMAL_P)
        return y.to_bytes(256, "big")

    def __repr__(self) -> str:
        return f"EncryptionKey({self.crypto_type.name}, <secret>)"
