"""RedDSA (type 11) signatures verify with standard Ed25519 verification, key used as-is.

The signature here is made the RedDSA way, written out with textbook Ed25519 arithmetic: the
private key is a random scalar (not a hashed seed) and the nonce comes from random bytes
(r = H(T ‖ A ‖ M)), so no Ed25519 library could have produced it.  That it verifies is the
claim in :mod:`i2proxy.i2p.signatures`.
"""

import hashlib
import os

from i2proxy.i2p.signatures import verify
from i2proxy.i2p.sigtypes import SigType

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, -1, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _recover_x(y: int, sign: int) -> int:
    x2 = (y * y - 1) * pow(D * y * y + 1, -1, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if x & 1 != sign:
        x = P - x
    return x


B_Y = 4 * pow(5, -1, P) % P
BASE = (_recover_x(B_Y, 0), B_Y, 1, _recover_x(B_Y, 0) * B_Y % P)


def _add(p1, p2):
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * t1 * t2 * D % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _mul(k: int, point):
    result = (0, 1, 1, 0)
    while k:
        if k & 1:
            result = _add(result, point)
        point = _add(point, point)
        k >>= 1
    return result


def _encode(point) -> bytes:
    x, y, z, _ = point
    zi = pow(z, -1, P)
    x, y = x * zi % P, y * zi % P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def _h(*parts: bytes) -> int:
    return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little") % L


def reddsa_sign(a: int, message: bytes) -> tuple[bytes, bytes]:
    public = _encode(_mul(a, BASE))
    r = _h(os.urandom(80), public, message)
    big_r = _encode(_mul(r, BASE))
    s = (r + _h(big_r, public, message) * a) % L
    return public, big_r + s.to_bytes(32, "little")


def test_reddsa_signature_verifies_as_ed25519_with_the_key_as_is():
    a = int.from_bytes(os.urandom(64), "little") % L
    public, signature = reddsa_sign(a, b"RedDSA message")
    assert verify(SigType.REDDSA, public, b"RedDSA message", signature)
    assert not verify(SigType.REDDSA, public, b"RedDSA messagE", signature)
    tampered = signature[:40] + bytes([signature[40] ^ 1]) + signature[41:]
    assert not verify(SigType.REDDSA, public, b"RedDSA message", tampered)
