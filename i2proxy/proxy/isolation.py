"""Which client destination a request uses: its isolation key (docs/PROXY.md "Isolation").

Modes, per listener (``isolation`` setting):

- ``none``: every request uses the one shared client destination (as before isolation).
- ``user``: one destination per proxy user. With ``users`` configured that is the user name;
  without, the SOCKS5 user name/password pair (Tor Browser's convention: credentials are an
  isolation token), the SOCKS4 user id, or the HTTP ``Proxy-Authorization`` pair. Requests
  without any credentials use the shared destination.
- ``site``: on HTTP, one destination per user *and* first-party site (the site of the top-level
  page the request belongs to, :func:`first_party`). SOCKS carries no first-party information,
  so on SOCKS ``site`` is ``user`` (clients that isolate per first party put it in the
  credentials, as Tor Browser does).

A key is a tuple of strings whose first item is its kind; the pool logs only that kind.
Pure functions: no sockets, no clock.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from urllib.parse import urlsplit

from i2proxy.i2p.names import b32_kind
from i2proxy.proxy.routing import normalize_host

#: The key type handed to the destination pool; None means the shared destination.
Key = tuple[str, ...]


class Isolation(enum.Enum):
    NONE = "none"
    USER = "user"
    SITE = "site"


def auth_key(username: str, password: str, users_configured: bool) -> Key:
    """The key of a client's credentials: the user when users are configured (the password was
    checked), otherwise the pair itself as a token."""
    if users_configured:
        return ("user", username)
    return ("token", username, password)


def socks_key(
    mode: Isolation,
    *,
    credentials: tuple[str, str] | None,
    user_id: str,
    users_configured: bool,
) -> Key | None:
    """SOCKS: by RFC 1929 credentials or SOCKS4 user id (``site`` behaves as ``user``)."""
    if mode is Isolation.NONE:
        return None
    if credentials is not None:
        return auth_key(*credentials, users_configured)
    if user_id:
        return ("token", user_id, "")
    return None


def site_of(host: str) -> str:
    """The site of a host: a b32 name is its own site; ``a.b.example.i2p`` → ``example.i2p``
    (``.i2p`` is not in the Public Suffix List, so browsers treat names the same way)."""
    name = normalize_host(host)
    if b32_kind(name) is not None:
        return name
    labels = name.split(".")
    return ".".join(labels[-2:]) if len(labels) > 2 else name


def _url_host(value: bytes) -> str | None:
    try:
        text = value.decode("ascii").strip()
        host = urlsplit(text).hostname
    except (UnicodeDecodeError, ValueError):
        return None
    return host or None


def first_party(target_host: str, headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The site of the top-level page an HTTP request belongs to.

    1. A top-level navigation is its own first party: ``Sec-Fetch-Dest: document``, or
       ``Sec-Fetch-Site: none`` (typed or bookmarked URL).
    2. Otherwise the page that asked for it: ``Origin`` (sent with CORS and POST requests,
       even when the referrer policy strips ``Referer``), then ``Referer``.
    3. Without either, the target's own site (a stripped Referer falls back here).

    Limits: a browser without Fetch Metadata (curl, old browsers) that follows a link from A to
    B sends ``Referer: A`` and that navigation is taken as A's; an iframe's own subresources
    name the iframe as Referer, so they belong to the iframe's site.
    """
    fields: dict[bytes, bytes] = {}
    for name, value in headers:
        fields.setdefault(name.lower(), value)
    dest = fields.get(b"sec-fetch-dest", b"").strip().lower()
    fetch_site = fields.get(b"sec-fetch-site", b"").strip().lower()
    if dest == b"document" or fetch_site == b"none":
        return site_of(target_host)
    for header in (b"origin", b"referer"):
        value = fields.get(header)
        if value and value.strip().lower() != b"null":
            host = _url_host(value)
            if host:
                return site_of(host)
    return site_of(target_host)


def http_key(
    mode: Isolation,
    *,
    target_host: str,
    headers: Iterable[tuple[bytes, bytes]],
    credentials: tuple[str, str] | None,
    users_configured: bool,
) -> Key | None:
    """HTTP: the user's key, plus the first-party site in ``site`` mode."""
    if mode is Isolation.NONE:
        return None
    user: Key = auth_key(*credentials, users_configured) if credentials is not None else ()
    if mode is Isolation.USER:
        return user or None
    return ("site", first_party(target_host, headers), *user)


def connect_key(
    mode: Isolation,
    *,
    target_host: str,
    credentials: tuple[str, str] | None,
    users_configured: bool,
) -> Key | None:
    """HTTP CONNECT: the tunnel's content is opaque, so its host is its own first party."""
    return http_key(
        mode,
        target_host=target_host,
        headers=(),
        credentials=credentials,
        users_configured=users_configured,
    )
