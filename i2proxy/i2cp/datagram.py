"""I2P datagrams: the bytes inside an I2CP payload of protocol 17, 18, 19 or 20 (sans-IO).

- 18 raw: payload. No sender.
- 17 Datagram1: from ‖ signature ‖ payload. Signed by the sender.
- 19 Datagram2: from ‖ flags ‖ [options] ‖ [offline block] ‖ payload ‖ signature. Signed, and
  bound to the target.
- 20 Datagram3: from-hash ‖ flags ‖ [options] ‖ payload. Sender claimed, not signed.

Datagram1's signature covers the payload itself, except for DSA_SHA1 senders, whose signature
covers the payload's SHA-256 (the datagram spec, i2pd's and Java's implementations). Datagram2
signs ``target hash ‖ flags ‖ options ‖ offline block ‖ payload`` — the receiver puts its own hash
in front — so a datagram cannot be replayed to another destination. Datagram3 carries only the
sender's hash and is not authenticated: a reply needs a LeaseSet lookup of that hash.

Ports and protocol numbers live in the I2CP gzip header (``payload.py``), not here; these
functions see only the inflated data. ``DatagramReceiver`` decodes, verifies, drops and counts.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol as TypingProtocol

from i2proxy.i2cp.errors import I2CPProtocolError
from i2proxy.i2cp.payload import Payload, Protocol
from i2proxy.i2p.destination import Destination, SigType
from i2proxy.i2p.errors import I2PFormatError, UnsupportedTypeError
from i2proxy.i2p.signatures import sha256
from i2proxy.i2p.signatures import verify as verify_signature
from i2proxy.i2p.sigtypes import SIG_SIZES
from i2proxy.i2p.structures import Mapping as I2PMapping

DATAGRAM_PROTOCOLS = frozenset(
    {Protocol.REPLIABLE_DATAGRAM, Protocol.RAW_DATAGRAM, Protocol.DATAGRAM2, Protocol.DATAGRAM3}
)

#: Largest whole datagram (headers included) we build or accept. Java's Datagram2/3 refuse more
#: than 61 KiB; a tunnel message is ~61.2 KB; the I2CP body limit is 64 KiB. Reliability falls
#: sharply above ~10 KB (tunnel fragments), which is the caller's business.
MAX_DATAGRAM_SIZE = 61 * 1024
HASH_LENGTH = 32
_FLAGS = struct.Struct(">H")
_VERSION_MASK = 0x000F
_FLAG_OPTIONS = 0x0010
_FLAG_OFFLINE = 0x0020
_DATAGRAM2_VERSION = 2
_DATAGRAM3_VERSION = 3


class DatagramFormatError(I2CPProtocolError):
    """The bytes do not form a datagram of the announced type."""


class InvalidDatagramSignature(DatagramFormatError):
    """Well-formed, but the signature does not verify (forged, corrupted, or for someone else)."""


class Signer(TypingProtocol):
    """What sending a signed datagram needs: ``PrivateKeys`` satisfies it."""

    @property
    def destination(self) -> Destination: ...

    def sign(self, data: bytes) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Datagram:
    """One received datagram, verified as far as its type allows."""

    protocol: int
    payload: bytes
    #: The sender's full destination (Datagram1/2: authenticated by the signature), else None.
    sender: Destination | None = None
    #: The sender's hash: of ``sender`` for Datagram1/2, as claimed for Datagram3, None for raw.
    sender_hash: bytes | None = None
    src_port: int = 0
    dst_port: int = 0
    options: Mapping[str, str] = field(default_factory=dict)

    @property
    def authenticated(self) -> bool:
        return self.sender is not None


# ------------------------------------------------------------------------------- Datagram1


def _datagram1_signed_data(sender: Destination, payload: bytes) -> bytes:
    return sha256(payload) if sender.sig_type == SigType.DSA_SHA1 else payload


def encode_repliable(signer: Signer, payload: bytes) -> bytes:
    """A Datagram1 (protocol 17): our destination, our signature over the payload, the payload."""
    sender = signer.destination
    data = sender.to_bytes() + signer.sign(_datagram1_signed_data(sender, payload)) + payload
    _check_size(data)
    return data


def decode_repliable(data: bytes) -> tuple[Destination, bytes]:
    """(sender, payload) of a Datagram1; raises ``InvalidDatagramSignature`` if forged."""
    _check_size(data)
    sender, offset = _parse_destination(data, 0)
    end = offset + sender.signature_length
    if end > len(data):
        raise DatagramFormatError("repliable datagram shorter than its signature")
    signature, payload = data[offset:end], data[end:]
    if not _verify(sender, _datagram1_signed_data(sender, payload), signature):
        raise InvalidDatagramSignature(f"repliable datagram from {sender.b32}: bad signature")
    return sender, bytes(payload)


# ------------------------------------------------------------------------------- Datagram2


def encode_datagram2(
    signer: Signer,
    payload: bytes,
    target_hash: bytes,
    options: Mapping[str, str] | None = None,
) -> bytes:
    """A Datagram2 (protocol 19) for the destination whose hash is ``target_hash``.

    We never send the offline-signature block: our destinations sign with their own key.
    """
    if len(target_hash) != HASH_LENGTH:
        raise ValueError("target hash must be 32 bytes")
    flags = _DATAGRAM2_VERSION
    extra = b""
    if options:
        flags |= _FLAG_OPTIONS
        extra = _encode_options(options)
    signed_tail = _FLAGS.pack(flags) + extra + payload
    signature = signer.sign(target_hash + signed_tail)
    data = signer.destination.to_bytes() + signed_tail + signature
    _check_size(data)
    return data


def decode_datagram2(
    data: bytes, own_hash: bytes, now: float
) -> tuple[Destination, bytes, dict[str, str]]:
    """(sender, payload, options) of a Datagram2 addressed to ``own_hash``.

    ``now`` (wall clock, seconds) checks an offline signature's expiry. A datagram signed for
    another destination fails verification like a forged one.
    """
    _check_size(data)
    sender, offset = _parse_destination(data, 0)
    signed_start = offset
    flags, offset, options = _parse_flags_and_options(data, offset, _DATAGRAM2_VERSION)
    sig_type, public_key = sender.sig_type, sender.signing_public_key
    if flags & _FLAG_OFFLINE:
        sig_type, public_key, offset = _parse_offline_block(data, offset, sender, now)
    sig_length = SIG_SIZES[sig_type].signature
    signature_at = len(data) - sig_length
    if signature_at < offset:
        raise DatagramFormatError("Datagram2 shorter than its signature")
    signed = own_hash + data[signed_start:signature_at]
    if not _verify_key(sig_type, public_key, signed, data[signature_at:]):
        raise InvalidDatagramSignature(f"Datagram2 from {sender.b32}: bad signature")
    return sender, bytes(data[offset:signature_at]), options


def _parse_offline_block(
    data: bytes, offset: int, sender: Destination, now: float
) -> tuple[SigType, bytes, int]:
    """expires (4, seconds) ‖ transient sig type (2) ‖ transient key ‖ signature by ``sender``."""
    if offset + 6 > len(data):
        raise DatagramFormatError("Datagram2 offline block truncated")
    expires, type_code = struct.unpack_from(">IH", data, offset)
    try:
        transient_type = SigType(type_code)
    except ValueError:
        raise DatagramFormatError(f"Datagram2 transient sig type {type_code} unknown") from None
    key_end = offset + 6 + SIG_SIZES[transient_type].public_key
    sig_end = key_end + sender.signature_length
    if sig_end > len(data):
        raise DatagramFormatError("Datagram2 offline block truncated")
    if expires < now:
        raise InvalidDatagramSignature("Datagram2 offline signature expired")
    if not _verify(sender, data[offset:key_end], data[key_end:sig_end]):
        raise InvalidDatagramSignature("Datagram2 offline signature invalid")
    return transient_type, bytes(data[offset + 6 : key_end]), sig_end


# ------------------------------------------------------------------------------- Datagram3


def encode_datagram3(
    sender_hash: bytes, payload: bytes, options: Mapping[str, str] | None = None
) -> bytes:
    """A Datagram3 (protocol 20): our hash, flags, options, payload — no signature."""
    if len(sender_hash) != HASH_LENGTH:
        raise ValueError("sender hash must be 32 bytes")
    flags = _DATAGRAM3_VERSION
    extra = b""
    if options:
        flags |= _FLAG_OPTIONS
        extra = _encode_options(options)
    data = sender_hash + _FLAGS.pack(flags) + extra + payload
    _check_size(data)
    return data


def decode_datagram3(data: bytes) -> tuple[bytes, bytes, dict[str, str]]:
    """(claimed sender hash, payload, options) of a Datagram3."""
    _check_size(data)
    if len(data) < HASH_LENGTH + 2:
        raise DatagramFormatError("Datagram3 shorter than hash and flags")
    _, offset, options = _parse_flags_and_options(data, HASH_LENGTH, _DATAGRAM3_VERSION)
    return bytes(data[:HASH_LENGTH]), bytes(data[offset:]), options


# ------------------------------------------------------------------------------- receiving


@dataclass
class DatagramStats:
    received: int = 0
    #: Dropped: the signature did not verify (forged, corrupted, or for another destination).
    invalid_signature: int = 0
    #: Dropped: the bytes do not form a datagram of their protocol.
    malformed: int = 0
    #: Dropped: a Datagram1/2 sender whose signature type we cannot verify (RSA, GOST).
    unverifiable: int = 0


class DatagramReceiver:
    """Turns incoming I2CP payloads of the datagram protocols into ``Datagram``s.

    Invalid ones are dropped and counted in ``stats``; nothing a peer sends raises out of
    ``receive``. ``own_hash`` is our destination's hash (Datagram2 signatures include it).
    """

    def __init__(self, own_hash: bytes) -> None:
        self.own_hash = own_hash
        self.stats = DatagramStats()

    def receive(self, payload: Payload, now: float) -> Datagram | None:
        try:
            datagram = decode_datagram(payload, own_hash=self.own_hash, now=now)
        except InvalidDatagramSignature:
            self.stats.invalid_signature += 1
            return None
        except UnsupportedTypeError:
            self.stats.unverifiable += 1
            return None
        except (I2CPProtocolError, I2PFormatError, ValueError):
            self.stats.malformed += 1
            return None
        self.stats.received += 1
        return datagram


def decode_datagram(payload: Payload, *, own_hash: bytes, now: float) -> Datagram:
    """Decode ``payload.data`` by its protocol number; raises on anything invalid."""
    protocol, data = payload.protocol, payload.data
    ports = {"src_port": payload.src_port, "dst_port": payload.dst_port}
    if protocol == Protocol.RAW_DATAGRAM:
        _check_size(data)
        return Datagram(protocol, data, **ports)
    if protocol == Protocol.REPLIABLE_DATAGRAM:
        sender, body = decode_repliable(data)
        return Datagram(protocol, body, sender, sender.hash, **ports)
    if protocol == Protocol.DATAGRAM2:
        sender, body, options = decode_datagram2(data, own_hash, now)
        return Datagram(protocol, body, sender, sender.hash, options=options, **ports)
    if protocol == Protocol.DATAGRAM3:
        sender_hash, body, options = decode_datagram3(data)
        return Datagram(protocol, body, None, sender_hash, options=options, **ports)
    raise DatagramFormatError(f"protocol {protocol} is not a datagram protocol")


def encode_datagram(
    protocol: int,
    payload: bytes,
    *,
    signer: Signer,
    target_hash: bytes | None = None,
) -> bytes:
    """Build a datagram of ``protocol`` from ``signer`` (Datagram2 needs ``target_hash``)."""
    if protocol == Protocol.RAW_DATAGRAM:
        _check_size(payload)
        return payload
    if protocol == Protocol.REPLIABLE_DATAGRAM:
        return encode_repliable(signer, payload)
    if protocol == Protocol.DATAGRAM2:
        if target_hash is None:
            raise ValueError("a Datagram2 is signed for its target: target_hash needed")
        return encode_datagram2(signer, payload, target_hash)
    if protocol == Protocol.DATAGRAM3:
        return encode_datagram3(signer.destination.hash, payload)
    raise ValueError(f"protocol {protocol} is not a datagram protocol")


# ------------------------------------------------------------------------------- helpers


def _check_size(data: bytes) -> None:
    if len(data) > MAX_DATAGRAM_SIZE:
        raise DatagramFormatError(f"datagram of {len(data)} bytes exceeds {MAX_DATAGRAM_SIZE}")


def _parse_destination(data: bytes, offset: int) -> tuple[Destination, int]:
    try:
        return Destination.parse(data, offset)
    except I2PFormatError as exc:
        raise DatagramFormatError(f"datagram sender: {exc}") from None


def _parse_flags_and_options(
    data: bytes, offset: int, version: int
) -> tuple[int, int, dict[str, str]]:
    if offset + 2 > len(data):
        raise DatagramFormatError("datagram flags truncated")
    (flags,) = _FLAGS.unpack_from(data, offset)
    offset += 2
    if flags & _VERSION_MASK != version:
        raise DatagramFormatError(f"datagram version {flags & _VERSION_MASK}, expected {version}")
    options: dict[str, str] = {}
    if flags & _FLAG_OPTIONS:
        try:
            mapping, offset = I2PMapping.parse(data, offset)
        except I2PFormatError as exc:
            raise DatagramFormatError(f"datagram options: {exc}") from None
        options = dict(mapping.items_)
    return flags, offset, options


def _encode_options(options: Mapping[str, str]) -> bytes:
    return I2PMapping.from_dict(dict(options)).to_bytes()


def _verify(sender: Destination, data: bytes, signature: bytes) -> bool:
    return _verify_key(sender.sig_type, sender.signing_public_key, data, signature)


def _verify_key(sig_type: SigType, public_key: bytes, data: bytes, signature: bytes) -> bool:
    return verify_signature(sig_type, public_key, bytes(data), bytes(signature))
