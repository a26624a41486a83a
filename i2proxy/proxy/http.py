"""HTTP proxy request logic that needs no I/O: request targets, address helpers, tokens, auth.

Message framing itself is h11's job (bounded, strict, well tested: absolute-form and CONNECT
targets, chunked bodies both ways, keep-alive cycles, ``Expect: 100-continue``). This module
decides what a parsed request *means* for the proxy.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from urllib.parse import unquote_plus, urlsplit

from i2proxy.i2p.names import is_b32_name
from i2proxy.proxy.routing import normalize_host


class HttpError(Exception):
    """A request the proxy answers itself with ``status`` and a short explanation."""

    def __init__(self, status: int, title: str, detail: str = "") -> None:
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")
        self.status = status
        self.title = title
        self.detail = detail


@dataclass(frozen=True)
class RequestTarget:
    """Where a request goes: ``host:port`` and the origin-form ``path`` (with query)."""

    scheme: str
    host: str
    port: int
    path: str
    #: True when the request named the host in the request line (a proxy request) rather than
    #: only in ``Host`` (origin-form: a transparent proxy, or a request for the proxy itself).
    absolute: bool = True

    @property
    def url(self) -> str:
        port = "" if self.port == (443 if self.scheme == "https" else 80) else f":{self.port}"
        return f"{self.scheme}://{self.host}{port}{self.path}"


_PORT = re.compile(r"^[0-9]{1,5}$")  # str.isdigit() also takes "¹²³", which int() refuses


def _split_authority(authority: str, default_port: int) -> tuple[str, int]:
    if not authority or any(c in authority for c in " /?#@\\"):
        raise HttpError(400, "Bad Request", f"malformed host {authority!r}")
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise HttpError(400, "Bad Request", f"malformed host {authority!r}")
        host, rest = authority[: end + 1], authority[end + 1 :]
        if rest and not rest.startswith(":"):
            raise HttpError(400, "Bad Request", f"malformed host {authority!r}")
        port_text = rest[1:]
    else:
        host, _, port_text = authority.partition(":")
    if port_text:
        if not _PORT.match(port_text) or not 0 < int(port_text) < 65536:
            raise HttpError(400, "Bad Request", f"bad port in {authority!r}")
        return normalize_host(host), int(port_text)
    return normalize_host(host), default_port


def parse_request_target(method: str, target: str, host_header: str | None) -> RequestTarget:
    """Interpret a request line target (RFC 9112 §3.2) for a forward proxy."""
    if method == "CONNECT":
        host, port = _split_authority(target, 443)
        return RequestTarget("https", host, port, "", absolute=True)
    if "://" in target[:16]:
        try:
            parts = urlsplit(target)
            port = parts.port
        except ValueError as exc:
            raise HttpError(400, "Bad Request", f"malformed URL: {exc}") from None
        if parts.scheme.lower() != "http":
            raise HttpError(
                400,
                "Bad Request",
                f"the proxy fetches http:// URLs; use CONNECT for {parts.scheme}://",
            )
        if not parts.hostname:
            raise HttpError(400, "Bad Request", "URL without a host")
        # Userinfo and fragment are dropped: neither belongs on the wire to the site.
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return RequestTarget("http", normalize_host(parts.hostname), port or 80, path)
    if target.startswith("/") or (target == "*" and method == "OPTIONS"):
        if not host_header:
            raise HttpError(400, "Bad Request", "no host in the request line or Host header")
        host, port = _split_authority(host_header.strip(), 80)
        return RequestTarget("http", host, port, target, absolute=False)
    raise HttpError(400, "Bad Request", f"cannot use request target {target[:80]!r}")


# -- address helper --------------------------------------------------------------------------

HELPER_PARAM = "i2paddresshelper"
_B64_DEST = re.compile(r"^[A-Za-z0-9~-]{387,1400}={0,2}$")


def split_address_helper(path: str) -> tuple[str, str | None]:
    """Remove ``i2paddresshelper=`` from the query; return (clean path, helper value or None).

    The other parameters keep their original encoding and order.
    """
    base, sep, query = path.partition("?")
    if not sep:
        return path, None
    kept: list[str] = []
    helper: str | None = None
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if unquote_plus(key).lower() == HELPER_PARAM:
            helper = unquote_plus(value).strip()
        else:
            kept.append(part)
    if helper is None:
        return path, None
    clean_query = "&".join(p for p in kept if p)
    return (f"{base}?{clean_query}" if clean_query else base), helper


def parse_helper_value(value: str) -> object:
    """A helper's destination: a ``Destination`` (full base64) or a ``<b32>.b32.i2p`` string.

    Raises ``HttpError(400)`` when it is neither.
    """
    candidate = value.strip()
    if is_b32_name(candidate):
        return candidate.lower()
    if not _B64_DEST.match(candidate):
        raise HttpError(
            400, "Bad Address Helper", "the helper is neither a base64 destination nor a b32 name"
        )
    try:
        from i2proxy.i2p.destination import Destination

        return Destination.from_base64(candidate)
    except ImportError:  # pragma: no cover - the i2p package is always present on main
        raise HttpError(500, "Internal Error", "destination parser unavailable") from None
    except Exception as exc:
        raise HttpError(400, "Bad Address Helper", f"not a valid destination: {exc}") from None


_TOKEN = re.compile(r"^([0-9]{1,12})\.([0-9a-f]{40})$")


class HelperTokens:
    """Anti-forgery tokens for the "add this address" form (HMAC with a run secret).

    A token binds the host, the destination and the URL to return to; it expires and can be
    used once. A page on another eepsite cannot read it (same-origin policy), so it cannot make
    the browser add a name, nor reuse a token it saw to add it again later.
    """

    def __init__(self, secret: bytes | None = None, lifetime: float = 3600.0) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self.lifetime = lifetime
        #: Tokens already used, with their issue time (forgotten once expired anyway).
        self._used: dict[str, int] = {}

    def _mac(self, host: str, destination: str, url: str, issued: int) -> str:
        msg = f"{host}\n{destination}\n{url}\n{issued}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()[:40]

    def issue(self, host: str, destination: str, url: str, now: float) -> str:
        issued = int(now)
        return f"{issued}.{self._mac(host, destination, url, issued)}"

    def check(self, token: str, host: str, destination: str, url: str, now: float) -> bool:
        """True once for a valid token; any text is safe to pass (nothing here raises)."""
        match = _TOKEN.match(token)
        if match is None:
            return False
        issued = int(match.group(1))
        if not 0 <= now - issued <= self.lifetime:
            return False
        expected = self._mac(host, destination, url, issued)
        if not hmac.compare_digest(match.group(2), expected) or token in self._used:
            return False
        self._used = {t: i for t, i in self._used.items() if now - i <= self.lifetime}
        self._used[token] = issued
        return True


# -- proxy authentication --------------------------------------------------------------------


def basic_credentials(header_value: bytes | None) -> tuple[str, str] | None:
    """(user, password) from a ``Proxy-Authorization: Basic`` value, or None."""
    if not header_value:
        return None
    scheme, _, encoded = header_value.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def credentials_ok(users: dict[str, str], user: str, password: str) -> bool:
    """Constant-time check against the configured users (no early exit on the user name)."""
    expected = users.get(user, "\0" + secrets.token_hex(8))
    return hmac.compare_digest(password.encode(), expected.encode()) and user in users
