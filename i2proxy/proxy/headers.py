"""Privacy filtering of HTTP headers, both directions. Pure functions over (name, value) lists.

Names are compared case-insensitively (i2pd's filter is a case-sensitive prefix match, so a
lower-case ``via:`` slips through it). What leaves for the eepsite is: the method and path, a
``Host`` that is the b32 name (the name in *our* address book is never revealed), a fixed
User-Agent, and only the headers a site needs to serve the request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from i2proxy.config import DEFAULT_USER_AGENT
from i2proxy.proxy.routing import normalize_host

__all__ = ["DEFAULT_USER_AGENT", "filter_request_headers", "filter_response_headers"]

Headers = list[tuple[bytes, bytes]]

#: Request headers that may reach the eepsite (an allow-list: anything else is dropped, so a
#: new or misspelled identifying header -- ``X-Forwarded``, ``X-Remote-Addr``, ``X-Host`` ... --
#: never leaks). ``Host``, ``User-Agent``, ``Referer``, ``Origin`` and ``Destination`` are
#: rewritten; the framing headers are re-checked by h11 on the way out.
_ALLOWED_REQUEST = frozenset(
    {
        b"accept",
        b"accept-encoding",
        b"authorization",
        b"cache-control",
        b"content-encoding",
        b"content-language",
        b"content-length",
        b"content-range",
        b"content-type",
        b"cookie",
        b"if-match",
        b"if-modified-since",
        b"if-none-match",
        b"if-range",
        b"if-unmodified-since",
        b"pragma",
        b"range",
        b"transfer-encoding",
        b"x-requested-with",
        b"x-csrf-token",
        b"x-xsrf-token",
        # WebSocket handshake (RFC 6455), sent with Connection/Upgrade below.
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-protocol",
        b"sec-websocket-extensions",
        # WebDAV (RFC 4918).
        b"depth",
        b"overwrite",
        b"lock-token",
        b"timeout",
        b"if",
    }
)
#: Rewritten to the b32 host when same-origin, else removed (``Origin`` becomes ``null``).
_SAME_ORIGIN_URLS = frozenset({b"referer", b"origin", b"destination"})

#: Hop-by-hop (RFC 9110 §7.6.1): meaningful for one connection only. Framing headers
#: (Content-Length, Transfer-Encoding) are not dropped: they describe the message itself.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"proxy-connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-authentication-info",
    }
)

#: Cookie domains that would make a cookie visible to every eepsite ("supercookies").
_SUPERCOOKIE_DOMAINS = frozenset({"i2p", "b32.i2p", "i2p.alt", "b32.i2p.alt"})


@dataclass(frozen=True)
class Origin:
    """scheme, host and port of the site a request goes to, as the browser named it."""

    scheme: str
    host: str
    port: int

    @classmethod
    def from_url(cls, url: str) -> Origin | None:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        default = 443 if parts.scheme == "https" else 80
        return cls(parts.scheme, normalize_host(parts.hostname), port or default)


def connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    """Header names listed in ``Connection`` (also hop-by-hop, RFC 9110 §7.6.1)."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() in (b"connection", b"proxy-connection"):
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return tokens


def filter_request_headers(
    headers: Iterable[tuple[bytes, bytes]],
    *,
    origin: Origin,
    b32_host: str,
    user_agent: str | None = DEFAULT_USER_AGENT,
) -> Headers:
    """Headers to send upstream for a request to ``origin`` reached as ``b32_host``.

    ``user_agent=None`` passes the browser's own User-Agent through (an explicit opt-in).
    Host is first, as RFC 9112 §3.2 recommends.
    """
    headers = list(headers)
    listed = connection_tokens(headers)
    host_value = b32_host if origin.port == 80 else f"{b32_host}:{origin.port}"
    out: Headers = [(b"host", host_value.encode("ascii"))]
    for raw_name, value in headers:
        name = raw_name.lower()
        if name in listed or (name not in _ALLOWED_REQUEST and name not in _SAME_ORIGIN_URLS):
            continue
        if name == b"x-requested-with" and value.strip().lower() != b"xmlhttprequest":
            continue  # Android WebView puts the app id here
        if name == b"authorization" and value.split(b" ", 1)[0].lower() in (b"ntlm", b"negotiate"):
            continue  # leaks the Windows host and domain name
        if name in _SAME_ORIGIN_URLS:
            rewritten = _rewrite_same_origin(value, origin, b32_host, keep_path=name != b"origin")
            if rewritten is None and name == b"origin":
                rewritten = b"null"  # cross-site: the site still sees that it is (CSRF checks)
            if rewritten is None:
                continue
            value = rewritten
        out.append((name, value))
    if user_agent is not None:
        out.append((b"user-agent", user_agent.encode("latin-1")))
    else:
        out += [(n.lower(), v) for n, v in headers if n.lower() == b"user-agent"][:1]
    upgrade = requested_upgrade(headers)
    if upgrade is not None:
        # WebSocket & co.: the one hop-by-hop pair that must reach the site for the switch.
        out += [(b"connection", b"upgrade"), (b"upgrade", upgrade)]
    return out


def requested_upgrade(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The ``Upgrade`` value when the client asks to switch protocols (``Connection: upgrade``)."""
    headers = list(headers)
    if b"upgrade" not in connection_tokens(headers):
        return None
    return next((v for n, v in headers if n.lower() == b"upgrade" and v.strip()), None)


def _rewrite_same_origin(
    value: bytes, origin: Origin, b32_host: str, *, keep_path: bool
) -> bytes | None:
    """Same-origin Referer/Origin, re-spelled with the b32 host; None (drop) when cross-site."""
    try:
        text = value.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    source = Origin.from_url(text)
    if source is None or source != origin:
        return None
    host = b32_host if origin.port == 80 else f"{b32_host}:{origin.port}"
    rest = ""
    if keep_path:
        parts = urlsplit(text)
        rest = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return f"{origin.scheme}://{host}{rest}".encode("ascii")


def filter_response_headers(headers: Iterable[tuple[bytes, bytes]]) -> Headers:
    """Headers to pass to the browser: no hop-by-hop or proxy headers, no ``.i2p`` supercookies.

    Transfer-Encoding is dropped too: the browser side re-frames the body itself.
    """
    headers = list(headers)
    listed = connection_tokens(headers)
    out: Headers = []
    for raw_name, value in headers:
        name = raw_name.lower()
        if name in HOP_BY_HOP or name in listed or name == b"transfer-encoding":
            continue
        if name == b"set-cookie" and is_supercookie(value):
            continue
        out.append((name, value))
    return out


def is_supercookie(set_cookie: bytes) -> bool:
    """True when a Set-Cookie's Domain attribute covers all of I2P (``.i2p``, ``b32.i2p``)."""
    for attribute in set_cookie.split(b";")[1:]:
        key, _, val = attribute.partition(b"=")
        if key.strip().lower() == b"domain":
            domain = val.strip().strip(b'"').decode("latin-1").lower().strip(".")
            if domain in _SUPERCOOKIE_DOMAINS:
                return True
    return False


#: The order in which Firefox (ESR 128, the base of Tor Browser) sends the request headers the
#: filter lets through; any other allowed header follows in the browser's order. A site should
#: not be able to tell i2proxy's requests from a browser's behind i2pd or Java I2P (which pass the
#: browser's order and spelling) by h11's lower-case names alone.
WIRE_ORDER = (
    b"host",
    b"user-agent",
    b"accept",
    b"accept-encoding",
    b"content-type",
    b"content-length",
    b"transfer-encoding",
    b"origin",
    b"authorization",
    b"connection",
    b"upgrade",
    b"referer",
    b"cookie",
    b"sec-websocket-version",
    b"sec-websocket-extensions",
    b"sec-websocket-key",
    b"sec-websocket-protocol",
    b"if-modified-since",
    b"if-none-match",
    b"range",
    b"if-range",
    b"pragma",
    b"cache-control",
)
_RANK = {name: rank for rank, name in enumerate(WIRE_ORDER)}
#: Names whose usual spelling is not plain Title-Case.
_SPELLING = {
    b"te": b"TE",
    b"www-authenticate": b"WWW-Authenticate",
    b"sec-websocket-version": b"Sec-WebSocket-Version",
    b"sec-websocket-extensions": b"Sec-WebSocket-Extensions",
    b"sec-websocket-key": b"Sec-WebSocket-Key",
    b"sec-websocket-protocol": b"Sec-WebSocket-Protocol",
    b"x-csrf-token": b"X-CSRF-Token",
    b"x-xsrf-token": b"X-XSRF-TOKEN",
}


def header_spelling(name: bytes) -> bytes:
    """``content-type`` → ``Content-Type`` (the spelling browsers use on HTTP/1.1)."""
    lower = name.lower()
    return _SPELLING.get(lower) or b"-".join(p[:1].upper() + p[1:] for p in lower.split(b"-"))


def wire_headers(headers: Iterable[tuple[bytes, bytes]]) -> Headers:
    """Filtered request headers in Firefox's order and spelling, for the eepsite."""
    ranked = sorted(
        enumerate(headers), key=lambda item: (_RANK.get(item[1][0].lower(), len(_RANK)), item[0])
    )
    return [(header_spelling(name), value) for _, (name, value) in ranked]
