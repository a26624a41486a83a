"""The proxy's own pages over HTTP: health, PAC file, and the address helper's offer and form."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import h11

from i2proxy.log import get_logger
from i2proxy.naming.errors import NamingError
from i2proxy.proxy import pages
from i2proxy.proxy.context import SessionContext
from i2proxy.proxy.headers import Origin
from i2proxy.proxy.http import HttpError, RequestTarget, parse_helper_value, split_address_helper
from i2proxy.proxy.http_browser import Browser
from i2proxy.proxy.routing import HostKind, b32_of, classify_host, same_destination
from i2proxy.proxy.streams import Closed

log = get_logger("i2proxy.proxy")


class LocalPages:
    """Answers requests for ``proxy.i2p`` (or the proxy's own address) and helper links."""

    def __init__(self, ctx: SessionContext, browser: Browser, listener: str) -> None:
        self.ctx = ctx
        self.browser = browser
        self.listener = listener

    def is_self(self, kind: HostKind, target: RequestTarget) -> bool:
        """An origin-form request addressed to this proxy's own listening address."""
        own = self.ctx.addresses.get(self.listener)
        return (
            not target.absolute
            and own is not None
            and kind in (HostKind.IP, HostKind.LOCAL)
            and target.port == own[1]
        )

    @staticmethod
    def is_pac(request: h11.Request, target: RequestTarget) -> bool:
        return request.method.upper() in (b"GET", b"HEAD") and (
            urlsplit(target.path).path == "/proxy.pac"
        )

    async def serve(self, request: h11.Request, target: RequestTarget) -> bool:
        """One local page; True when the connection may go on."""
        method = request.method.upper()
        body = await self._read_small_body(8192)
        path = urlsplit(target.path).path
        if path == "/proxy.pac" and method in (b"GET", b"HEAD"):
            host, port = self._pac_address()
            pac = pages.pac_file(host, port, everything=bool(self.ctx.config.outproxy))
            headers = [
                (b"content-type", b"application/x-ns-proxy-autoconfig"),
                (b"cache-control", b"no-cache"),
            ]
            await self.browser.page(200, pac, headers=headers)
            return True
        if path == "/" and method in (b"GET", b"HEAD"):
            stats = dict(vars(self.ctx.stats))
            stats["uptime_s"] = int(time.time() - stats.pop("started"))
            stats["router"] = self.ctx.config.router or "auto-detected"
            stats.update({f"pool_{k}": v for k, v in self.ctx.pool_stats().items()})
            await self.browser.page(200, pages.health_page(stats))
            return True
        if path == "/add" and method == b"POST":
            return await self._helper_add(request, body)
        raise HttpError(404, "Not Found", f"the proxy has no page {path}")

    def _pac_address(self) -> tuple[str, int]:
        host, port = self.ctx.addresses.get("http") or self.ctx.addresses[self.listener]
        if host in ("0.0.0.0", "::"):
            # Reachable on every interface: name the address this browser reached us on (the
            # socket's, never the Host header: that is the client's text and ends up in code).
            sockname = self.browser.writer.get_extra_info("sockname")
            local = str(sockname[0]) if sockname else "127.0.0.1"
            host = f"[{local}]" if ":" in local else local
        return host, port

    async def _read_small_body(self, limit: int) -> bytes:
        body = bytearray()
        while True:
            event = await self.browser.next_event(self.ctx.config.header_timeout)
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > limit:
                    raise HttpError(413, "Content Too Large", "request body too large")
            elif isinstance(event, h11.EndOfMessage):
                return bytes(body)
            else:
                raise Closed

    async def _helper_add(self, request: h11.Request, body: bytes) -> bool:
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        host = form.get("host", "").lower()
        dest_text = form.get("dest", "")
        url = form.get("url", "")
        if not _same_site_form(request.headers, host):
            raise HttpError(403, "Forbidden", "this form was sent from another site")
        if not self.ctx.tokens.check(form.get("token", ""), host, dest_text, url, self.ctx.clock()):
            raise HttpError(
                403,
                "Forbidden",
                "the form token is missing, wrong, used or expired; follow the link again",
            )
        kind, _ = classify_host(host)
        if kind is not HostKind.NAME:
            raise HttpError(400, "Bad Request", "the form names no .i2p host")
        destination = parse_helper_value(dest_text)
        save = form.get("choice") == "save"
        resolver = self.ctx.resolver
        if save and not resolver.can_save(destination):
            raise HttpError(400, "Bad Request", "this address can only be used for this run")
        try:
            resolver.remember(host, destination, save=save)
        except (ValueError, NamingError) as exc:  # the naming rules refuse name or destination
            raise HttpError(400, "Bad Request", f"cannot store {host}: {exc}") from None
        log.info("address helper accepted", saved=save)
        log.debug("address helper accepted", host=host, b32=b32_of(destination))
        location = url if _plain_url_of(url, host) else f"http://{host}/"
        await self.browser.page(303, b"", headers=[(b"location", location.encode("ascii"))])
        return True

    async def offer_helper(self, host: str, target: RequestTarget, value: str) -> None:
        """Answer a request carrying ``?i2paddresshelper=``: redirect or ask; never save."""
        clean_path, _ = split_address_helper(target.path)
        clean = RequestTarget(target.scheme, target.host, target.port, clean_path).url
        destination = parse_helper_value(value)
        known = self.ctx.resolver.resolve(host)
        if known is not None and same_destination(known, destination):
            await self.browser.page(302, b"", headers=[(b"location", clean.encode())], close=True)
            return
        dest_text = destination if isinstance(destination, str) else destination.to_base64()
        page = pages.helper_page(
            host=host,
            new_b32=b32_of(destination),
            url=clean,
            token=self.ctx.tokens.issue(host, dest_text, clean, self.ctx.clock()),
            destination_text=dest_text,
            known_b32=None if known is None else b32_of(known),
            can_save=self.ctx.resolver.can_save(destination),
        )
        status = 200 if known is None else 409
        await self.browser.page(status, page, headers=pages.HELPER_PAGE_HEADERS, close=True)


def _same_site_form(headers: list[tuple[bytes, bytes]], host: str) -> bool:
    """The ``/add`` form was posted from the helper page, which the browser shows as ``host``:
    its ``Origin`` must be that host. Without ``Origin`` (old browsers, scripts) a
    ``Sec-Fetch-Site`` other than same-origin or none (typed) is refused too."""
    origin = next((v for n, v in headers if n == b"origin"), None)
    if origin is not None:
        parsed = Origin.from_url(origin.decode("latin-1").strip())
        return parsed is not None and parsed.scheme == "http" and parsed.host == host
    fetch_site = next((v for n, v in headers if n == b"sec-fetch-site"), None)
    return fetch_site is None or fetch_site.strip().lower() in (b"same-origin", b"none")


def _plain_url_of(url: str, host: str) -> bool:
    """``url`` is an ``http://`` URL on ``host`` with nothing a browser could read differently
    (no user info, backslash, control or non-ASCII character)."""
    if not url.isascii() or any(c in url for c in "\\@\x7f") or not url.isprintable():
        return False
    if " " in url:
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return False
    return parts.scheme == "http" and parts.hostname == host and not parts.username
