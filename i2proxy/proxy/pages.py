"""The proxy's own pages: short, self-contained HTML (no scripts, no external resources).

Every page is sent with ``Cache-Control: no-store`` and a strict Content-Security-Policy so it
cannot be cached as the site's content nor load anything.
"""

from __future__ import annotations

import json
from html import escape

from i2proxy import __version__

REASONS = {
    200: "OK",
    302: "Found",
    303: "See Other",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    409: "Conflict",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

_CSP = b"default-src 'none'; style-src 'unsafe-inline'; form-action *; frame-ancestors 'none'"

#: Headers of every page the proxy makes: never cached, never framed (no clickjacking of the
#: address helper's buttons), nothing loaded.
PAGE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"content-security-policy", _CSP),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]

#: The address helper's page: its form must carry an ``Origin`` (``no-referrer`` would make the
#: browser send ``Origin: null``) so ``/add`` can refuse forms posted from another site.
HELPER_PAGE_HEADERS: list[tuple[bytes, bytes]] = [
    (name, b"origin" if name == b"referrer-policy" else value) for name, value in PAGE_HEADERS
]

_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:46em;margin:3em auto;padding:0 1em}"
    "code{word-break:break-all}button{font-size:1em;margin:.3em 0}"
)


def response_bytes(
    status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> bytes:
    """A complete ``Connection: close`` HTTP/1.1 response, for answers given outside an h11
    exchange (a busy server, the wrong port, a failed CONNECT)."""
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}".encode()]
    all_headers = list(PAGE_HEADERS if headers is None else headers)
    all_headers += [(b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    lines += [name + b": " + value for name, value in all_headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def html_page(title: str, body_html: str) -> bytes:
    return (
        "<!DOCTYPE html><html><head><meta charset=utf-8>"
        f"<title>{escape(title)} · i2proxy</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body_html}"
        f"<hr><small>i2proxy {escape(__version__)}</small></body></html>"
    ).encode()


#: The 504 explanation when the router found no LeaseSet for the site, twice (DestinationOffline).
OFFLINE_DETAIL = (
    "The site appears to be offline: the I2P network has no record (LeaseSet) of it right now, "
    "not even after a second lookup. I2P sites are often run from home computers and come and "
    "go; try again in a few minutes. If it stays away, check the address: the site may have "
    "moved, and a jump service or a fresh address-book subscription may know its new one."
)


def error_page(status: int, title: str, detail: str) -> bytes:
    return html_page(f"{status} {title}", f"<p>{escape(detail)}</p>")


def jump_page(host: str, path: str, jump_services: list[str]) -> bytes:
    """Unknown ``.i2p`` name: explain, and offer jump services (each URL + the host name)."""
    links = "".join(
        f'<li><a href="{escape(jump_link(s, host))}">{escape(_service_label(s))}</a></li>'
        for s in jump_services
    )
    more = (
        f"<p>A jump service can look it up and send you back here with an address helper:</p>"
        f"<ul>{links}</ul>"
        if links
        else "<p>No jump services are configured.</p>"
    )
    return html_page(
        "Unknown I2P name",
        f"<p><code>{escape(host)}</code> is not in your address book, so the proxy does not "
        f"know which destination it stands for.</p>{more}"
        f"<p>Or open the site by its <code>.b32.i2p</code> address if you know it.</p>",
    )


def jump_link(service: str, host: str) -> str:
    """The service URL with the name appended (after ``?`` unless it ends in ``/`` or ``=``)."""
    if service.endswith(("/", "=")):
        return service + host
    return service + ("&" if "?" in service else "?") + host


def _service_label(service: str) -> str:
    return service.split("//", 1)[-1].split("/", 1)[0]


def helper_page(
    *,
    host: str,
    new_b32: str,
    url: str,
    token: str,
    destination_text: str,
    known_b32: str | None,
    can_save: bool,
) -> bytes:
    """Confirm an address helper; ``known_b32`` set means the name already maps elsewhere."""
    hidden = (
        f'<input type=hidden name=host value="{escape(host)}">'
        f'<input type=hidden name=dest value="{escape(destination_text)}">'
        f'<input type=hidden name=url value="{escape(url)}">'
        f'<input type=hidden name=token value="{escape(token)}">'
    )
    save_button = (
        "<button name=choice value=save>Save to my address book</button> "
        if can_save
        else "<p><small>(a b32 helper can only be used for this run)</small></p>"
    )
    form = (
        f'<form method=post action="http://proxy.i2p/add">{hidden}'
        f"<button name=choice value=session>Use for this run only</button> {save_button}</form>"
    )
    if known_b32 is None:
        title = "New I2P address"
        intro = (
            f"<p>The link you followed says <code>{escape(host)}</code> is "
            f"<code>{escape(new_b32)}</code>. Nothing has been saved. Only accept it if you "
            f"trust where the link came from.</p>"
        )
    else:
        title = "Address conflict"
        intro = (
            f"<p><strong>Careful:</strong> your address book already has "
            f"<code>{escape(host)}</code> as <code>{escape(known_b32)}</code>, but the link you "
            f"followed says it is <code>{escape(new_b32)}</code>. This may be an attempt to "
            f"impersonate the site.</p>"
            f'<p><a href="{escape(url)}">Keep the address I already have</a></p>'
            f"<p>Or replace it:</p>"
        )
    return html_page(title, intro + form)


def health_page(stats: dict[str, object]) -> bytes:
    rows = "".join(
        f"<tr><td>{escape(str(k))}</td><td>{escape(str(v))}</td></tr>" for k, v in stats.items()
    )
    return html_page(
        "i2proxy is running",
        f"<p>This browser reaches I2P through i2proxy.</p><table>{rows}</table>"
        '<p><a href="http://proxy.i2p/proxy.pac">proxy.pac</a> — automatic proxy configuration'
        " (sends <code>*.i2p</code> here, everything else direct).</p>",
    )


def pac_file(proxy_host: str, proxy_port: int, *, everything: bool = False) -> bytes:
    """A PAC file sending ``*.i2p`` (and ``*.i2p.alt``) through the proxy, the rest DIRECT;
    with ``everything`` (outproxies configured) every URL through the proxy."""
    target = json.dumps(f"PROXY {proxy_host}:{proxy_port}")  # a JS string literal, escaped
    if everything:
        return f"function FindProxyForURL(url, host) {{\n  return {target};\n}}\n".encode()
    return (
        "function FindProxyForURL(url, host) {\n"
        "  host = host.toLowerCase();\n"
        '  if (dnsDomainIs(host, ".i2p") || dnsDomainIs(host, ".i2p.alt")) {\n'
        f"    return {target};\n"
        "  }\n"
        '  return "DIRECT";\n'
        "}\n"
    ).encode()
