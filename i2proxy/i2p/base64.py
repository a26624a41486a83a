"""I2P's base64 and base32 codecs.

I2P base64 is RFC 4648 base64 with ``+`` → ``-`` and ``/`` → ``~`` (so destinations survive URLs
and file names).  Base32 addresses are RFC 4648 base32, lowercase, without ``=`` padding.

Decoding is strict: a wrong character, wrong padding, an impossible length or non-zero unused
trailing bits all raise :class:`I2PFormatError` naming the position.  Two different strings must
never decode to the same bytes, otherwise one destination would have several spellings.
"""

from __future__ import annotations

import base64 as _std
import binascii

from i2proxy.i2p.errors import I2PFormatError

_B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-~"
_B64_VALUES = {c: i for i, c in enumerate(_B64_ALPHABET)}
_TO_STD = str.maketrans("-~", "+/")
_FROM_STD = str.maketrans("+/", "-~")
_TO_STD_BYTES = bytes.maketrans(b"-~", b"+/")
_FROM_STD_BYTES = bytes.maketrans(b"+/", b"-~")

_B32_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_B32_VALUES = {c: i for i, c in enumerate(_B32_ALPHABET)}


def b64encode(data: bytes) -> str:
    """Encode with the I2P alphabet, ``=``-padded (as i2pd and Java emit it)."""
    return binascii.b2a_base64(data, newline=False).translate(_FROM_STD_BYTES).decode("ascii")


def b64decode(text: str) -> bytes:
    """Decode I2P base64 strictly; the padding must be present and exact."""
    if isinstance(text, str) and "+" not in text and "/" not in text:
        # Fast path in C: binascii's strict mode checks alphabet and padding; the slow path
        # below runs only for bad input, to name the precise problem and offset.
        try:
            raw = binascii.a2b_base64(
                text.encode("ascii").translate(_TO_STD_BYTES), strict_mode=True
            )
        except (binascii.Error, UnicodeEncodeError):
            pass
        else:
            # Canonical means: encoding the bytes again gives the same text. This also rejects
            # what strict_mode lets through (padding after a full quad: "AAAA=").
            if b64encode(raw) == text:
                return raw
    if not isinstance(text, str):
        raise I2PFormatError(f"base64: expected str, got {type(text).__name__}")
    if len(text) % 4:
        raise I2PFormatError(f"base64: length {len(text)} is not a multiple of 4")
    body = text.rstrip("=")
    pad = len(text) - len(body)
    if pad > 2:
        raise I2PFormatError(f"base64: {pad} padding characters", offset=len(body))
    for i, c in enumerate(body):
        if c not in _B64_VALUES:
            raise I2PFormatError(f"base64: invalid character {c!r}", offset=i)
    if pad:
        # The bits after the last whole byte must be zero, or the encoding is not canonical.
        last = _B64_VALUES[body[-1]]
        if last & (0x0F if pad == 2 else 0x03):
            raise I2PFormatError("base64: non-zero bits after the last byte", offset=len(body) - 1)
    return _std.b64decode(text.translate(_TO_STD), validate=True)


# Two base32 characters per 10 bits: the stdlib encoder is pure Python in 3.11 and was the
# largest single cost of computing a b32 address.
_B32_PAIRS = [_B32_ALPHABET[i >> 5] + _B32_ALPHABET[i & 31] for i in range(1024)]


def b32encode(data: bytes) -> str:
    """Encode as lowercase unpadded base32 (the form used in ``.b32.i2p`` names)."""
    nbits = len(data) * 8
    shift = -nbits % 10
    n = int.from_bytes(data, "big") << shift
    pairs = (nbits + shift) // 10
    text = "".join([_B32_PAIRS[(n >> (10 * i)) & 1023] for i in range(pairs - 1, -1, -1)])
    return text[: (nbits + 4) // 5]


def b32decode(text: str) -> bytes:
    """Decode unpadded base32; upper case is accepted because host names are case-insensitive."""
    if not isinstance(text, str):
        raise I2PFormatError(f"base32: expected str, got {type(text).__name__}")
    text = text.lower()
    for i, c in enumerate(text):
        if c not in _B32_VALUES:
            raise I2PFormatError(f"base32: invalid character {c!r}", offset=i)
    spare_bits = len(text) * 5 % 8
    if spare_bits >= 5:
        raise I2PFormatError(f"base32: length {len(text)} cannot encode whole bytes")
    if spare_bits and _B32_VALUES[text[-1]] & ((1 << spare_bits) - 1):
        raise I2PFormatError("base32: non-zero bits after the last byte", offset=len(text) - 1)
    padded = text.upper() + "=" * (-len(text) % 8)
    return _std.b32decode(padded)
