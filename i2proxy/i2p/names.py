"""``.b32.i2p`` names: the destination hash behind a name, and recognising b33 addresses.

A b32 name is the 52-character base32 of the destination's SHA-256 hash.  A name of 56 or more
characters before ``.b32.i2p`` is a b33 address (encrypted/blinded LeaseSet, proposal 149): it
encodes a blinded public key, not a hash, and resolving it needs the blinding scheme, which we do
not implement.  Recognising it lets callers say so instead of "invalid address".
"""

from __future__ import annotations

from i2proxy.i2p.base64 import b32decode, b32encode
from i2proxy.i2p.errors import B33NotSupported, I2PFormatError

B32_SUFFIX = ".b32.i2p"
B32_HASH_CHARS = 52
B33_MIN_CHARS = 56
MAX_NAME = 255  # DNS limit; anything longer is not a host name


def b32_hash_from_name(name: str) -> bytes:
    """The 32-byte destination hash for ``<52 chars>.b32.i2p`` (case-insensitive).

    Raises :class:`B33NotSupported` for b33 names and :class:`I2PFormatError` for anything else
    that is not a valid b32 name.
    """
    if not isinstance(name, str):
        raise I2PFormatError(f"b32 name: expected str, got {type(name).__name__}")
    if len(name) > MAX_NAME:
        raise I2PFormatError(f"b32 name: {len(name)} characters, at most {MAX_NAME}")
    lowered = name.lower().rstrip(".")
    if not lowered.endswith(B32_SUFFIX):
        raise I2PFormatError(f"b32 name: {name[:80]!r} does not end in {B32_SUFFIX}")
    label = lowered[: -len(B32_SUFFIX)]
    if len(label) >= B33_MIN_CHARS:
        try:
            b32decode(label)
        except I2PFormatError as exc:
            raise exc.within("b33 name") from None
        raise B33NotSupported(
            f"{name[:80]!r} is a b33 (encrypted LeaseSet) address, which i2proxy does not "
            "support yet"
        )
    if len(label) != B32_HASH_CHARS:
        raise I2PFormatError(
            f"b32 name: {len(label)} characters before {B32_SUFFIX}, expected {B32_HASH_CHARS} "
            f"(or {B33_MIN_CHARS}+ for b33)"
        )
    try:
        return b32decode(label)
    except I2PFormatError as exc:
        raise exc.within("b32 name") from None


def is_b32_name(name: str) -> bool:
    """True for a well-formed 52-character ``.b32.i2p`` name."""
    try:
        b32_hash_from_name(name)
    except I2PFormatError:
        return False
    return True


def b32_name_from_hash(digest: bytes) -> str:
    """``<52 chars>.b32.i2p`` for a 32-byte destination hash."""
    if len(digest) != 32:
        raise I2PFormatError(f"destination hash is {len(digest)} bytes, not 32")
    return b32encode(digest) + B32_SUFFIX
