"""``.b32.i2p`` names: the destination hash behind a name, and recognising b33 addresses.

The one parser of these names in i2proxy: the dialers, the address book, the proxy's host
classification and the address helper all ask here, so they agree on what a b33 name is.

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
_B32_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz234567")


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


def b32_kind(name: str) -> str | None:
    """``"b32"`` for a 52-character ``.b32.i2p`` name, ``"b33"`` for a well-formed b33 one (56+
    base32 characters that decode), None for anything else (case-insensitive, one trailing dot
    allowed).

    A b32 name is classified by its shape, as i2pd and Java read it (they ignore the 4 spare bits
    of the last character); :func:`b32_hash_from_name` is stricter and refuses a non-canonical
    spelling, so a dialer that needs the hash says so precisely.
    """
    try:
        b32_hash_from_name(name)
    except B33NotSupported:
        return "b33"
    except I2PFormatError:
        label = name.lower().rstrip(".").removesuffix(B32_SUFFIX) if isinstance(name, str) else ""
        if len(label) == B32_HASH_CHARS and all(c in _B32_ALPHABET for c in label):
            return "b32"
        return None
    return "b32"


def is_b32_name(name: str) -> bool:
    """True for a well-formed 52-character ``.b32.i2p`` name."""
    return b32_kind(name) == "b32"


def is_b33_name(name: str) -> bool:
    """True for a well-formed b33 (encrypted LeaseSet) ``.b32.i2p`` name."""
    return b32_kind(name) == "b33"


def b32_name_from_hash(digest: bytes) -> str:
    """``<52 chars>.b32.i2p`` for a 32-byte destination hash."""
    if len(digest) != 32:
        raise I2PFormatError(f"destination hash is {len(digest)} bytes, not 32")
    return b32encode(digest) + B32_SUFFIX
