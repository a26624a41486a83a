"""DSA-SHA1 (signing type 0) with I2P's fixed 1024-bit group.

Legacy, but 28 of the 68 default address-book entries still use it, and their address-book
lines (Proposal 112) are signed with it.  Public key: y as 128 bytes; private key: x as 20 bytes;
signature: r ‖ s, 20 bytes each; the digest is SHA-1.
"""

from __future__ import annotations

import secrets
from functools import cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

DSA_P = int(
    "9c05b2aa960d9b97b8931963c9cc9e8c3026e9b8ed92fad0a69cc886d5bf8015fcadae31a0ad18fab3f01b00"
    "a358de237655c4964afaa2b337e96ad316b9fb1cc564b5aec5b69a9ff6c3e4548707fef8503d91dd8602e867"
    "e6d35d2235c1869ce2479c3b9d5401de04e0727fb33d6511285d4cf29538d9e3b6051f5b22cc1c93",
    16,
)
DSA_Q = int("a5dfc28fef4ca1e286744cd8eed9d29d684046b7", 16)
DSA_G = int(
    "0c1f4d27d40093b429e962d7223824e0bbc47e7c832a39236fc683af84889581075ff9082ed32353d4374d73"
    "01cda1d23c431f4698599dda02451824ff369752593647cc3ddc197de985e43d136cdcfc6bd5409cd2f45082"
    "1142a5e6f8eb1c3ab5d0484b8129fcf17bce4f7f33321c3cb3dbb14a905e7b2b3e93be4708cbcc82",
    16,
)


@cache
def _parameters() -> dsa.DSAParameterNumbers:
    return dsa.DSAParameterNumbers(DSA_P, DSA_Q, DSA_G)


def dsa_verify(public_key: bytes, data: bytes, signature: bytes) -> bool:
    """Verify a 40-byte r ‖ s signature over SHA-1(data) with the 128-byte public key y."""
    y = int.from_bytes(public_key, "big")
    r = int.from_bytes(signature[:20], "big")
    s = int.from_bytes(signature[20:], "big")
    if not (1 < y < DSA_P and 0 < r < DSA_Q and 0 < s < DSA_Q):
        return False
    try:
        key = dsa.DSAPublicNumbers(y, _parameters()).public_key()
        key.verify(encode_dss_signature(r, s), data, hashes.SHA1())
    except (InvalidSignature, ValueError):
        return False
    return True


def dsa_public_key(private_key: bytes) -> bytes:
    """y = g^x mod p as 128 bytes."""
    return pow(DSA_G, int.from_bytes(private_key, "big"), DSA_P).to_bytes(128, "big")


def dsa_generate() -> bytes:
    """A fresh 20-byte private key x in [1, q)."""
    return (secrets.randbelow(DSA_Q - 1) + 1).to_bytes(20, "big")


def dsa_private_key_valid(private_key: bytes) -> bool:
    """True iff x is in [1, q)."""
    return 0 < int.from_bytes(private_key, "big") < DSA_Q


def dsa_sign(private_key: bytes, data: bytes) -> bytes:
    """Sign SHA-1(data); return r ‖ s (20 bytes each)."""
    x = int.from_bytes(private_key, "big")
    y = pow(DSA_G, x, DSA_P)
    key = dsa.DSAPrivateNumbers(x, dsa.DSAPublicNumbers(y, _parameters())).private_key()
    r, s = decode_dss_signature(key.sign(data, hashes.SHA1()))
    return r.to_bytes(20, "big") + s.to_bytes(20, "big")
