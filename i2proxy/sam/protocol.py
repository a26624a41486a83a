"""SAM v3 line codec, sans-IO: builds command lines, splits and parses reply lines.

SAM is a line protocol: ``TOPIC KIND KEY=VALUE ...\\n`` in ASCII (UTF-8 since 3.2). Values that
hold spaces are double-quoted with ``\\"`` and ``\\\\`` escapes (SAM 3.2). i2pd's parser knows no
quotes at all and splits on every space, so the builder quotes only when a value needs it and the
callers never send such values to i2pd in practice. Replies from i2pd do quote ``MESSAGE="..."``.

Nothing here touches a socket: bytes in, lines/replies out, so every rule is testable on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

#: i2pd reads a command into an 8192-byte buffer; a longer line is cut and misparsed.
MAX_COMMAND_LENGTH = 8192
#: Longest reply line accepted. A DEST REPLY with PUB and PRIV of post-quantum-free keys is
#: ~2 KiB; 16 KiB leaves room for offline signatures and long MESSAGE texts.
MAX_REPLY_LENGTH = 16 * 1024

#: Characters that force a value into quotes (i2pd would split on them).
_NEEDS_QUOTES = frozenset(' \t"\\')


class SAMProtocolError(ValueError):
    """The router sent something that is not SAM, or a line longer than the bound."""


class LineTooLong(SAMProtocolError):
    """A reply line exceeded :data:`MAX_REPLY_LENGTH` without a newline."""


# --------------------------------------------------------------------------- RESULT errors


class SAMError(Exception):
    """The router answered with ``RESULT=`` other than ``OK``.

    ``result`` is the RESULT code, ``message`` the optional ``MESSAGE=`` text, ``reply`` the
    parsed reply it came from.
    """

    code: str = ""

    def __init__(self, result: str, message: str | None = None, reply: Reply | None = None):
        self.result = result
        self.message = message
        self.reply = reply
        text = f"SAM {result}"
        if reply is not None:
            text = f"SAM {reply.topic} {reply.kind} RESULT={result}"
        if message:
            text += f": {message}"
        super().__init__(text)


class CantReachPeer(SAMError):
    """The peer's LeaseSet was not found or the peer did not answer."""

    code = "CANT_REACH_PEER"


class PeerNotFound(SAMError):
    """The peer could not be found (Java I2P naming/stream lookups)."""

    code = "PEER_NOT_FOUND"


class InvalidKey(SAMError):
    """A destination, private key or name is malformed or unknown to the address book."""

    code = "INVALID_KEY"


class InvalidId(SAMError):
    """The session ID is unknown to the router (session gone) or not acceptable."""

    code = "INVALID_ID"


class SAMTimeout(SAMError):
    """The router gave up waiting (connect or lookup timeout)."""

    code = "TIMEOUT"


class DuplicatedId(SAMError):
    """A session with this ID already exists on the router."""

    code = "DUPLICATED_ID"


class DuplicatedDest(SAMError):
    """A session with this destination already exists on the router."""

    code = "DUPLICATED_DEST"


class I2PError(SAMError):
    """A generic router-side failure; ``message`` says more."""

    code = "I2P_ERROR"


class KeyNotFound(SAMError):
    """NAMING LOOKUP: the name is not in any address book."""

    code = "KEY_NOT_FOUND"


class NoVersion(SAMError):
    """HELLO: the router speaks none of the versions we asked for."""

    code = "NOVERSION"


class AlreadyAccepting(SAMError):
    """STREAM ACCEPT/FORWARD: the session already accepts (SAM 3.2)."""

    code = "ALREADY_ACCEPTING"


class LeaseSetNotFound(SAMError):
    """Java I2P: the peer's LeaseSet was not found."""

    code = "LEASESET_NOT_FOUND"


_ERRORS_BY_RESULT: dict[str, type[SAMError]] = {
    cls.code: cls
    for cls in (
        CantReachPeer,
        PeerNotFound,
        InvalidKey,
        InvalidId,
        SAMTimeout,
        DuplicatedId,
        DuplicatedDest,
        I2PError,
        KeyNotFound,
        NoVersion,
        AlreadyAccepting,
        LeaseSetNotFound,
    )
}


def error_for(reply: Reply) -> SAMError:
    """The exception for a reply whose RESULT is not OK (unknown codes → plain SAMError)."""
    result = reply.result or "MISSING_RESULT"
    cls = _ERRORS_BY_RESULT.get(result, SAMError)
    return cls(result, reply.message, reply)


# --------------------------------------------------------------------------- building commands


def quote_value(value: str) -> str:
    """A value as it goes on the wire: bare when safe, else quoted with SAM 3.2 escapes."""
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError(f"SAM value may not contain newlines or NUL: {value!r}")
    if value and not (_NEEDS_QUOTES & set(value)):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _check_key(key: str) -> None:
    if not key or any(c in key for c in ' \t\r\n="\\\0'):
        raise ValueError(f"invalid SAM key {key!r}")


def build_command(words: Iterable[str], params: Mapping[str, str] | None = None) -> bytes:
    """``WORD WORD KEY=VALUE ...\\n`` as bytes, bounded by :data:`MAX_COMMAND_LENGTH`."""
    parts: list[str] = []
    for word in words:
        _check_key(word)
        parts.append(word)
    for key, value in (params or {}).items():
        _check_key(key)
        parts.append(f"{key}={quote_value(str(value))}")
    line = (" ".join(parts) + "\n").encode("utf-8")
    if len(line) > MAX_COMMAND_LENGTH:
        raise ValueError(f"SAM command is {len(line)} bytes, limit {MAX_COMMAND_LENGTH}")
    return line


def hello(min_version: str = "3.1", max_version: str = "3.3") -> bytes:
    return build_command(("HELLO", "VERSION"), {"MIN": min_version, "MAX": max_version})


def session_create(
    session_id: str,
    destination: str = "TRANSIENT",
    *,
    style: str = "STREAM",
    signature_type: str | None = None,
    options: Mapping[str, str] | None = None,
) -> bytes:
    """SESSION CREATE; ``destination`` is ``TRANSIENT`` or a SAM private-key base64.

    ``options`` are passed through as ``key=value`` (tunnel lengths, ``i2cp.*``,
    ``i2p.streaming.*``): both routers read them from the same command line.
    """
    params: dict[str, str] = {"STYLE": style, "ID": session_id, "DESTINATION": destination}
    if signature_type is not None:
        params["SIGNATURE_TYPE"] = signature_type
    for key, value in (options or {}).items():
        if key.upper() in params:
            raise ValueError(f"option {key!r} collides with a SESSION CREATE parameter")
        params[key] = value
    return build_command(("SESSION", "CREATE"), params)


def stream_connect(
    session_id: str,
    destination: str,
    *,
    to_port: int | None = None,
    from_port: int | None = None,
    silent: bool = False,
) -> bytes:
    """STREAM CONNECT; ports only when non-None (SAM 3.2+, older routers ignore them)."""
    params = {"ID": session_id, "DESTINATION": destination, "SILENT": "true" if silent else "false"}
    if from_port is not None:
        params["FROM_PORT"] = str(_check_port(from_port))
    if to_port is not None:
        params["TO_PORT"] = str(_check_port(to_port))
    return build_command(("STREAM", "CONNECT"), params)


def naming_lookup(name: str) -> bytes:
    return build_command(("NAMING", "LOOKUP"), {"NAME": name})


def dest_generate(signature_type: str | None = "EdDSA_SHA512_Ed25519") -> bytes:
    params = {} if signature_type is None else {"SIGNATURE_TYPE": signature_type}
    return build_command(("DEST", "GENERATE"), params)


def ping(text: str = "") -> bytes:
    """``PING text``. Always with a separating space: i2pd closes the socket on a bare PING."""
    return _one_word("PING", text)


def pong(text: str = "") -> bytes:
    return _one_word("PONG", text)


def _one_word(word: str, text: str) -> bytes:
    if any(c in text for c in "\r\n\0"):
        raise ValueError(f"{word} text may not contain newlines or NUL")
    line = f"{word} {text}\n".encode()
    if len(line) > MAX_COMMAND_LENGTH:
        raise ValueError(f"{word} line too long")
    return line


def _check_port(port: int) -> int:
    if not 0 <= port <= 65535:
        raise ValueError(f"I2P port out of range: {port}")
    return port


# --------------------------------------------------------------------------- parsing replies


@dataclass(frozen=True)
class Reply:
    """One reply line: ``topic`` (HELLO, SESSION, STREAM, NAMING, DEST, PING, PONG), ``kind``
    (REPLY/STATUS, empty for PING/PONG), the ``params`` and, for PING/PONG, the free ``text``."""

    topic: str
    kind: str
    params: Mapping[str, str] = field(default_factory=dict)
    text: str = ""

    @property
    def result(self) -> str | None:
        return self.params.get("RESULT")

    @property
    def message(self) -> str | None:
        return self.params.get("MESSAGE")

    @property
    def ok(self) -> bool:
        """RESULT=OK, or a reply kind that carries no RESULT on success (DEST REPLY, PONG)."""
        result = self.result
        return result == "OK" or (result is None and self.topic in ("DEST", "PING", "PONG"))

    def raise_for_result(self) -> Reply:
        """Return self when OK, else raise the SAMError subclass for the RESULT code."""
        if not self.ok:
            raise error_for(self)
        return self


def split_params(text: str) -> dict[str, str]:
    """``K=V K2="v w" K3`` → dict. Quoted values may hold spaces and ``\\"``/``\\\\`` escapes;
    a key without ``=`` has the empty value. Duplicate keys: the last one wins (as in i2pd)."""
    params: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            break
        start = i
        while i < n and text[i] not in " \t=":
            i += 1
        key = text[start:i]
        if not key:
            raise SAMProtocolError(f"empty key at column {start} in {text!r}")
        if i >= n or text[i] != "=":
            params[key] = ""
            continue
        i += 1  # '='
        if i < n and text[i] == '"':
            i += 1
            chars: list[str] = []
            while True:
                if i >= n:
                    raise SAMProtocolError(f"unterminated quote in value of {key}")
                c = text[i]
                if c == "\\" and i + 1 < n:
                    chars.append(text[i + 1])
                    i += 2
                    continue
                if c == '"':
                    i += 1
                    break
                chars.append(c)
                i += 1
            if i < n and text[i] not in " \t":
                raise SAMProtocolError(f"garbage after closing quote of {key}")
            params[key] = "".join(chars)
        else:
            start = i
            while i < n and text[i] not in " \t":
                i += 1
            params[key] = text[start:i]
    return params


def parse_reply(line: bytes | str) -> Reply:
    """Parse one reply line (with or without its ``\\n``/``\\r\\n``)."""
    if isinstance(line, bytes):
        if len(line) > MAX_REPLY_LENGTH:
            raise LineTooLong(f"SAM reply line of {len(line)} bytes")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SAMProtocolError(f"SAM reply is not UTF-8: {line[:80]!r}") from exc
    else:
        text = line
    text = text.rstrip("\n").rstrip("\r")
    if "\n" in text or "\0" in text:
        raise SAMProtocolError(f"SAM reply holds a newline or NUL: {text[:80]!r}")
    head, _, rest = text.partition(" ")
    if head in ("PING", "PONG"):
        return Reply(head, "", {}, rest)
    if head not in ("HELLO", "SESSION", "STREAM", "NAMING", "DEST", "DATAGRAM", "RAW"):
        raise SAMProtocolError(f"not a SAM reply: {text[:80]!r}")
    kind, _, rest = rest.partition(" ")
    if not kind or "=" in kind:
        raise SAMProtocolError(f"SAM reply without a kind: {text[:80]!r}")
    return Reply(head, kind, split_params(rest))


class LineReader:
    """Splits a byte stream into lines, never holding more than ``max_length`` bytes of a line."""

    def __init__(self, max_length: int = MAX_REPLY_LENGTH) -> None:
        self.max_length = max_length
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Append ``data``; return the complete lines (without ``\\n``) now available."""
        self._buffer += data
        lines: list[bytes] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                break
            if end > self.max_length:
                raise LineTooLong(f"SAM line of {end} bytes, limit {self.max_length}")
            lines.append(bytes(self._buffer[:end]))
            del self._buffer[: end + 1]
        if len(self._buffer) > self.max_length:
            raise LineTooLong(f"SAM line over {self.max_length} bytes without a newline")
        return lines

    def take_rest(self) -> bytes:
        """Bytes after the last complete line (e.g. stream data after STREAM STATUS)."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest


def parse_version(text: str) -> tuple[int, int]:
    """``"3.1"`` → ``(3, 1)``; raises SAMProtocolError on anything else."""
    major, dot, minor = text.partition(".")
    if not dot:
        minor = "0"
    if not (major.isdigit() and minor.isdigit()) or len(major) > 3 or len(minor) > 3:
        raise SAMProtocolError(f"bad SAM version {text!r}")
    return int(major), int(minor)
