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

#: Always removed from requests: identify the user, the machine, the network or the proxy chain.
_DROP_REQUEST = frozenset(
    {
        b"via",
        b"from",
        b"forwarded",
        b"dnt",
        b"sec-gpc",
        b"x-real-ip",
        b"client-ip",
        b"true-client-ip",
        b"x-client-ip",
        b"x-originating-ip",
        b"x-cluster-client-ip",
        b"cf-connecting-ip",
        b"x-proxy-id",
        b"x-bluecoat-via",
    }
)
_DROP_REQUEST_PREFIXES = (b"x-forwarded-", b"proxy-", b"sec-ch-", b"sec-fetch-")

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
_SUPERCOOKIE_DOMAINS = frozenset({"i2p", "b32.i2p", "i2p.alt"})


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
        if name == b"host" or name in HOP_BY_HOP or name in listed or name in _DROP_REQUEST:
            continue
        if name.startswith(_DROP_REQUEST_PREFIXES):
            continue
        if name.startswith(b"accept-") and name != b"accept-encoding":
            continue  # Accept-Language, Accept-Charset, ...: a fingerprint, not a need
        if name == b"expect":
            continue  # the proxy answers 100-continue itself; the body rides with the head
        if name == b"x-requested-with" and value.strip().lower() != b"xmlhttprequest":
            continue  # Android WebView puts the app id here
        if name == b"authorization" and value.split(b" ", 1)[0].lower() in (b"ntlm", b"negotiate"):
            continue  # leaks the Windows host and domain name
        if name == b"user-agent" and user_agent is not None:
            continue
        if name in (b"referer", b"origin"):
            rewritten = _rewrite_same_origin(value, origin, b32_host, keep_path=name == b"referer")
            if rewritten is None:
                continue
            value = rewritten
        out.append((name, value))
    if user_agent is not None:
        out.append((b"user-agent", user_agent.encode("latin-1")))
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
