"""Signature checks of Proposal 112 lines, for every signing type the core Destination verifies.

``sig`` is made with the key of ``dest`` (the entry's destination, or the ``dest`` property on a
command-only line); ``oldsig`` with the key of ``olddest``. Which bytes are signed is defined in
``hoststxt.signed_message``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from i2proxy.naming.errors import InvalidDestination
from i2proxy.naming.hoststxt import HostsEntry, signed_message

if TYPE_CHECKING:
    from i2proxy.i2p.destination import Destination


@lru_cache(maxsize=8192)
def parse_destination(b64: str) -> Destination:
    """Parse a full base64 destination; trailing bytes (e.g. appended private keys) are refused."""
    from i2proxy.i2p.destination import Destination

    try:
        return Destination.from_base64(b64)
    except ValueError as exc:  # I2PFormatError and its subclasses are ValueErrors
        raise InvalidDestination(f"not a destination: {exc}") from None


def _b64decode(text: str) -> bytes:
    from i2proxy.i2p.base64 import b64decode

    return b64decode(text)


def verify_with(dest_b64: str | None, message: bytes, sig_b64: str | None) -> bool:
    """True if ``sig_b64`` is a valid signature of ``message`` by ``dest_b64``'s signing key."""
    if not dest_b64 or not sig_b64:
        return False
    try:
        dest = parse_destination(dest_b64)
        signature = _b64decode(sig_b64)
    except (InvalidDestination, ValueError):
        return False
    if len(signature) != dest.signature_length:
        return False
    try:
        return bool(dest.verify(message, signature))
    except Exception:  # an unsupported or broken key must reject the line, not the feed
        return False


def has_valid_sig(entry: HostsEntry) -> bool:
    """The outer signature: by ``dest`` over everything but ``sig`` (``oldsig`` included)."""
    if entry.props is None:
        return False
    signer = entry.dest if entry.name is not None else entry.props.get("dest")
    return verify_with(signer, signed_message(entry), entry.props.get("sig"))


def has_valid_inner_sig(entry: HostsEntry) -> bool:
    """The inner signature: by ``olddest`` over everything but ``sig`` and ``oldsig``."""
    if entry.props is None or entry.name is None:
        return False
    return verify_with(
        entry.props.get("olddest"), signed_message(entry, inner=True), entry.props.get("oldsig")
    )
