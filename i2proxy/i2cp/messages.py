"""I2CP message codec (sans-IO): every message i2proxy sends or the router may send.

Wire format: 4-byte big-endian body length ‖ 1-byte type ‖ body. The client opens the TCP
connection with the protocol byte ``0x2a``. Destinations travel as raw bytes here (the codec only
needs their length); the session layer turns them into ``i2proxy.i2p`` objects. Every decoder
checks lengths before it reads and raises ``I2CPProtocolError`` saying which field was short.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar, NamedTuple

from i2proxy.i2cp.errors import I2CPProtocolError, MessageTooLong

#: Sent by the client as the very first byte of the connection.
PROTOCOL_BYTE = b"\x2a"
#: The I2CP version we announce in GetDate (LeaseSet2 and HostLookup need ≥ 0.9.39/0.9.11).
CLIENT_VERSION = "0.9.62"
#: Largest body i2pd accepts or sends (``I2CP_MAX_MESSAGE_LENGTH``); we enforce it both ways.
MAX_BODY_LENGTH = 65535
HEADER = struct.Struct(">IB")
#: The session id that means "no session" (HostLookup before CreateSession).
NO_SESSION = 0xFFFF
#: A destination is 387 bytes plus its certificate payload; bound it well above any real one.
MIN_DESTINATION_LENGTH = 387
MAX_DESTINATION_LENGTH = 387 + 1024
LEASE_LENGTH = 44  # gateway hash (32) ‖ tunnel id (4) ‖ end date (8, ms)

#: Signature lengths by signing key type (for walking structures whose length they decide).
SIGNATURE_LENGTHS = {0: 40, 1: 64, 2: 96, 3: 132, 4: 256, 5: 384, 6: 512, 7: 64, 8: 64, 11: 64}


class MessageType(IntEnum):
    CREATE_SESSION = 1
    RECONFIGURE_SESSION = 2
    DESTROY_SESSION = 3
    SEND_MESSAGE = 5
    RECEIVE_MESSAGE_BEGIN = 6
    RECEIVE_MESSAGE_END = 7
    GET_BANDWIDTH_LIMITS = 8
    SESSION_STATUS = 20
    MESSAGE_STATUS = 22
    BANDWIDTH_LIMITS = 23
    DISCONNECT = 30
    MESSAGE_PAYLOAD = 31
    GET_DATE = 32
    SET_DATE = 33
    DEST_LOOKUP = 34
    DEST_REPLY = 35
    SEND_MESSAGE_EXPIRES = 36
    REQUEST_VARIABLE_LEASE_SET = 37
    HOST_LOOKUP = 38
    HOST_REPLY = 39
    CREATE_LEASE_SET2 = 41


class SessionStatusCode(IntEnum):
    DESTROYED = 0
    CREATED = 1
    UPDATED = 2
    INVALID = 3
    REFUSED = 4


class MessageStatusCode(IntEnum):
    AVAILABLE = 0
    ACCEPTED = 1
    BEST_EFFORT_SUCCESS = 2
    BEST_EFFORT_FAILURE = 3
    GUARANTEED_SUCCESS = 4
    GUARANTEED_FAILURE = 5
    LOCAL_SUCCESS = 6
    LOCAL_FAILURE = 7
    ROUTER_FAILURE = 8
    NETWORK_FAILURE = 9
    BAD_SESSION = 10
    BAD_MESSAGE = 11
    BAD_OPTIONS = 12
    OVERFLOW_FAILURE = 13
    MESSAGE_EXPIRED = 14
    BAD_LOCAL_LEASESET = 15
    NO_LOCAL_TUNNELS = 16
    UNSUPPORTED_ENCRYPTION = 17
    BAD_DESTINATION = 18
    BAD_LEASESET = 19
    EXPIRED_LEASESET = 20
    NO_LEASESET = 21
    META_LEASESET = 22
    LOOPBACK = 23

    @property
    def is_failure(self) -> bool:
        """Everything but "available", "accepted" and the success codes ends the message."""
        return self not in _NON_FAILURES

    @property
    def is_hard_failure(self) -> bool:
        """Resending the same message cannot help: the destination, its LeaseSet, our session
        or the message itself is bad. Java's streaming fails a connection on these when they
        answer its SYN (``PacketQueue.messageStatus``). Not hard: 3/5 (one try failed), 16 (no
        tunnels yet) and 21 (no LeaseSet: the lookup may just have been slow)."""
        return self in _HARD_FAILURES


_NON_FAILURES = {
    MessageStatusCode.AVAILABLE,
    MessageStatusCode.ACCEPTED,
    MessageStatusCode.BEST_EFFORT_SUCCESS,
    MessageStatusCode.GUARANTEED_SUCCESS,
    MessageStatusCode.LOCAL_SUCCESS,
}


_HARD_FAILURES = frozenset(
    {
        MessageStatusCode.LOCAL_FAILURE,
        MessageStatusCode.ROUTER_FAILURE,
        MessageStatusCode.NETWORK_FAILURE,
        MessageStatusCode.BAD_SESSION,
        MessageStatusCode.BAD_MESSAGE,
        MessageStatusCode.BAD_OPTIONS,
        MessageStatusCode.OVERFLOW_FAILURE,
        MessageStatusCode.MESSAGE_EXPIRED,
        MessageStatusCode.BAD_LOCAL_LEASESET,
        MessageStatusCode.UNSUPPORTED_ENCRYPTION,
        MessageStatusCode.BAD_DESTINATION,
        MessageStatusCode.BAD_LEASESET,
        MessageStatusCode.EXPIRED_LEASESET,
        MessageStatusCode.META_LEASESET,
        MessageStatusCode.LOOPBACK,
    }
)


class HostLookupType(IntEnum):
    HASH = 0
    NAME = 1


# --------------------------------------------------------------------------------------------
# Primitive readers and writers


class _Reader:
    """A bounds-checked cursor over one message body; errors name the message and field."""

    __slots__ = ("data", "offset", "what")

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.offset = 0
        self.what = what

    def take(self, n: int, field_name: str) -> bytes:
        end = self.offset + n
        if n < 0 or end > len(self.data):
            raise I2CPProtocolError(
                f"{self.what}: {field_name} needs {n} bytes at offset {self.offset}, "
                f"body has {len(self.data)}"
            )
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def u8(self, field_name: str) -> int:
        return self.take(1, field_name)[0]

    def u16(self, field_name: str) -> int:
        return int.from_bytes(self.take(2, field_name), "big")

    def u32(self, field_name: str) -> int:
        return int.from_bytes(self.take(4, field_name), "big")

    def u64(self, field_name: str) -> int:
        return int.from_bytes(self.take(8, field_name), "big")

    def string(self, field_name: str) -> str:
        length = self.u8(f"{field_name} length")
        raw = self.take(length, field_name)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise I2CPProtocolError(f"{self.what}: {field_name} is not UTF-8") from exc

    def mapping(self, field_name: str) -> dict[str, str]:
        size = self.u16(f"{field_name} size")
        return decode_mapping(self.take(size, field_name), f"{self.what} {field_name}")

    def destination(self, field_name: str = "destination") -> bytes:
        start = self.offset
        self.take(MIN_DESTINATION_LENGTH - 2, field_name)
        cert_length = self.u16(f"{field_name} certificate length")
        self.take(cert_length, f"{field_name} certificate")
        return self.data[start : self.offset]

    def rest(self) -> bytes:
        chunk = self.data[self.offset :]
        self.offset = len(self.data)
        return chunk

    def at_end(self) -> bool:
        return self.offset == len(self.data)

    def expect_end(self) -> None:
        if self.offset != len(self.data):
            raise I2CPProtocolError(
                f"{self.what}: {len(self.data) - self.offset} unexpected bytes after the last field"
            )


def encode_string(value: str) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) > 255:
        raise ValueError(f"I2P string longer than 255 bytes: {value[:40]!r}…")
    return bytes([len(raw)]) + raw


def encode_mapping(options: Mapping[str, str]) -> bytes:
    """Mapping: 2-byte size ‖ ``key=value;`` pairs as I2P strings, sorted by key (signed!)."""
    body = b"".join(
        encode_string(key) + b"=" + encode_string(str(options[key])) + b";"
        for key in sorted(options)
    )
    if len(body) > 0xFFFF:
        raise ValueError("mapping longer than 65535 bytes")
    return len(body).to_bytes(2, "big") + body


def decode_mapping(data: bytes, what: str = "mapping") -> dict[str, str]:
    """The pairs of a Mapping body (without its size prefix)."""
    reader = _Reader(data, what)
    result: dict[str, str] = {}
    while not reader.at_end():
        key = reader.string("key")
        if reader.take(1, "'='") != b"=":
            raise I2CPProtocolError(f"{what}: expected '=' after key {key!r}")
        value = reader.string("value")
        if reader.take(1, "';'") != b";":
            raise I2CPProtocolError(f"{what}: expected ';' after value of {key!r}")
        result[key] = value
    return result


def destination_length(data: bytes, offset: int = 0) -> int:
    """Length of the Destination that starts at ``offset`` (387 + certificate payload)."""
    if len(data) < offset + MIN_DESTINATION_LENGTH:
        raise I2CPProtocolError(f"destination: needs {MIN_DESTINATION_LENGTH} bytes")
    cert_length = int.from_bytes(data[offset + 385 : offset + 387], "big")
    total = MIN_DESTINATION_LENGTH + cert_length
    if total > MAX_DESTINATION_LENGTH or len(data) < offset + total:
        raise I2CPProtocolError(f"destination: certificate length {cert_length} out of bounds")
    return total


def signature_length_of(destination: bytes) -> int:
    """Signature length of a destination, from its KEY certificate (type 5) or DSA (none)."""
    cert_type = destination[384]
    if cert_type == 5 and len(destination) >= 389:
        sig_type = int.from_bytes(destination[387:389], "big")
        if sig_type not in SIGNATURE_LENGTHS:
            raise I2CPProtocolError(f"destination: unknown signature type {sig_type}")
        return SIGNATURE_LENGTHS[sig_type]
    return SIGNATURE_LENGTHS[0]


# --------------------------------------------------------------------------------------------
# Messages


class Message:
    """Base of every message: ``encode_body()`` and ``decode_body(bytes)``."""

    TYPE: ClassVar[int]

    def encode_body(self) -> bytes:
        raise NotImplementedError

    @classmethod
    def decode_body(cls, body: bytes) -> Message:
        raise NotImplementedError


_REGISTRY: dict[int, type[Message]] = {}


def _register(cls: type[Message]) -> type[Message]:
    _REGISTRY[cls.TYPE] = cls
    return cls


@_register
@dataclass(frozen=True, slots=True)
class GetDate(Message):
    """Client → router, first message: our I2CP version (and optional authentication)."""

    TYPE: ClassVar[int] = MessageType.GET_DATE
    version: str = CLIENT_VERSION
    authentication: dict[str, str] | None = None

    def encode_body(self) -> bytes:
        body = encode_string(self.version)
        if self.authentication is not None:
            body += encode_mapping(self.authentication)
        return body

    @classmethod
    def decode_body(cls, body: bytes) -> GetDate:
        reader = _Reader(body, "GetDate")
        version = reader.string("version")
        auth = None if reader.at_end() else reader.mapping("authentication")
        reader.expect_end()
        return cls(version, auth)


@_register
@dataclass(frozen=True, slots=True)
class SetDate(Message):
    """Router → client: its clock (ms) and the version string (i2pd echoes ours)."""

    TYPE: ClassVar[int] = MessageType.SET_DATE
    date_ms: int
    version: str | None = None

    def encode_body(self) -> bytes:
        body = self.date_ms.to_bytes(8, "big")
        if self.version is not None:
            body += encode_string(self.version)
        return body

    @classmethod
    def decode_body(cls, body: bytes) -> SetDate:
        reader = _Reader(body, "SetDate")
        date_ms = reader.u64("date")
        version = None if reader.at_end() else reader.string("version")
        reader.expect_end()
        return cls(date_ms, version)


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Destination ‖ Mapping ‖ Date ‖ Signature over the three as sent (CreateSession body)."""

    destination: bytes
    options: dict[str, str]
    date_ms: int
    signature: bytes

    @staticmethod
    def signed_bytes(destination: bytes, options: Mapping[str, str], date_ms: int) -> bytes:
        return destination + encode_mapping(options) + date_ms.to_bytes(8, "big")

    @classmethod
    def build(
        cls,
        destination: bytes,
        options: Mapping[str, str],
        date_ms: int,
        sign: Callable[[bytes], bytes],
    ) -> SessionConfig:
        data = cls.signed_bytes(destination, options, date_ms)
        return cls(destination, dict(options), date_ms, sign(data))

    def encode(self) -> bytes:
        return self.signed_bytes(self.destination, self.options, self.date_ms) + self.signature

    @classmethod
    def read(cls, reader: _Reader) -> SessionConfig:
        destination = reader.destination()
        options = reader.mapping("options")
        date_ms = reader.u64("date")
        signature = reader.take(signature_length_of(destination), "signature")
        return cls(destination, options, date_ms, signature)


@_register
@dataclass(frozen=True, slots=True)
class CreateSession(Message):
    TYPE: ClassVar[int] = MessageType.CREATE_SESSION
    config: SessionConfig

    def encode_body(self) -> bytes:
        return self.config.encode()

    @classmethod
    def decode_body(cls, body: bytes) -> CreateSession:
        reader = _Reader(body, "CreateSession")
        config = SessionConfig.read(reader)
        reader.expect_end()
        return cls(config)


@_register
@dataclass(frozen=True, slots=True)
class ReconfigureSession(Message):
    """Client → router: new options, signed again (inbound.*/outbound.* take effect)."""

    TYPE: ClassVar[int] = MessageType.RECONFIGURE_SESSION
    session_id: int
    config: SessionConfig

    def encode_body(self) -> bytes:
        return self.session_id.to_bytes(2, "big") + self.config.encode()

    @classmethod
    def decode_body(cls, body: bytes) -> ReconfigureSession:
        reader = _Reader(body, "ReconfigureSession")
        session_id = reader.u16("session id")
        config = SessionConfig.read(reader)
        reader.expect_end()
        return cls(session_id, config)


@dataclass(frozen=True, slots=True)
class _SessionOnly(Message):
    session_id: int

    def encode_body(self) -> bytes:
        return self.session_id.to_bytes(2, "big")

    @classmethod
    def decode_body(cls, body: bytes) -> _SessionOnly:
        reader = _Reader(body, cls.__name__)
        session_id = reader.u16("session id")
        reader.expect_end()
        return cls(session_id)


@_register
@dataclass(frozen=True, slots=True)
class DestroySession(_SessionOnly):
    TYPE: ClassVar[int] = MessageType.DESTROY_SESSION


@_register
@dataclass(frozen=True, slots=True)
class SessionStatus(Message):
    TYPE: ClassVar[int] = MessageType.SESSION_STATUS
    session_id: int
    status: int

    def encode_body(self) -> bytes:
        return self.session_id.to_bytes(2, "big") + bytes([self.status])

    @classmethod
    def decode_body(cls, body: bytes) -> SessionStatus:
        reader = _Reader(body, "SessionStatus")
        session_id = reader.u16("session id")
        status = reader.u8("status")
        reader.expect_end()
        return cls(session_id, status)


@dataclass(frozen=True, slots=True)
class RequestedLease:
    """One inbound tunnel the router asks us to sign into our LeaseSet (end date in ms)."""

    gateway: bytes
    tunnel_id: int
    end_date_ms: int

    def encode(self) -> bytes:
        tail = self.tunnel_id.to_bytes(4, "big") + self.end_date_ms.to_bytes(8, "big")
        return self.gateway + tail


@_register
@dataclass(frozen=True, slots=True)
class RequestVariableLeaseSet(Message):
    """Router → client: sign these leases within 10 s (i2pd closes the session otherwise)."""

    TYPE: ClassVar[int] = MessageType.REQUEST_VARIABLE_LEASE_SET
    session_id: int
    leases: tuple[RequestedLease, ...]

    def encode_body(self) -> bytes:
        return (
            self.session_id.to_bytes(2, "big")
            + bytes([len(self.leases)])
            + b"".join(lease.encode() for lease in self.leases)
        )

    @classmethod
    def decode_body(cls, body: bytes) -> RequestVariableLeaseSet:
        reader = _Reader(body, "RequestVariableLeaseSet")
        session_id = reader.u16("session id")
        count = reader.u8("lease count")
        leases = tuple(
            RequestedLease(
                reader.take(32, f"lease {i} gateway"),
                reader.u32(f"lease {i} tunnel id"),
                reader.u64(f"lease {i} end date"),
            )
            for i in range(count)
        )
        reader.expect_end()
        return cls(session_id, leases)


@_register
@dataclass(frozen=True, slots=True)
class CreateLeaseSet2(Message):
    """Client → router: store type ‖ signed LeaseSet2 ‖ the private keys for its public keys."""

    TYPE: ClassVar[int] = MessageType.CREATE_LEASE_SET2
    session_id: int
    lease_set: bytes
    #: (crypto type, private key bytes), in the order of the LeaseSet's public keys.
    private_keys: tuple[tuple[int, bytes], ...]
    store_type: int = 3

    def encode_body(self) -> bytes:
        parts = [
            self.session_id.to_bytes(2, "big"),
            bytes([self.store_type]),
            self.lease_set,
            bytes([len(self.private_keys)]),
        ]
        for key_type, key in self.private_keys:
            parts.append(key_type.to_bytes(2, "big") + len(key).to_bytes(2, "big") + key)
        return b"".join(parts)

    @classmethod
    def decode_body(cls, body: bytes) -> CreateLeaseSet2:
        reader = _Reader(body, "CreateLeaseSet2")
        session_id = reader.u16("session id")
        store_type = reader.u8("store type")
        if store_type != 3:
            raise I2CPProtocolError(f"CreateLeaseSet2: store type {store_type} not supported")
        lease_set = _walk_lease_set2(reader)
        count = reader.u8("private key count")
        keys = []
        for i in range(count):
            key_type = reader.u16(f"private key {i} type")
            length = reader.u16(f"private key {i} length")
            keys.append((key_type, reader.take(length, f"private key {i}")))
        reader.expect_end()
        return cls(session_id, lease_set, tuple(keys), store_type)


def _walk_lease_set2(reader: _Reader) -> bytes:
    """Consume one unencrypted LeaseSet2 (no offline signature) and return its bytes."""
    start = reader.offset
    destination = reader.destination("lease set destination")
    reader.take(4 + 2, "published/expires")
    flags = reader.u16("flags")
    if flags & 0x0001:
        raise I2CPProtocolError("CreateLeaseSet2: offline-signed lease sets not supported")
    reader.mapping("properties")
    for i in range(reader.u8("key count")):
        reader.u16(f"key {i} type")
        reader.take(reader.u16(f"key {i} length"), f"key {i}")
    reader.take(reader.u8("lease count") * 40, "leases")
    reader.take(signature_length_of(destination), "signature")
    return reader.data[start : reader.offset]


@dataclass(frozen=True, slots=True)
class _SendBase(Message):
    session_id: int
    destination: bytes
    payload: bytes
    nonce: int = 0

    def _encode_common(self) -> bytes:
        return b"".join(
            (
                self.session_id.to_bytes(2, "big"),
                self.destination,
                len(self.payload).to_bytes(4, "big"),
                self.payload,
                self.nonce.to_bytes(4, "big"),
            )
        )

    @staticmethod
    def _read_common(reader: _Reader) -> tuple[int, bytes, bytes, int]:
        session_id = reader.u16("session id")
        destination = reader.destination()
        payload = reader.take(reader.u32("payload length"), "payload")
        nonce = reader.u32("nonce")
        return session_id, destination, payload, nonce


@_register
@dataclass(frozen=True, slots=True)
class SendMessage(_SendBase):
    """Client → router: deliver a gzip frame to ``destination``. Nonce 0: no status back."""

    TYPE: ClassVar[int] = MessageType.SEND_MESSAGE

    def encode_body(self) -> bytes:
        return self._encode_common()

    @classmethod
    def decode_body(cls, body: bytes) -> SendMessage:
        reader = _Reader(body, "SendMessage")
        fields = cls._read_common(reader)
        reader.expect_end()
        return cls(*fields)


#: The frame header and session id of a SendMessageExpires; its nonce, flags and 6-byte date.
_SEND_HEAD = struct.Struct(">IBH")
_SEND_TAIL = struct.Struct(">IHHI")
_U32 = struct.Struct(">I")

#: SendMessageExpires flag: do not bundle our LeaseSet with this message.
FLAG_NO_LEASESET_BUNDLE = 0x0100


@_register
@dataclass(frozen=True, slots=True)
class SendMessageExpires(_SendBase):
    """SendMessage plus 2 bytes of flags and a 6-byte expiration date (ms; i2pd ignores both)."""

    TYPE: ClassVar[int] = MessageType.SEND_MESSAGE_EXPIRES
    flags: int = 0
    expiration_ms: int = 0

    def encode_body(self) -> bytes:
        if not 0 <= self.expiration_ms < 1 << 48:
            raise ValueError("expiration does not fit 6 bytes")
        return (
            self._encode_common()
            + self.flags.to_bytes(2, "big")
            + self.expiration_ms.to_bytes(6, "big")
        )

    @staticmethod
    def encode_message(
        session_id: int,
        destination: bytes,
        payload: bytes,
        nonce: int = 0,
        flags: int = 0,
        expiration_ms: int = 0,
    ) -> bytes:
        """``encode_message(SendMessageExpires(...))`` without building the message object:
        the same bytes, for the data path (every packet and ACK we send is one)."""
        size = 2 + len(destination) + 4 + len(payload) + 4 + 8
        if size > MAX_BODY_LENGTH or not 0 <= expiration_ms < 1 << 48:
            message = SendMessageExpires(
                session_id, destination, payload, nonce, flags=flags, expiration_ms=expiration_ms
            )
            return encode_message(message)  # raises the same errors as the general path
        return b"".join(
            (
                _SEND_HEAD.pack(size, MessageType.SEND_MESSAGE_EXPIRES, session_id),
                destination,
                _U32.pack(len(payload)),
                payload,
                _SEND_TAIL.pack(nonce, flags, expiration_ms >> 32, expiration_ms & 0xFFFFFFFF),
            )
        )

    @classmethod
    def decode_body(cls, body: bytes) -> SendMessageExpires:
        reader = _Reader(body, "SendMessageExpires")
        fields = cls._read_common(reader)
        flags = reader.u16("flags")
        expiration = int.from_bytes(reader.take(6, "expiration"), "big")
        reader.expect_end()
        return cls(*fields, flags=flags, expiration_ms=expiration)


#: MessagePayload's fixed fields: session id, message id, payload length.
_MESSAGE_PAYLOAD_HEAD = struct.Struct(">HII")


@_register
@dataclass(frozen=True, slots=True)
class MessagePayload(Message):
    """Router → client: an incoming message (a gzip frame, see ``payload.py``)."""

    TYPE: ClassVar[int] = MessageType.MESSAGE_PAYLOAD
    session_id: int
    message_id: int
    payload: bytes

    def encode_body(self) -> bytes:
        return b"".join(
            (
                self.session_id.to_bytes(2, "big"),
                self.message_id.to_bytes(4, "big"),
                len(self.payload).to_bytes(4, "big"),
                self.payload,
            )
        )

    @staticmethod
    def fields(body: bytes) -> tuple[int, int, bytes] | None:
        """(session id, message id, payload) of a well-formed body, else None (then
        :meth:`decode_body` says what is wrong). One struct read and one slice: every
        incoming message is one of these."""
        if len(body) >= _MESSAGE_PAYLOAD_HEAD.size:
            session_id, message_id, length = _MESSAGE_PAYLOAD_HEAD.unpack_from(body)
            if length == len(body) - _MESSAGE_PAYLOAD_HEAD.size:
                return session_id, message_id, body[_MESSAGE_PAYLOAD_HEAD.size :]
        return None

    @classmethod
    def decode_body(cls, body: bytes) -> MessagePayload:
        fields = cls.fields(body)
        if fields is not None:
            return cls(*fields)
        reader = _Reader(body, "MessagePayload")
        session_id = reader.u16("session id")
        message_id = reader.u32("message id")
        payload = reader.take(reader.u32("payload length"), "payload")
        reader.expect_end()
        return cls(session_id, message_id, payload)


@_register
@dataclass(frozen=True, slots=True)
class MessageStatus(Message):
    TYPE: ClassVar[int] = MessageType.MESSAGE_STATUS
    session_id: int
    message_id: int
    status: int
    size: int
    nonce: int

    def encode_body(self) -> bytes:
        return struct.pack(
            ">HIBII", self.session_id, self.message_id, self.status, self.size, self.nonce
        )

    @classmethod
    def decode_body(cls, body: bytes) -> MessageStatus:
        if len(body) != 15:
            raise I2CPProtocolError(f"MessageStatus: body is {len(body)} bytes, expected 15")
        return cls(*struct.unpack(">HIBII", body))


@_register
@dataclass(frozen=True, slots=True)
class HostLookup(Message):
    """Client → router: find a destination by hash (type 0) or by host name (type 1)."""

    TYPE: ClassVar[int] = MessageType.HOST_LOOKUP
    session_id: int
    request_id: int
    timeout_ms: int
    hash: bytes | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if (self.hash is None) == (self.name is None):
            raise ValueError("HostLookup needs exactly one of hash and name")
        if self.hash is not None and len(self.hash) != 32:
            raise ValueError("HostLookup hash must be 32 bytes")

    @property
    def lookup_type(self) -> HostLookupType:
        return HostLookupType.HASH if self.hash is not None else HostLookupType.NAME

    def encode_body(self) -> bytes:
        head = struct.pack(
            ">HIIB", self.session_id, self.request_id, self.timeout_ms, self.lookup_type
        )
        if self.hash is not None:
            return head + self.hash
        assert self.name is not None
        return head + encode_string(self.name)

    @classmethod
    def decode_body(cls, body: bytes) -> HostLookup:
        reader = _Reader(body, "HostLookup")
        session_id = reader.u16("session id")
        request_id = reader.u32("request id")
        timeout_ms = reader.u32("timeout")
        kind = reader.u8("request type")
        if kind == HostLookupType.HASH:
            result = cls(session_id, request_id, timeout_ms, hash=reader.take(32, "hash"))
        elif kind == HostLookupType.NAME:
            result = cls(session_id, request_id, timeout_ms, name=reader.string("name"))
        else:
            raise I2CPProtocolError(f"HostLookup: request type {kind} not supported")
        reader.expect_end()
        return result


@_register
@dataclass(frozen=True, slots=True)
class HostReply(Message):
    """Router → client: result code 0 and the Destination, or a failure code (1…255)."""

    TYPE: ClassVar[int] = MessageType.HOST_REPLY
    session_id: int
    request_id: int
    result_code: int
    destination: bytes | None = None

    def encode_body(self) -> bytes:
        body = struct.pack(">HIB", self.session_id, self.request_id, self.result_code)
        return body + (self.destination or b"")

    @classmethod
    def decode_body(cls, body: bytes) -> HostReply:
        reader = _Reader(body, "HostReply")
        session_id = reader.u16("session id")
        request_id = reader.u32("request id")
        code = reader.u8("result code")
        destination = reader.destination() if code == 0 else None
        # Lookup types 2-4 (not sent by us) append an options Mapping; nothing else may follow.
        if code == 0 and not reader.at_end():
            reader.mapping("options")
        reader.expect_end()
        return cls(session_id, request_id, code, destination)


@_register
@dataclass(frozen=True, slots=True)
class DestLookup(Message):
    """Legacy lookup by hash (prefer HostLookup); the reply is a Destination or the hash."""

    TYPE: ClassVar[int] = MessageType.DEST_LOOKUP
    hash: bytes

    def encode_body(self) -> bytes:
        return self.hash

    @classmethod
    def decode_body(cls, body: bytes) -> DestLookup:
        if len(body) != 32:
            raise I2CPProtocolError(f"DestLookup: body is {len(body)} bytes, expected 32")
        return cls(body)


@_register
@dataclass(frozen=True, slots=True)
class DestReply(Message):
    TYPE: ClassVar[int] = MessageType.DEST_REPLY
    destination: bytes | None = None
    #: Set instead of ``destination`` when the lookup failed (the router echoes the hash).
    failed_hash: bytes | None = None

    def encode_body(self) -> bytes:
        return self.destination or self.failed_hash or b""

    @classmethod
    def decode_body(cls, body: bytes) -> DestReply:
        if len(body) in (0, 32):
            return cls(failed_hash=body or None)
        reader = _Reader(body, "DestReply")
        destination = reader.destination()
        reader.expect_end()
        return cls(destination=destination)


@dataclass(frozen=True, slots=True)
class _Empty(Message):
    def encode_body(self) -> bytes:
        return b""

    @classmethod
    def decode_body(cls, body: bytes) -> _Empty:
        # Java routers may send padding here; nothing in it has meaning.
        return cls()


@_register
@dataclass(frozen=True, slots=True)
class GetBandwidthLimits(_Empty):
    TYPE: ClassVar[int] = MessageType.GET_BANDWIDTH_LIMITS


@_register
@dataclass(frozen=True, slots=True)
class BandwidthLimits(Message):
    """Router → client: 16 integers; i2pd fills the first two (inbound, outbound, KB/s)."""

    TYPE: ClassVar[int] = MessageType.BANDWIDTH_LIMITS
    limits: tuple[int, ...] = field(default=(0,) * 16)

    @property
    def client_inbound(self) -> int:
        return self.limits[0]

    @property
    def client_outbound(self) -> int:
        return self.limits[1]

    def encode_body(self) -> bytes:
        if len(self.limits) != 16:
            raise ValueError("BandwidthLimits carries exactly 16 integers")
        return struct.pack(">16I", *self.limits)

    @classmethod
    def decode_body(cls, body: bytes) -> BandwidthLimits:
        if len(body) != 64:
            raise I2CPProtocolError(f"BandwidthLimits: body is {len(body)} bytes, expected 64")
        return cls(struct.unpack(">16I", body))


@_register
@dataclass(frozen=True, slots=True)
class Disconnect(Message):
    TYPE: ClassVar[int] = MessageType.DISCONNECT
    reason: str = ""

    def encode_body(self) -> bytes:
        return encode_string(self.reason)

    @classmethod
    def decode_body(cls, body: bytes) -> Disconnect:
        reader = _Reader(body, "Disconnect")
        reason = reader.string("reason") if body else ""
        return cls(reason)


@_register
@dataclass(frozen=True, slots=True)
class ReceiveMessageBegin(Message):
    """Client → router (not used in fast-receive mode, which i2pd always uses)."""

    TYPE: ClassVar[int] = MessageType.RECEIVE_MESSAGE_BEGIN
    session_id: int
    message_id: int

    def encode_body(self) -> bytes:
        return struct.pack(">HI", self.session_id, self.message_id)

    @classmethod
    def decode_body(cls, body: bytes) -> ReceiveMessageBegin:
        if len(body) != 6:
            raise I2CPProtocolError(f"{cls.__name__}: body is {len(body)} bytes, expected 6")
        return cls(*struct.unpack(">HI", body))


@_register
@dataclass(frozen=True, slots=True)
class ReceiveMessageEnd(ReceiveMessageBegin):
    TYPE: ClassVar[int] = MessageType.RECEIVE_MESSAGE_END


@dataclass(frozen=True, slots=True)
class UnknownMessage(Message):
    """A type we do not know: kept whole so the session can log and skip it."""

    type: int
    body: bytes

    def encode_body(self) -> bytes:
        return self.body


# --------------------------------------------------------------------------------------------
# Framing


def encode_message(message: Message) -> bytes:
    """Header and body, ready for the socket. Raises ``MessageTooLong`` above 65535 bytes."""
    body = message.encode_body()
    if len(body) > MAX_BODY_LENGTH:
        raise MessageTooLong(f"{type(message).__name__}: body of {len(body)} bytes exceeds 65535")
    kind = message.type if isinstance(message, UnknownMessage) else message.TYPE
    return HEADER.pack(len(body), kind) + body


def decode_message(kind: int, body: bytes) -> Message:
    cls = _REGISTRY.get(kind)
    if cls is None:
        return UnknownMessage(kind, body)
    return cls.decode_body(body)


class Frame(NamedTuple):
    """One complete message off the wire, not yet decoded (decoding errors stay per-message).

    A named tuple, not a frozen dataclass: one is made per incoming message."""

    type: int
    body: bytes

    def decode(self) -> Message:
        return decode_message(self.type, self.body)


class FrameDecoder:
    """Turns arbitrary byte chunks from the socket into frames, holding at most one message.

    A length above ``max_body_length`` raises ``MessageTooLong`` at once (before the body is
    buffered); the connection is then unusable and must be closed. A malformed body is the
    caller's to reject when it decodes the frame: the framing itself stays intact.
    """

    def __init__(self, max_body_length: int = MAX_BODY_LENGTH) -> None:
        self._buffer = bytearray()
        self._max = max_body_length

    def feed(self, data: bytes) -> list[Frame]:
        """Add ``data`` and return every frame now complete, in order.

        One read from the router holds up to ~140 messages: they are cut out by offset and
        the consumed bytes dropped once at the end, not after each frame.
        """
        buffer = self._buffer
        buffer += data
        frames: list[Frame] = []
        size = len(buffer)
        offset = 0
        header = HEADER.size
        unpack = HEADER.unpack_from
        while size - offset >= header:
            length, kind = unpack(buffer, offset)
            if length > self._max:
                del buffer[:offset]
                raise MessageTooLong(
                    f"message type {kind} announces {length} bytes, limit {self._max}"
                )
            end = offset + header + length
            if end > size:
                break
            frames.append(Frame(kind, bytes(buffer[offset + header : end])))
            offset = end
        if offset:
            del buffer[:offset]
        return frames

    @property
    def buffered(self) -> int:
        return len(self._buffer)
