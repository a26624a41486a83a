"""Streaming packet codec: every field, flag and option of the I2P streaming specification.

Layout (all integers big-endian)::

    send stream id (4) | receive stream id (4) | sequence (4) | ack through (4)
    NACK count (1) | NACKs (4 each) | resend delay (1) | flags (2) | option size (2)
    options (in flag-bit order) | payload (the rest; framing comes from I2CP)

Options appear in this order when their flag is set: DELAY_REQUESTED (2), FROM_INCLUDED (a full
Destination), MAX_PACKET_SIZE_INCLUDED (2), OFFLINE_SIGNATURE (variable), SIGNATURE_INCLUDED
(length implied by the signer's key). The signature covers the whole packet with its own bytes
zeroed, so :func:`encode` signs after laying the packet out and :func:`verify_signature` zeroes
the same span before checking.

Parsing is strict and bounded: a malformed packet raises :class:`PacketError` saying what and
where; nothing is read past the end and nothing is allocated beyond the input.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntFlag
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from i2proxy.i2p.destination import Destination

#: Header bytes without NACKs or options.
MIN_HEADER_SIZE = 22
#: The NACK count is one byte.
MAX_NACKS = 255
#: Largest packet we parse or build: I2CP messages are at most 64 KiB.
MAX_PACKET_BYTES = 65535
#: A DELAY_REQUESTED value of this or more means "choke: send nothing more until told
#: otherwise". The spec says "> 60000", Java checks >= 60001, but i2pd chokes with exactly 60000
#: (DELAY_CHOKING) and means it, so we honour that too.
CHOKE_DELAY_MS = 60000
#: Delay value we send to choke the peer: the smallest that both read as a choke. Java checks
#: >= 60001 (Packet.MIN_DELAY_CHOKE) and ignores i2pd's 60000; i2pd (2.58) checks >= 60000 but
#: takes Java's own 61000 as "a Java peer" and caps its window at 64 for the whole stream.
CHOKE_SEND_DELAY_MS = 60001
#: Replay protection (spec 0.9.58): a SYN carries exactly this many NACKs, which spell the
#: 32-byte hash of the destination it is addressed to.
REPLAY_NACK_COUNT = 8

_HEADER = struct.Struct("!IIII")
#: The whole header of a packet without NACKs: ids, sequence, ack through, NACK count (0),
#: resend delay, flags, option size.
_PLAIN_HEADER = struct.Struct("!IIIIBBHH")
_REPLAY_NACKS = struct.Struct("!8I")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


class Flag(IntFlag):
    """The flags field. Bits 12-15 are unused and must be zero when sending."""

    SYNCHRONIZE = 0x0001
    CLOSE = 0x0002
    RESET = 0x0004
    SIGNATURE_INCLUDED = 0x0008
    SIGNATURE_REQUESTED = 0x0010
    FROM_INCLUDED = 0x0020
    DELAY_REQUESTED = 0x0040
    MAX_PACKET_SIZE_INCLUDED = 0x0080
    PROFILE_INTERACTIVE = 0x0100
    ECHO = 0x0200
    NO_ACK = 0x0400
    OFFLINE_SIGNATURE = 0x0800


NO_FLAGS = Flag(0)

#: Flags whose presence is decided by an option field of :class:`Packet`, not set by hand.
OPTION_FLAGS = (
    Flag.DELAY_REQUESTED
    | Flag.FROM_INCLUDED
    | Flag.MAX_PACKET_SIZE_INCLUDED
    | Flag.OFFLINE_SIGNATURE
    | Flag.SIGNATURE_INCLUDED
)
KNOWN_FLAGS = Flag(0x0FFF)

# Flag bits as plain ints, for the codec and the connection's per-packet tests: every ``&``/``|``
# on an IntFlag builds a new enum member in Python code (~1 µs each), a third of the CPU of a
# bulk transfer's packets.
SYN_BIT = int(Flag.SYNCHRONIZE)
CLOSE_BIT = int(Flag.CLOSE)
RESET_BIT = int(Flag.RESET)
ECHO_BIT = int(Flag.ECHO)
NO_ACK_BIT = int(Flag.NO_ACK)
#: The packets the spec requires signed.
SIGNED_BITS = SYN_BIT | CLOSE_BIT | RESET_BIT
_DELAY_REQUESTED = int(Flag.DELAY_REQUESTED)
_FROM_INCLUDED = int(Flag.FROM_INCLUDED)
_MAX_PACKET_SIZE_INCLUDED = int(Flag.MAX_PACKET_SIZE_INCLUDED)
_OFFLINE_SIGNATURE = int(Flag.OFFLINE_SIGNATURE)
_SIGNATURE_INCLUDED = int(Flag.SIGNATURE_INCLUDED)
_OPTION_BITS = int(OPTION_FLAGS)
_KNOWN_BITS = int(KNOWN_FLAGS)

#: Signing public key and signature lengths per sig type (common structures spec), needed to
#: walk an OFFLINE_SIGNATURE option whose transient key type may differ from the destination's.
SIG_TYPE_LENGTHS: dict[int, tuple[int, int]] = {
    0: (128, 40),  # DSA-SHA1
    1: (64, 64),  # ECDSA-SHA256-P256
    2: (96, 96),  # ECDSA-SHA384-P384
    3: (132, 132),  # ECDSA-SHA512-P521
    4: (256, 256),  # RSA-SHA256-2048
    5: (384, 384),  # RSA-SHA384-3072
    6: (512, 512),  # RSA-SHA512-4096
    7: (32, 64),  # EdDSA-SHA512-Ed25519
    8: (32, 64),  # EdDSA-SHA512-Ed25519ph
    11: (32, 64),  # RedDSA-SHA512-Ed25519
}


class PacketError(ValueError):
    """A streaming packet is malformed (truncated, inconsistent options, out of range)."""


class Signer(Protocol):
    """What :func:`encode` needs to sign: our Destination and its private signing key."""

    @property
    def destination(self) -> Destination: ...

    def sign(self, data: bytes) -> bytes: ...


@dataclass(frozen=True, slots=True)
class OfflineSignature:
    """The OFFLINE_SIGNATURE option: a transient key authorised by the destination's key."""

    #: Seconds since the epoch after which the transient key is invalid.
    expires: int
    #: Sig type of the transient key.
    transient_sig_type: int
    #: The transient signing public key.
    transient_public_key: bytes
    #: Destination's signature over expires ‖ type ‖ key.
    signature: bytes

    def signed_bytes(self) -> bytes:
        """The bytes the destination signed."""
        return (
            _U32.pack(self.expires) + _U16.pack(self.transient_sig_type) + self.transient_public_key
        )

    def to_bytes(self) -> bytes:
        return self.signed_bytes() + self.signature


@dataclass(slots=True)
class Packet:
    """One streaming packet. Option flags follow from the option fields; see :func:`encode`."""

    #: The stream id the *receiver* of this packet chose (0 until its SYN reply is seen).
    send_stream_id: int
    #: The stream id the *sender* of this packet chose.
    receive_stream_id: int
    #: 0 in the SYN; +1 for every packet except plain ACKs and retransmissions.
    sequence_num: int = 0
    #: Highest sequence number received; all up to it are acknowledged except the NACKs.
    ack_through: int = 0
    #: Sequence numbers below ack_through not yet received.
    nacks: tuple[int, ...] = ()
    #: Seconds the sender will wait before resending (informational; ignored on receive).
    resend_delay: int = 0
    #: Control flags (SYNCHRONIZE, CLOSE, RESET, ECHO, NO_ACK, ...) plus, after decoding, the
    #: option flags.
    flags: Flag = NO_FLAGS
    #: DELAY_REQUESTED option in milliseconds (> 60000 means choke).
    delay_requested: int | None = None
    #: FROM_INCLUDED option: the sender's full Destination.
    from_destination: Destination | None = None
    #: MAX_PACKET_SIZE_INCLUDED option: largest payload the sender accepts.
    max_packet_size: int | None = None
    #: OFFLINE_SIGNATURE option.
    offline_signature: OfflineSignature | None = None
    #: SIGNATURE_INCLUDED option, as received (None when absent).
    signature: bytes | None = None
    payload: bytes = b""
    #: After decoding: the packet exactly as received, for signature verification.
    raw: bytes = field(default=b"", repr=False, compare=False)
    #: After decoding: offset of the signature bytes inside ``raw``.
    signature_offset: int = field(default=-1, repr=False, compare=False)

    def has(self, flag: Flag) -> bool:
        return bool(int.__and__(self.flags, flag))  # int arithmetic: see SYN_BIT

    @property
    def is_syn(self) -> bool:
        return bool(int.__and__(self.flags, SYN_BIT))

    @property
    def is_plain_ack(self) -> bool:
        """Sequence 0 without SYN: an ACK that is itself never acknowledged (spec)."""
        return self.sequence_num == 0 and not int.__and__(self.flags, SYN_BIT)

    @property
    def choke(self) -> bool:
        return self.delay_requested is not None and self.delay_requested >= CHOKE_DELAY_MS

    def describe(self) -> str:
        """Short human-readable summary for logs."""
        names = "|".join(f.name or "?" for f in Flag if self.flags & f) or "-"
        return (
            f"sid={self.send_stream_id} rid={self.receive_stream_id} seq={self.sequence_num} "
            f"ack={self.ack_through} nacks={list(self.nacks)} flags={names} "
            f"len={len(self.payload)}"
        )


#: Flag values seen so far (at most 2^16): ``Flag(int)`` runs the enum machinery each time.
_FLAG_CACHE: dict[int, Flag] = {}


def _flag(bits: int) -> Flag:
    flag = _FLAG_CACHE.get(bits)
    if flag is None:
        flag = _FLAG_CACHE[bits] = Flag(bits)
    return flag


def _default_destination_parser() -> Callable[[bytes, int], tuple[Any, int]]:
    from i2proxy.i2p.destination import Destination

    return Destination.parse


def encode(packet: Packet, signer: Signer | None = None) -> bytes:
    """Lay out ``packet``; sign it when ``signer`` is given (sets SIGNATURE_INCLUDED).

    Option flags are derived from the option fields, so a packet cannot claim an option it does
    not carry. SYNCHRONIZE requires FROM and a signature; CLOSE and RESET require a signature
    (spec); building such a packet without a signer raises :class:`PacketError`.
    """
    flags = int(packet.flags) & ~_OPTION_BITS & _KNOWN_BITS
    if (
        signer is None
        and not packet.nacks
        and packet.delay_requested is None
        and packet.from_destination is None
        and packet.max_packet_size is None
        and packet.offline_signature is None
        and not flags & SIGNED_BITS
        and len(packet.payload) <= MAX_PACKET_BYTES - MIN_HEADER_SIZE
    ):
        # Fast path: no NACKs, no options, unsigned (data packets and plain ACKs). The same
        # bytes as :func:`_encode_general`; a field out of range gets its checks there.
        try:
            return (
                _PLAIN_HEADER.pack(
                    packet.send_stream_id,
                    packet.receive_stream_id,
                    packet.sequence_num,
                    packet.ack_through,
                    0,
                    packet.resend_delay,
                    flags,
                    0,
                )
                + packet.payload
            )
        except struct.error:
            pass
    return _encode_general(packet, signer)


def _encode_general(packet: Packet, signer: Signer | None) -> bytes:
    """:func:`encode` for every packet shape, with every range check."""
    flags = int(packet.flags) & ~_OPTION_BITS & _KNOWN_BITS
    needs_signature = bool(flags & SIGNED_BITS)
    if flags & ECHO_BIT and packet.from_destination is not None:
        needs_signature = True  # a ping must be signed
    if needs_signature and signer is None:
        raise PacketError(f"a packet with flags {Flag(flags)!r} must be signed")
    if len(packet.nacks) > MAX_NACKS:
        raise PacketError(f"{len(packet.nacks)} NACKs, at most {MAX_NACKS} fit")
    for name in ("send_stream_id", "receive_stream_id", "sequence_num", "ack_through"):
        value = getattr(packet, name)
        if not 0 <= value <= 0xFFFFFFFF:
            raise PacketError(f"{name}={value} does not fit in 4 bytes")
    if not 0 <= packet.resend_delay <= 255:
        raise PacketError(f"resend_delay={packet.resend_delay} does not fit in 1 byte")

    options = bytearray()
    if packet.delay_requested is not None:
        if not 0 <= packet.delay_requested <= 0xFFFF:
            raise PacketError(f"delay_requested={packet.delay_requested} out of range")
        flags |= _DELAY_REQUESTED
        options += _U16.pack(packet.delay_requested)
    if packet.from_destination is not None:
        flags |= _FROM_INCLUDED
        options += packet.from_destination.to_bytes()
    if packet.max_packet_size is not None:
        if not 0 < packet.max_packet_size <= 0xFFFF:
            raise PacketError(f"max_packet_size={packet.max_packet_size} out of range")
        flags |= _MAX_PACKET_SIZE_INCLUDED
        options += _U16.pack(packet.max_packet_size)
    if packet.offline_signature is not None:
        if packet.from_destination is None:
            raise PacketError("OFFLINE_SIGNATURE requires FROM_INCLUDED")
        flags |= _OFFLINE_SIGNATURE
        options += packet.offline_signature.to_bytes()
    signature_length = 0
    if signer is not None:
        flags |= _SIGNATURE_INCLUDED
        signature_length = signer.destination.signature_length
        signature_at = len(options)
        options += bytes(signature_length)
    if len(options) > 0xFFFF:
        raise PacketError(f"options of {len(options)} bytes do not fit the 2-byte size")

    head = bytearray(
        _HEADER.pack(
            packet.send_stream_id,
            packet.receive_stream_id,
            packet.sequence_num,
            packet.ack_through,
        )
    )
    head.append(len(packet.nacks))
    for nack in packet.nacks:
        head += _U32.pack(nack)
    head.append(packet.resend_delay)
    head += _U16.pack(flags)
    head += _U16.pack(len(options))
    data = head + options + packet.payload
    if len(data) > MAX_PACKET_BYTES:
        raise PacketError(f"packet of {len(data)} bytes exceeds {MAX_PACKET_BYTES}")
    if signer is not None:
        offset = len(head) + signature_at
        signature = signer.sign(bytes(data))
        if len(signature) != signature_length:
            raise PacketError(
                f"signer returned {len(signature)} bytes, destination implies {signature_length}"
            )
        data[offset : offset + signature_length] = signature
    return bytes(data)


def decode(
    data: bytes,
    *,
    signature_length: int | None = None,
    parse_destination: Callable[[bytes, int], tuple[Any, int]] | None = None,
) -> Packet:
    """Parse one packet. Raises :class:`PacketError` on anything malformed.

    ``signature_length`` is the length implied by the sender's key when the packet carries a
    signature but no FROM (CLOSE, RESET): the connection knows it from the SYN. Without either,
    the signature is taken to be the rest of the options, as the spec allows for stray packets.
    """
    size = len(data)
    if MIN_HEADER_SIZE <= size <= MAX_PACKET_BYTES and type(data) is bytes:
        send_id, receive_id, seq, ack, nack_count, resend_delay, flags, option_size = (
            _PLAIN_HEADER.unpack_from(data)
        )
        if not nack_count and not option_size and not flags & _OPTION_BITS:
            # Fast path: no NACKs, no options (i2pd's and our data packets and plain ACKs).
            # The same Packet as :func:`_decode_general`, without its per-field work.
            return Packet(
                send_id,
                receive_id,
                seq,
                ack,
                (),
                resend_delay,
                _flag(flags),
                None,
                None,
                None,
                None,
                None,
                data[MIN_HEADER_SIZE:],
                data,
            )
    return _decode_general(data, signature_length, parse_destination)


def _decode_general(
    data: bytes,
    signature_length: int | None,
    parse_destination: Callable[[bytes, int], tuple[Any, int]] | None,
) -> Packet:
    """:func:`decode` for every packet shape, with every bound checked."""
    size = len(data)
    if size > MAX_PACKET_BYTES:
        raise PacketError(f"packet of {size} bytes exceeds {MAX_PACKET_BYTES}")
    if size < MIN_HEADER_SIZE:
        raise PacketError(
            f"packet of {size} bytes is shorter than the {MIN_HEADER_SIZE}-byte header"
        )
    send_id, receive_id, seq, ack = _HEADER.unpack_from(data, 0)
    nack_count = data[16]
    pos = 17
    if pos + 4 * nack_count + 5 > size:
        raise PacketError(f"{nack_count} NACKs announced but packet has only {size} bytes")
    nacks = tuple(_U32.unpack_from(data, pos + 4 * i)[0] for i in range(nack_count))
    pos += 4 * nack_count
    resend_delay = data[pos]
    flags = _U16.unpack_from(data, pos + 1)[0]
    option_size = _U16.unpack_from(data, pos + 3)[0]
    pos += 5
    options_end = pos + option_size
    if options_end > size:
        raise PacketError(
            f"option size {option_size} at offset {pos - 2} runs past the end ({size} bytes)"
        )

    packet = Packet(
        send_stream_id=send_id,
        receive_stream_id=receive_id,
        sequence_num=seq,
        ack_through=ack,
        nacks=nacks,
        resend_delay=resend_delay,
        flags=_flag(flags),
        payload=bytes(data[options_end:]),
        raw=bytes(data),
    )

    def take(n: int, what: str) -> bytes:
        nonlocal pos
        if n < 0 or pos + n > options_end:
            raise PacketError(f"option {what} ({n} bytes at offset {pos}) exceeds option data")
        chunk = bytes(data[pos : pos + n])
        pos += n
        return chunk

    if flags & _DELAY_REQUESTED:
        packet.delay_requested = _U16.unpack(take(2, "DELAY_REQUESTED"))[0]
    if flags & _FROM_INCLUDED:
        parser = parse_destination or _default_destination_parser()
        try:
            destination, end = parser(bytes(data[:options_end]), pos)
        except ValueError as exc:  # I2PFormatError is a ValueError
            raise PacketError(f"FROM_INCLUDED destination at offset {pos}: {exc}") from exc
        if end > options_end:
            raise PacketError("FROM_INCLUDED destination runs past the option data")
        packet.from_destination = destination
        pos = end
    if flags & _MAX_PACKET_SIZE_INCLUDED:
        packet.max_packet_size = _U16.unpack(take(2, "MAX_PACKET_SIZE_INCLUDED"))[0]
    if flags & _OFFLINE_SIGNATURE:
        if packet.from_destination is None:
            raise PacketError("OFFLINE_SIGNATURE without FROM_INCLUDED")
        expires = _U32.unpack(take(4, "OFFLINE_SIGNATURE expires"))[0]
        sig_type = _U16.unpack(take(2, "OFFLINE_SIGNATURE type"))[0]
        lengths = SIG_TYPE_LENGTHS.get(sig_type)
        if lengths is None:
            raise PacketError(f"OFFLINE_SIGNATURE with unknown transient sig type {sig_type}")
        key = take(lengths[0], "OFFLINE_SIGNATURE key")
        offline_sig = take(packet.from_destination.signature_length, "OFFLINE_SIGNATURE sig")
        packet.offline_signature = OfflineSignature(expires, sig_type, key, offline_sig)
    if flags & _SIGNATURE_INCLUDED:
        if packet.offline_signature is not None:
            length = SIG_TYPE_LENGTHS[packet.offline_signature.transient_sig_type][1]
        elif packet.from_destination is not None:
            length = packet.from_destination.signature_length
        elif signature_length is not None:
            length = signature_length
        else:
            length = options_end - pos
        packet.signature_offset = pos
        packet.signature = take(length, "SIGNATURE_INCLUDED")
    if pos != options_end and not flags & ~_KNOWN_BITS:
        raise PacketError(f"{options_end - pos} bytes of option data left unparsed at {pos}")
    return packet


def peek_flags(data: bytes) -> Flag:
    """The flags of an encoded packet without decoding it (NO_FLAGS if it is too short)."""
    if len(data) < MIN_HEADER_SIZE:
        return NO_FLAGS
    at = 17 + 4 * data[16] + 1
    if at + 2 > len(data):
        return NO_FLAGS
    return Flag(_U16.unpack_from(data, at)[0])


def signed_bytes(packet: Packet) -> bytes:
    """The bytes a signature covers: the raw packet with the signature span zeroed."""
    if packet.signature is None or packet.signature_offset < 0:
        raise PacketError("packet carries no signature")
    start = packet.signature_offset
    end = start + len(packet.signature)
    return packet.raw[:start] + bytes(end - start) + packet.raw[end:]


def verify_signature(packet: Packet, destination: Destination) -> bool:
    """True when the packet's signature is valid for ``destination`` (the claimed sender).

    With an OFFLINE_SIGNATURE the transient key signs the packet, and the destination must have
    signed the transient key; only Ed25519 transient keys are supported (False otherwise).
    """
    if packet.signature is None or packet.signature_offset < 0:
        return False
    offline = packet.offline_signature
    if offline is None:
        try:
            return bool(destination.verify(signed_bytes(packet), packet.signature))
        except (ValueError, TypeError):
            return False
    if not offline_key_authorised(offline, destination):
        return False
    return verify_with_transient_key(packet, offline)


def offline_key_authorised(offline: OfflineSignature, destination: Destination) -> bool:
    """True when ``destination`` signed this transient key (its OFFLINE_SIGNATURE block)."""
    try:
        return bool(destination.verify(offline.signed_bytes(), offline.signature))
    except (ValueError, TypeError):
        return False


def verify_with_transient_key(packet: Packet, offline: OfflineSignature) -> bool:
    """True when the packet is signed by the (already authorised) transient key of ``offline``.

    An offline-signed peer signs every packet with its transient key but sends the key only in
    its SYN (and pings): its later CLOSE and RESET are checked against the key kept from there.
    """
    if packet.signature is None or packet.signature_offset < 0:
        return False
    if offline.transient_sig_type != 7:
        return False
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(offline.transient_public_key).verify(
            packet.signature, signed_bytes(packet)
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def replay_nacks(destination_hash: bytes) -> tuple[int, ...]:
    """The NACK field of a SYN addressed to ``destination_hash`` (replay protection, 0.9.58)."""
    if len(destination_hash) != 32:
        raise PacketError("a destination hash has 32 bytes")
    return _REPLAY_NACKS.unpack(destination_hash)


def syn_addressed_elsewhere(packet: Packet, our_hash: bytes) -> bool:
    """True when a SYN's replay-protection NACKs name a destination other than ours.

    Only a SYN with exactly eight NACKs carries the target's hash; peers older than 0.9.58 send
    none, so any other count says nothing and is accepted.
    """
    if len(packet.nacks) != REPLAY_NACK_COUNT:
        return False
    return _REPLAY_NACKS.pack(*packet.nacks) != our_hash


def same_destination(a: Destination | None, b: Destination | None) -> bool:
    """Compare destinations by their bytes (hash), tolerant of different object instances."""
    if a is None or b is None:
        return False
    return bool(a.to_bytes() == b.to_bytes())


__all__ = [
    "CHOKE_DELAY_MS",
    "CHOKE_SEND_DELAY_MS",
    "CLOSE_BIT",
    "ECHO_BIT",
    "MAX_NACKS",
    "MAX_PACKET_BYTES",
    "MIN_HEADER_SIZE",
    "NO_ACK_BIT",
    "REPLAY_NACK_COUNT",
    "RESET_BIT",
    "SIGNED_BITS",
    "SIG_TYPE_LENGTHS",
    "SYN_BIT",
    "Flag",
    "OfflineSignature",
    "Packet",
    "PacketError",
    "Signer",
    "decode",
    "encode",
    "offline_key_authorised",
    "peek_flags",
    "replay_nacks",
    "same_destination",
    "signed_bytes",
    "syn_addressed_elsewhere",
    "verify_signature",
    "verify_with_transient_key",
]
