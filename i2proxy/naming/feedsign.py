"""Writing signed Proposal 112 lines (the publisher's side), e.g. to announce a key change.

Used by tests and benchmarks to produce feeds signed by keys they generate, and usable by a
name holder: ``sign_line("example.i2p", new_dest, key, action="changedest", olddest=...,
old_key=...)``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from i2proxy.naming.hoststxt import format_line, sign_entry_props

if TYPE_CHECKING:
    from i2proxy.i2p.destination import Destination
    from i2proxy.i2p.signing import SigningPrivateKey


def _b64(data: bytes) -> str:
    from i2proxy.i2p.base64 import b64encode

    return b64encode(data)


def sign_line(
    name: str | None,
    dest: str | None,
    key: SigningPrivateKey,
    /,
    *,
    old_key: SigningPrivateKey | None = None,
    **props: str,
) -> str:
    """A complete signed line (no newline).

    ``key`` signs as ``sig`` (the key of ``dest``, or of the ``dest`` property on a command-only
    line); ``old_key`` (the key of ``olddest``) first signs as ``oldsig``. Property order in the
    output is the order given, then ``oldsig``, then ``sig`` — any order verifies, since the
    signed bytes sort the keys.
    """
    fields = {k: v for k, v in props.items()}
    if old_key is not None:
        fields["oldsig"] = _b64(old_key.sign(sign_entry_props(name, dest, fields, inner=True)))
    fields["sig"] = _b64(key.sign(sign_entry_props(name, dest, fields)))
    if name is None:
        return "#!" + "#".join(f"{k}={v}" for k, v in fields.items())
    assert dest is not None
    return format_line(name, dest, fields)


def new_identity(sig_type: int = 7) -> tuple[Destination, SigningPrivateKey]:
    """A fresh destination (X25519 encryption key) and its signing key."""
    from i2proxy.i2p.destination import CryptoType, Destination, SigType
    from i2proxy.i2p.signing import SigningPrivateKey

    st = SigType(sig_type)
    key = SigningPrivateKey.generate(st)
    public = key.public_bytes()
    padding = os.urandom(max(0, 256 - 32) + max(0, 128 - len(public)))
    dest = Destination.create(
        sig_type=st,
        signing_public_key=public,
        crypto_type=CryptoType.X25519,
        crypto_public_key=os.urandom(32),
        padding=padding,
    )
    return dest, key
