"""The I2CP payload frame: a gzip member whose header carries ports and protocol.

``1f 8b 08 00`` ‖ source port (2, big-endian, in MTIME) ‖ destination port (2) ‖ XFL ‖ OS byte =
protocol ‖ deflate data ‖ CRC32 ‖ ISIZE. We send one *stored* deflate block by default: it costs
no CPU and streaming data (already compressed or encrypted by the application) rarely shrinks.
We accept both stored and compressed frames, as every router sends both.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

from i2proxy.i2cp.errors import PayloadFormatError

GZIP_MAGIC = b"\x1f\x8b\x08"
#: Largest inflated payload we accept: an I2CP message body cannot carry more, and the bound
#: stops a small compressed frame from inflating into memory exhaustion.
MAX_PAYLOAD_SIZE = 65536
#: Largest data one stored block (and therefore one frame we build) can hold.
MAX_STORED_SIZE = 0xFFFF
_TRAILER = struct.Struct("<II")
#: A frame without optional header fields whose body is one final stored block: the gzip
#: header (10), the block header (5), the data, CRC32 and ISIZE (8).
_STORED_PREFIX = GZIP_MAGIC + b"\x00"
_STORED_OVERHEAD = 10 + 5 + 8
#: MTIME as the ports (big-endian), XFL, OS as the protocol; a stored block's LEN and NLEN.
_PORTS = struct.Struct(">HHBB")
_STORED_LENGTHS = struct.Struct("<HH")
_FHCRC, _FEXTRA, _FNAME, _FCOMMENT = 0x02, 0x04, 0x08, 0x10


class Protocol(IntEnum):
    STREAMING = 6
    REPLIABLE_DATAGRAM = 17
    RAW_DATAGRAM = 18
    DATAGRAM2 = 19  # proposal 163, since 0.9.66 (i2pd 2.45.1 does not know it)
    DATAGRAM3 = 20


@dataclass(frozen=True, slots=True)
class Payload:
    protocol: int
    src_port: int
    dst_port: int
    data: bytes


def encode_payload(
    data: bytes, *, protocol: int, src_port: int = 0, dst_port: int = 0, compress: bool = False
) -> bytes:
    """Frame ``data`` for SendMessage. ``compress=True`` deflates (worth it only for text)."""
    if not (0 <= src_port <= 0xFFFF and 0 <= dst_port <= 0xFFFF and 0 <= protocol <= 0xFF):
        raise ValueError("port or protocol out of range")
    if compress:
        deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
        body = deflater.compress(data) + deflater.flush()
        xfl = 0
    else:
        if len(data) > MAX_STORED_SIZE:
            raise ValueError(f"payload of {len(data)} bytes exceeds one stored block")
        length = len(data)
        body = b"\x01" + struct.pack("<HH", length, length ^ 0xFFFF) + data
        xfl = 2
    header = GZIP_MAGIC + b"\x00" + struct.pack(">HHBB", src_port, dst_port, xfl, protocol)
    return header + body + _TRAILER.pack(zlib.crc32(data), len(data) & 0xFFFFFFFF)


def decode_payload(frame: bytes, *, max_size: int = MAX_PAYLOAD_SIZE) -> Payload:
    """Unframe a MessagePayload's payload; raises ``PayloadFormatError`` on anything wrong."""
    size = len(frame)
    if size >= _STORED_OVERHEAD and frame[:4] == _STORED_PREFIX and frame[10] == 0x01:
        # Fast path: no optional header fields and one final stored block spanning the body
        # (what i2pd and we send): one struct read, one copy, one CRC. Anything else, and
        # every error, takes the general parse.
        length, nlength = _STORED_LENGTHS.unpack_from(frame, 11)
        if length ^ 0xFFFF == nlength and size == _STORED_OVERHEAD + length and length <= max_size:
            end = size - 8
            data = bytes(frame[15:end])
            crc, isize = _TRAILER.unpack_from(frame, end)
            if isize == length and crc == zlib.crc32(data):
                src_port, dst_port, _xfl, protocol = _PORTS.unpack_from(frame, 4)
                return Payload(protocol, src_port, dst_port, data)
    return _decode_payload_general(frame, max_size)


def _decode_payload_general(frame: bytes, max_size: int) -> Payload:
    """:func:`decode_payload` for every frame: optional header fields, deflate, all checks."""
    if len(frame) < 18 or frame[:3] != GZIP_MAGIC:
        raise PayloadFormatError("payload is not a gzip frame")
    flags = frame[3]
    src_port, dst_port, _xfl, protocol = _PORTS.unpack_from(frame, 4)
    offset = 10
    if flags:
        offset = _skip_optional_header_fields(frame, flags)
    if len(frame) < offset + 8:
        raise PayloadFormatError("gzip frame truncated")
    body = memoryview(frame)[offset:-8]
    data = _stored_block(body)
    if data is None:
        inflater = zlib.decompressobj(-15)
        try:
            data = inflater.decompress(body, max_size + 1)
        except zlib.error as exc:
            raise PayloadFormatError(f"bad deflate data: {exc}") from exc
        if len(data) > max_size:
            raise PayloadFormatError(f"payload inflates beyond {max_size} bytes")
        if not inflater.eof or inflater.unused_data:
            raise PayloadFormatError("deflate data truncated or followed by garbage")
    elif len(data) > max_size:
        raise PayloadFormatError(f"payload of {len(data)} bytes exceeds {max_size}")
    crc, size = _TRAILER.unpack_from(frame, len(frame) - 8)
    if size != len(data) & 0xFFFFFFFF or crc != zlib.crc32(data):
        raise PayloadFormatError("gzip CRC32 or ISIZE does not match the data")
    return Payload(protocol, src_port, dst_port, bytes(data))


def _stored_block(body: memoryview) -> bytes | None:
    """Fast path: one final stored block spanning the body exactly (what i2pd and we send)."""
    if len(body) < 5 or body[0] != 0x01:
        return None
    length, nlength = struct.unpack_from("<HH", body, 1)
    if length ^ 0xFFFF != nlength or len(body) != 5 + length:
        return None
    return bytes(body[5:])


def _skip_optional_header_fields(frame: bytes, flags: int) -> int:
    offset = 10
    try:
        if flags & _FEXTRA:
            offset += 2 + int.from_bytes(frame[offset : offset + 2], "little")
        for flag in (_FNAME, _FCOMMENT):
            if flags & flag:
                offset = frame.index(b"\x00", offset) + 1
        if flags & _FHCRC:
            offset += 2
    except ValueError as exc:
        raise PayloadFormatError("gzip header field not terminated") from exc
    if offset > len(frame):
        raise PayloadFormatError("gzip header longer than the frame")
    return offset
