"""Sans-IO SOCKS4, SOCKS4a and SOCKS5 server handshake (RFC 1928, RFC 1929, the SOCKS4/4a memos).

The state machine takes bytes from the client and produces bytes to send back plus events the
server acts on. It never touches a socket, a clock or a resolver: it only says *what* the client
asked for. Deciding whether the target is allowed (``.i2p`` only) is :func:`classify_target`'s
job, and the server answers with :meth:`SocksHandshake.reply_success` or ``reply_failure``.

Every field is bounded (methods, user name, password, user id and host are at most 255 bytes
each), so the buffer never exceeds :data:`MAX_HANDSHAKE_BYTES` before the request is complete;
anything malformed yields :class:`HandshakeFailed` carrying the exact reply to send before
closing.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass

SOCKS4 = 4
SOCKS5 = 5

#: A SOCKS5 request is at most 4 + 1 + 255 + 2 bytes, a SOCKS4a one 8 + 256 + 256; the greeting
#: 2 + 255 and the RFC 1929 sub-negotiation 3 + 255 + 255. Nothing legitimate needs more.
MAX_HANDSHAKE_BYTES = 1024
MAX_FIELD = 255

_METHOD_NO_AUTH = 0x00
_METHOD_USER_PASS = 0x02
_METHOD_NONE_ACCEPTABLE = 0xFF

_CMD_CONNECT = 0x01
_CMD_BIND = 0x02
_CMD_UDP_ASSOCIATE = 0x03

_ATYP_IPV4 = 0x01
_ATYP_DOMAIN = 0x03
_ATYP_IPV6 = 0x04

_SOCKS4_GRANTED = 90
_SOCKS4_REJECTED = 91


class Reply(enum.IntEnum):
    """SOCKS5 reply codes (RFC 1928 §6). SOCKS4 collapses every failure to 91 "rejected"."""

    SUCCEEDED = 0x00
    GENERAL_FAILURE = 0x01
    NOT_ALLOWED = 0x02
    NETWORK_UNREACHABLE = 0x03
    HOST_UNREACHABLE = 0x04
    CONNECTION_REFUSED = 0x05
    TTL_EXPIRED = 0x06
    COMMAND_NOT_SUPPORTED = 0x07
    ADDRESS_TYPE_NOT_SUPPORTED = 0x08


class AddressType(enum.Enum):
    IPV4 = "ipv4"
    IPV6 = "ipv6"
    DOMAIN = "domain"


@dataclass(frozen=True)
class CredentialsReceived:
    """RFC 1929 user name and password; answer with :meth:`SocksHandshake.accept_credentials`."""

    username: str
    password: str


@dataclass(frozen=True)
class ConnectRequested:
    """The client asked to CONNECT to ``host:port``; answer with ``reply_success``/``_failure``."""

    version: int
    host: str
    port: int
    address_type: AddressType
    #: SOCKS4 user id (empty for SOCKS5); never forwarded anywhere.
    user_id: str = ""


@dataclass(frozen=True)
class UdpAssociateRequested:
    """SOCKS5 UDP ASSOCIATE (RFC 1928 §7): open a UDP relay, answer with ``reply_success(bind)``.

    ``host``/``port`` say where the client will send its datagrams *from* (zeros, or a name such
    as PySocks's "0", when it does not know); they are hints, never a target.
    """

    host: str
    port: int
    address_type: AddressType


@dataclass(frozen=True)
class HandshakeFailed:
    """The handshake cannot go on: send ``reply`` (may be empty) and close the connection."""

    reason: str
    reply: bytes


Event = CredentialsReceived | ConnectRequested | UdpAssociateRequested | HandshakeFailed


class _State(enum.Enum):
    VERSION = "version"
    GREETING = "greeting"
    AUTH = "auth"
    AWAIT_AUTH_DECISION = "await-auth-decision"
    REQUEST = "request"
    AWAIT_REPLY = "await-reply"
    DONE = "done"
    FAILED = "failed"


class SocksProtocolError(Exception):
    """Raised when the caller drives the state machine out of order (a bug, not bad input)."""


class SocksHandshake:
    """One client's SOCKS handshake.

    ``receive_data(data)`` returns the events the data completed; ``data_to_send()`` drains the
    bytes produced so far (method selection, auth status, replies). After a success reply,
    ``trailing_data`` holds what the client sent beyond the handshake: the first bytes of the
    stream, which belong in the SYN.
    """

    def __init__(self, *, require_auth: bool = False, prefer_credentials: bool = False) -> None:
        self.require_auth = require_auth
        #: Pick user/password whenever the client offers it, even beside "no authentication"
        #: (as Tor does): the credentials are then an isolation token (``proxy/isolation.py``).
        self.prefer_credentials = prefer_credentials
        self.version: int | None = None
        self.request: ConnectRequested | None = None
        self._buffer = bytearray()
        self._out = bytearray()
        self._state = _State.VERSION

    # -- input ---------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        if self._state in (_State.DONE, _State.FAILED):
            self._buffer += data
            return []
        self._buffer += data
        events: list[Event] = []
        while True:
            event = self._step()
            if event is None:
                break
            events.append(event)
            if isinstance(event, HandshakeFailed):
                self._state = _State.FAILED
                self._out += event.reply
                break
            if self._state in (_State.AWAIT_AUTH_DECISION, _State.AWAIT_REPLY):
                break
        # Waiting for a decision, what follows may be the (pipelined) request and first bytes:
        # bounded again once the next phase parses it.
        waiting = (_State.DONE, _State.FAILED, _State.AWAIT_REPLY, _State.AWAIT_AUTH_DECISION)
        if self._state not in waiting and len(self._buffer) > MAX_HANDSHAKE_BYTES:
            failure = self._fail("handshake larger than any valid one", Reply.GENERAL_FAILURE)
            self._state = _State.FAILED
            self._out += failure.reply
            events.append(failure)
        return events

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    @property
    def trailing_data(self) -> bytes:
        """Bytes received after the request (only meaningful once the request is complete)."""
        return bytes(self._buffer) if self._state in (_State.AWAIT_REPLY, _State.DONE) else b""

    def take_trailing_data(self) -> bytes:
        data = self.trailing_data
        if data:
            self._buffer.clear()
        return data

    @property
    def failed(self) -> bool:
        return self._state is _State.FAILED

    # -- decisions from the server ------------------------------------------------------------

    def accept_credentials(self, ok: bool) -> list[Event]:
        """RFC 1929 status; on success the request phase starts (with any buffered bytes)."""
        if self._state is not _State.AWAIT_AUTH_DECISION:
            raise SocksProtocolError("no credentials pending")
        self._out += bytes([0x01, 0x00 if ok else 0x01])
        if not ok:
            self._state = _State.FAILED
            return [HandshakeFailed("wrong user name or password", b"")]
        self._state = _State.REQUEST
        return self.receive_data(b"")

    def reply_success(self, bind: tuple[str, int] | None = None) -> bytes:
        """Success; the bound address is 0.0.0.0:0 (netcat and others expect IPv4 here) unless
        ``bind`` gives one: the UDP relay's IP address and port for UDP ASSOCIATE."""
        self._finish_request()
        self._state = _State.DONE
        if self.version == SOCKS4:
            return bytes([0, _SOCKS4_GRANTED, 0, 0, 0, 0, 0, 0])
        if bind is None:
            return bytes([SOCKS5, Reply.SUCCEEDED, 0, _ATYP_IPV4, 0, 0, 0, 0, 0, 0])
        address = ipaddress.ip_address(bind[0])
        atyp = _ATYP_IPV4 if address.version == 4 else _ATYP_IPV6
        return (
            bytes([SOCKS5, Reply.SUCCEEDED, 0, atyp]) + address.packed + bind[1].to_bytes(2, "big")
        )

    def reply_failure(self, code: Reply) -> bytes:
        self._finish_request()
        self._state = _State.FAILED
        return _failure_reply(self.version or SOCKS5, code)

    def _finish_request(self) -> None:
        if self._state is not _State.AWAIT_REPLY:
            raise SocksProtocolError("no request pending")

    # -- parsing -------------------------------------------------------------------------------

    def _fail(self, reason: str, code: Reply) -> HandshakeFailed:
        if self.version is None:
            return HandshakeFailed(reason, b"")
        return HandshakeFailed(reason, _failure_reply(self.version, code))

    def _step(self) -> Event | None:
        buf = self._buffer
        if self._state is _State.VERSION:
            if not buf:
                return None
            if buf[0] == SOCKS5:
                self.version = SOCKS5
                self._state = _State.GREETING
            elif buf[0] == SOCKS4:
                self.version = SOCKS4
                if self.require_auth:
                    # SOCKS4 has no passwords; its user id is sent in clear and is not a secret.
                    return self._fail("SOCKS4 cannot authenticate; use SOCKS5", Reply.NOT_ALLOWED)
                self._state = _State.REQUEST
            else:
                return HandshakeFailed(f"not a SOCKS version: first byte {buf[0]:#04x}", b"")
            return self._step()
        if self._state is _State.GREETING:
            return self._parse_greeting()
        if self._state is _State.AUTH:
            return self._parse_auth()
        if self._state is _State.REQUEST:
            if self.version == SOCKS4:
                return self._parse_socks4_request()
            return self._parse_socks5_request()
        return None

    def _parse_greeting(self) -> Event | None:
        buf = self._buffer
        if len(buf) < 2:
            return None
        nmethods = buf[1]
        if nmethods == 0:
            return HandshakeFailed("SOCKS5 greeting offers no method", bytes([5, 0xFF]))
        if len(buf) < 2 + nmethods:
            return None
        methods = set(buf[2 : 2 + nmethods])
        del buf[: 2 + nmethods]
        wanted = _METHOD_USER_PASS if self.require_auth else _METHOD_NO_AUTH
        if self.prefer_credentials and _METHOD_USER_PASS in methods:
            wanted = _METHOD_USER_PASS
        if not self.require_auth and wanted not in methods and _METHOD_USER_PASS in methods:
            # Clients that always send credentials (Tor Browser uses them to isolate streams)
            # still work when the proxy has no users: the server accepts any pair.
            wanted = _METHOD_USER_PASS
        if wanted not in methods:
            reason = (
                "client does not offer user/password authentication"
                if self.require_auth
                else "client offers no method without authentication"
            )
            return HandshakeFailed(reason, bytes([SOCKS5, _METHOD_NONE_ACCEPTABLE]))
        self._out += bytes([SOCKS5, wanted])
        self._state = _State.AUTH if wanted == _METHOD_USER_PASS else _State.REQUEST
        return self._step()

    def _parse_auth(self) -> Event | None:
        buf = self._buffer
        if len(buf) < 2:
            return None
        if buf[0] != 0x01:
            return HandshakeFailed(
                f"bad RFC 1929 sub-negotiation version {buf[0]}", bytes([0x01, 0x01])
            )
        ulen = buf[1]
        if len(buf) < 3 + ulen:
            return None
        plen = buf[2 + ulen]
        if len(buf) < 3 + ulen + plen:
            return None
        username = bytes(buf[2 : 2 + ulen]).decode("utf-8", "replace")
        password = bytes(buf[3 + ulen : 3 + ulen + plen]).decode("utf-8", "replace")
        del buf[: 3 + ulen + plen]
        self._state = _State.AWAIT_AUTH_DECISION
        return CredentialsReceived(username, password)

    def _parse_socks5_request(self) -> Event | None:
        buf = self._buffer
        if len(buf) < 4:
            return None
        if buf[0] != SOCKS5 or buf[2] != 0:
            return self._fail("malformed SOCKS5 request header", Reply.GENERAL_FAILURE)
        command, atyp = buf[1], buf[3]
        if atyp == _ATYP_IPV4:
            end = 4 + 4
        elif atyp == _ATYP_IPV6:
            end = 4 + 16
        elif atyp == _ATYP_DOMAIN:
            if len(buf) < 5:
                return None
            if buf[4] == 0:
                return self._fail("empty domain name", Reply.GENERAL_FAILURE)
            end = 5 + buf[4]
        else:
            return self._fail(f"unknown address type {atyp}", Reply.ADDRESS_TYPE_NOT_SUPPORTED)
        if len(buf) < end + 2:
            return None
        raw = bytes(buf[4:end])
        port = int.from_bytes(buf[end : end + 2], "big")
        del buf[: end + 2]
        if command == _CMD_UDP_ASSOCIATE:
            self._state = _State.AWAIT_REPLY
            return _udp_associate_request(atyp, raw, port)
        if command != _CMD_CONNECT:
            names = {_CMD_BIND: "BIND"}
            what = names.get(command, f"command {command}")
            return self._fail(f"{what} is not supported", Reply.COMMAND_NOT_SUPPORTED)
        if atyp == _ATYP_IPV4:
            host, kind = str(ipaddress.IPv4Address(raw)), AddressType.IPV4
        elif atyp == _ATYP_IPV6:
            host, kind = str(ipaddress.IPv6Address(raw)), AddressType.IPV6
        else:
            try:
                host = raw[1:].decode("ascii")
            except UnicodeDecodeError:
                return self._fail("domain name is not ASCII", Reply.HOST_UNREACHABLE)
            kind = AddressType.DOMAIN
        self._state = _State.AWAIT_REPLY
        self.request = ConnectRequested(SOCKS5, host, port, kind)
        return self.request

    def _parse_socks4_request(self) -> Event | None:
        buf = self._buffer
        if len(buf) < 9:
            return None
        command = buf[1]
        port = int.from_bytes(buf[2:4], "big")
        ip = bytes(buf[4:8])
        user_end = buf.find(0, 8)
        if user_end < 0:
            if len(buf) - 8 > MAX_FIELD:
                return self._fail("SOCKS4 user id too long", Reply.GENERAL_FAILURE)
            return None
        is_4a = ip[:3] == b"\0\0\0" and ip[3] != 0
        end = user_end + 1
        host_raw = b""
        if is_4a:
            host_end = buf.find(0, end)
            if host_end < 0:
                if len(buf) - end > MAX_FIELD:
                    return self._fail("SOCKS4a host name too long", Reply.GENERAL_FAILURE)
                return None
            host_raw = bytes(buf[end:host_end])
            end = host_end + 1
        user_id = bytes(buf[8:user_end]).decode("utf-8", "replace")
        del buf[:end]
        if command != _CMD_CONNECT:
            return self._fail("SOCKS4 BIND is not supported", Reply.COMMAND_NOT_SUPPORTED)
        if is_4a:
            if not host_raw:
                return self._fail("empty SOCKS4a host name", Reply.GENERAL_FAILURE)
            try:
                host = host_raw.decode("ascii")
            except UnicodeDecodeError:
                return self._fail("host name is not ASCII", Reply.HOST_UNREACHABLE)
            kind = AddressType.DOMAIN
        else:
            host, kind = str(ipaddress.IPv4Address(ip)), AddressType.IPV4
        self._state = _State.AWAIT_REPLY
        self.request = ConnectRequested(SOCKS4, host, port, kind, user_id)
        return self.request


def refuse_client(version: int) -> bytes:
    """The whole answer to a client the proxy will not serve at all (too many clients): SOCKS5
    "no acceptable method" to its greeting, SOCKS4 "rejected"."""
    if version == SOCKS5:
        return bytes([SOCKS5, _METHOD_NONE_ACCEPTABLE])
    return _failure_reply(SOCKS4, Reply.GENERAL_FAILURE)


def _udp_associate_request(atyp: int, raw: bytes, port: int) -> UdpAssociateRequested:
    if atyp == _ATYP_IPV4:
        return UdpAssociateRequested(str(ipaddress.IPv4Address(raw)), port, AddressType.IPV4)
    if atyp == _ATYP_IPV6:
        return UdpAssociateRequested(str(ipaddress.IPv6Address(raw)), port, AddressType.IPV6)
    return UdpAssociateRequested(raw[1:].decode("ascii", "replace"), port, AddressType.DOMAIN)


def _failure_reply(version: int, code: Reply) -> bytes:
    if version == SOCKS4:
        return bytes([0, _SOCKS4_REJECTED, 0, 0, 0, 0, 0, 0])
    return bytes([SOCKS5, code, 0, _ATYP_IPV4, 0, 0, 0, 0, 0, 0])
