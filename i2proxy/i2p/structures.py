"""Small common structures: String, Mapping (I2P "Properties") and Date.

Mapping wire form: total size (2) ‖ entries, each ``String(key) '=' String(value) ';'`` where a
String is a 1-byte length and UTF-8 bytes.  The spec requires keys sorted in signed structures,
so :meth:`Mapping.from_dict` sorts; a parsed Mapping keeps the peer's order so that re-serialising
reproduces the signed bytes exactly.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass

from i2proxy.i2p.errors import I2PFormatError, need

MAX_STRING = 255
MAX_MAPPING = 65535


def encode_string(text: str) -> bytes:
    """Encode an I2P String (1-byte length, UTF-8)."""
    raw = text.encode("utf-8")
    if len(raw) > MAX_STRING:
        raise I2PFormatError(f"string: {len(raw)} bytes exceeds {MAX_STRING}")
    return bytes([len(raw)]) + raw


def parse_string(data: bytes, offset: int = 0) -> tuple[str, int]:
    """Parse an I2P String at ``offset``; return it and the offset after it."""
    need(data, offset, 1, "string length")
    length = data[offset]
    need(data, offset + 1, length, f"string ({length} bytes)")
    try:
        text = bytes(data[offset + 1 : offset + 1 + length]).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise I2PFormatError(f"string: invalid UTF-8 ({exc.reason})", offset=offset + 1) from None
    return text, offset + 1 + length


@dataclass(frozen=True)
class Mapping(AbcMapping[str, str]):
    """An immutable I2P Mapping that remembers wire order (sorted when built from a dict)."""

    items_: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_dict(cls, options: AbcMapping[str, str]) -> Mapping:
        """Build a sorted Mapping from ``options``."""
        for k, v in options.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise I2PFormatError(f"mapping: key and value must be str, got {k!r}={v!r}")
        return cls(tuple(sorted(options.items())))

    @classmethod
    def parse(cls, data: bytes, offset: int = 0) -> tuple[Mapping, int]:
        """Parse a Mapping at ``offset``; duplicate keys or missing ``=``/``;`` are errors."""
        need(data, offset, 2, "mapping size")
        (size,) = struct.unpack_from(">H", data, offset)
        start = offset + 2
        end = start + size
        need(data, start, size, f"mapping body ({size} bytes)")
        pos = start
        entries: list[tuple[str, str]] = []
        seen: set[str] = set()
        while pos < end:
            key, pos = _parse_bounded_string(data, pos, end, "mapping key")
            _expect(data, pos, end, ord("="), "'=' after mapping key")
            value, pos = _parse_bounded_string(data, pos + 1, end, "mapping value")
            _expect(data, pos, end, ord(";"), "';' after mapping value")
            pos += 1
            if key in seen:
                raise I2PFormatError(f"mapping: duplicate key {key!r}", offset=pos)
            seen.add(key)
            entries.append((key, value))
        return cls(tuple(entries)), end

    def to_bytes(self) -> bytes:
        """Serialise in stored order (sorted unless parsed from a peer)."""
        body = b"".join(encode_string(k) + b"=" + encode_string(v) + b";" for k, v in self.items_)
        if len(body) > MAX_MAPPING:
            raise I2PFormatError(f"mapping: {len(body)} bytes exceeds {MAX_MAPPING}")
        return struct.pack(">H", len(body)) + body

    def __getitem__(self, key: str) -> str:
        for k, v in self.items_:
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self.items_)

    def __len__(self) -> int:
        return len(self.items_)


def encode_mapping(options: AbcMapping[str, str]) -> bytes:
    """Serialise ``options`` as a sorted Mapping."""
    return Mapping.from_dict(options).to_bytes()


def parse_mapping(data: bytes, offset: int = 0) -> tuple[dict[str, str], int]:
    """Parse a Mapping into a plain dict; return it and the offset after it."""
    mapping, end = Mapping.parse(data, offset)
    return dict(mapping.items_), end


def _parse_bounded_string(data: bytes, pos: int, end: int, what: str) -> tuple[str, int]:
    if pos >= end:
        raise I2PFormatError(f"{what}: mapping ends early", offset=pos)
    if pos + 1 + data[pos] > end:
        raise I2PFormatError(f"{what}: length {data[pos]} runs past the mapping", offset=pos)
    try:
        return parse_string(data, pos)
    except I2PFormatError as exc:
        raise exc.within(what) from None


def _expect(data: bytes, pos: int, end: int, byte: int, what: str) -> None:
    if pos >= end or data[pos] != byte:
        raise I2PFormatError(f"mapping: expected {what}", offset=pos)


@dataclass(frozen=True, order=True)
class Date:
    """An I2P Date: milliseconds since the epoch in 8 bytes; 0 means "unknown"."""

    millis: int

    def __post_init__(self) -> None:
        if not 0 <= self.millis < 1 << 64:
            raise I2PFormatError(f"date: {self.millis} does not fit in 8 bytes")

    @classmethod
    def from_seconds(cls, seconds: float) -> Date:
        """From a Unix time in seconds (e.g. the caller's ``now``)."""
        return cls(int(seconds * 1000))

    @classmethod
    def parse(cls, data: bytes, offset: int = 0) -> tuple[Date, int]:
        """Parse 8 bytes at ``offset``."""
        need(data, offset, 8, "date")
        (millis,) = struct.unpack_from(">Q", data, offset)
        return cls(millis), offset + 8

    def to_bytes(self) -> bytes:
        """8-byte big-endian milliseconds."""
        return struct.pack(">Q", self.millis)

    @property
    def seconds(self) -> float:
        """Unix time in seconds."""
        return self.millis / 1000
