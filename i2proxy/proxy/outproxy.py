"""Outproxies: clearnet hosts reached through HTTP or SOCKS5 proxies that are I2P destinations.

Sans-IO: the configured list (:func:`parse_outproxy`), which outproxy serves a host
(:class:`OutproxyChooser`: sticky per host, failover), and the two handshakes' codecs — HTTP
``CONNECT`` (ours) and SOCKS5 (python-socks' sans-IO codec, with the host name sent to the
outproxy, never resolved here). ``outproxy_dial.py`` runs them over I2P streams.

An outproxy is only ever named by an ``.i2p`` or ``.b32.i2p`` host: it is reached over I2P like
any eepsite (from a destination of its own), never directly, and nothing here looks up DNS.
"""

from __future__ import annotations

import enum
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from python_socks._protocols import socks5 as _socks5  # sans-IO codec, stable since 2.4.0
from python_socks._protocols.errors import ReplyError

from i2proxy.dialer.base import DialError
from i2proxy.proxy.routing import HostKind, classify_host

#: How many outproxies may be configured.
MAX_OUTPROXIES = 16
#: Hosts remembered for stickiness (least recently used forgotten first).
MAX_STICKY_HOSTS = 1024
#: An outproxy that failed is tried after the others for this long (unless nothing else works).
RETRY_AFTER = 60.0
#: Bound on the outproxy's answer to CONNECT.
MAX_CONNECT_RESPONSE = 16 * 1024
DEFAULT_PORTS = {"http": 80, "socks5": 1080}


class OutproxyKind(enum.Enum):
    HTTP = "http"
    SOCKS5 = "socks5"


@dataclass(frozen=True)
class Outproxy:
    kind: OutproxyKind
    #: an ``.i2p`` name or ``.b32.i2p`` address (normalised)
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.kind.value}://{self.host}:{self.port}"


_DNS_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?\.)*[a-z0-9-]{1,63}$")


def is_clearnet_name(host: str) -> bool:
    """A host name an outproxy can be asked for (letters, digits, hyphens, dots; no IP)."""
    return bool(_DNS_NAME.match(host)) and classify_host(host)[0] is HostKind.CLEARNET


def parse_outproxy(url: str) -> Outproxy:
    """``http://name.i2p``, ``http://<b32>.b32.i2p:8080``, ``socks5://<b32>.b32.i2p:1080``.

    ValueError says what is wrong: another scheme, a host that is not an I2P name (an IP or a
    clearnet name would have to be reached directly), credentials, a path.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme == "socks5h":  # curl's spelling for "the proxy resolves": always so here
        scheme = "socks5"
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"{url!r}: the scheme must be http:// or socks5://")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{url!r}: credentials in an outproxy URL are not supported")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{url!r}: an outproxy URL has no path")
    kind, host = classify_host(parts.hostname or "")
    if kind not in (HostKind.B32, HostKind.NAME):
        raise ValueError(
            f"{url!r}: an outproxy must be an I2P destination (name.i2p or a .b32.i2p address);"
            " it is reached over I2P only"
        )
    return Outproxy(OutproxyKind(scheme), host, port or DEFAULT_PORTS[scheme])


# -- errors ------------------------------------------------------------------------------------


class OutproxyRefused(DialError):
    """The outproxy answered the handshake with a refusal of *us* (or with garbage): the next
    outproxy may do better."""


class OutproxyTargetFailed(DialError):
    """The outproxy works but could not reach the target; ``socks_code`` is the SOCKS5 reply
    (3 network, 4 host unreachable, 5 refused, 6 TTL expired) or the closest one for HTTP."""

    def __init__(self, message: str, socks_code: int) -> None:
        super().__init__(message)
        self.socks_code = socks_code


class NoOutproxyAnswered(DialError):
    """Every configured outproxy failed; ``timed_out`` when the last one did not answer."""

    def __init__(self, message: str, *, timed_out: bool) -> None:
        super().__init__(message)
        self.timed_out = timed_out


# -- which outproxy serves a host --------------------------------------------------------------


@dataclass
class OutproxyChooser:
    """The order in which outproxies are tried for a host.

    - Sticky: a host keeps the outproxy that last served it (so a site sees one exit, and a
      login is not broken by a changing address), as long as that outproxy works.
    - Otherwise the configured order, with outproxies that failed within ``retry_after``
      seconds moved to the end (oldest failure first): a dead first outproxy costs one failed
      dial per ``retry_after``, not one per request.
    """

    outproxies: list[Outproxy]
    retry_after: float = RETRY_AFTER
    max_sticky: int = MAX_STICKY_HOSTS
    _sticky: OrderedDict[str, Outproxy] = field(default_factory=OrderedDict)
    _failed_at: dict[Outproxy, float] = field(default_factory=dict)

    def order(self, host: str, now: float) -> list[Outproxy]:
        def cooling(o: Outproxy) -> bool:
            return now - self._failed_at.get(o, -self.retry_after) < self.retry_after

        fresh = [o for o in self.outproxies if not cooling(o)]
        tired = sorted((o for o in self.outproxies if cooling(o)), key=self._failed_at.__getitem__)
        ordered = fresh + tired
        sticky = self._sticky.get(host)
        if sticky is not None and sticky in fresh:
            ordered.remove(sticky)
            ordered.insert(0, sticky)
        return ordered

    def succeeded(self, host: str, outproxy: Outproxy) -> None:
        self._failed_at.pop(outproxy, None)
        self._sticky[host] = outproxy
        self._sticky.move_to_end(host)
        while len(self._sticky) > self.max_sticky:
            self._sticky.popitem(last=False)

    def failed(self, host: str, outproxy: Outproxy, now: float) -> None:
        self._failed_at[outproxy] = now
        if self._sticky.get(host) == outproxy:
            del self._sticky[host]

    def sticky_hosts(self) -> int:
        return len(self._sticky)


# -- HTTP CONNECT --------------------------------------------------------------------------------


def connect_request(host: str, port: int) -> bytes:
    """The CONNECT request to an HTTP outproxy: the target and nothing else about the client."""
    authority = f"{host}:{port}"
    return f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode("ascii")


def check_connect_response(head: bytes) -> None:
    """Accept a 2xx answer to CONNECT; raise what a non-2xx means (``head`` ends at CRLF CRLF).

    502/504 are the outproxy's word that the target failed; anything else (403, 407, 405, 5xx,
    not HTTP at all) is a refusal of us, worth trying the next outproxy for.
    """
    line = head.split(b"\r\n", 1)[0]
    parts = line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise OutproxyRefused("the outproxy did not answer CONNECT with HTTP")
    status = int(parts[1])
    if 200 <= status < 300:
        return
    if status in (502, 504):
        code = 4 if status == 502 else 6  # host unreachable / TTL expired
        raise OutproxyTargetFailed(f"the outproxy could not reach the target ({status})", code)
    raise OutproxyRefused(f"the outproxy refused CONNECT ({status})")


def convert_request_form(
    data: bytes, have: OutproxyKind, want: OutproxyKind, host: str, port: int
) -> bytes:
    """Re-form a request written for one outproxy kind for the other: absolute-form
    (``GET http://host/p HTTP/1.1``, to an HTTP outproxy) ↔ origin-form (``GET /p HTTP/1.1``,
    through a SOCKS5 tunnel). Only the request line changes."""
    if have is want:
        return data
    line, sep, rest = data.partition(b"\r\n")
    method, target, version = line.split(b" ", 2)
    if want is OutproxyKind.SOCKS5:
        parts = urlsplit(target.decode("latin-1"))
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        target = path.encode("latin-1")
    else:
        authority = host if port == 80 else f"{host}:{port}"
        target = b"http://" + authority.encode("ascii") + target
    return b" ".join((method, target, version)) + sep + rest


def request_target(kind: OutproxyKind, host: str, port: int, path: str) -> str:
    """The request target for ``kind``: absolute URI for an HTTP outproxy, else the path."""
    if kind is OutproxyKind.SOCKS5:
        return path
    authority = host if port == 80 else f"{host}:{port}"
    return f"http://{authority}{path}"


# -- SOCKS5 (python-socks' codec) ----------------------------------------------------------------

#: SOCKS5 replies about the target (the outproxy itself works); the others refuse us.
TARGET_REPLIES = frozenset({3, 4, 5, 6})


class Socks5Handshake:
    """The client side of a SOCKS5 CONNECT by name, framed for a byte stream.

    ``greeting()`` → bytes to send; feed the 2-byte method reply to ``method_reply``, which
    returns the CONNECT request; feed the reply as ``reply_size`` asks for it to
    ``connect_reply``. Errors are :class:`OutproxyRefused` / :class:`OutproxyTargetFailed`.
    """

    METHOD_REPLY_SIZE = _socks5.AuthMethodReply.SIZE

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._conn = _socks5.Connection()

    def greeting(self) -> bytes:
        return self._conn.send(_socks5.AuthMethodsRequest(username=None, password=None))  # type: ignore[arg-type]

    def method_reply(self, data: bytes) -> bytes:
        try:
            self._conn.receive(data)
        except ReplyError as exc:
            raise OutproxyRefused(f"SOCKS5 outproxy: {exc}") from None
        # A domain name goes as ATYP 3: the outproxy resolves it, we never do.
        return self._conn.send(_socks5.ConnectRequest(host=self.host, port=self.port))

    @staticmethod
    def reply_size(head: bytes) -> int:
        """Total size of the CONNECT reply, from its first 5 bytes (an error ends after 2)."""
        if len(head) >= 2 and head[1] != 0:
            return 2
        atyp = head[3]
        if atyp == 1:
            return 4 + 4 + 2
        if atyp == 4:
            return 4 + 16 + 2
        if atyp == 3:
            return 4 + 1 + head[4] + 2
        raise OutproxyRefused(f"SOCKS5 outproxy: unknown address type {atyp}")

    def connect_reply(self, data: bytes) -> None:
        if len(data) == 2 and data[0] == 5 and data[1] in TARGET_REPLIES:
            raise OutproxyTargetFailed(f"SOCKS5 outproxy: reply {data[1]}", data[1])
        if len(data) == 2:
            raise OutproxyRefused(f"SOCKS5 outproxy refused the request (reply {data[1]})")
        try:
            self._conn.receive(data)
        except ReplyError as exc:
            raise OutproxyRefused(f"SOCKS5 outproxy: {exc}") from None


__all__ = [
    "MAX_OUTPROXIES",
    "NoOutproxyAnswered",
    "Outproxy",
    "OutproxyChooser",
    "OutproxyKind",
    "OutproxyRefused",
    "OutproxyTargetFailed",
    "Socks5Handshake",
    "check_connect_response",
    "connect_request",
    "convert_request_form",
    "is_clearnet_name",
    "parse_outproxy",
    "request_target",
]
