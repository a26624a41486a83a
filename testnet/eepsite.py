"""The demo eepsite: a small aiohttp server published through an i2pd server tunnel.

Endpoints (tests and benchmarks rely on them):

- ``/`` — a small HTML page.
- ``/headers`` — JSON ``{"method", "path", "headers": [[name, value], ...]}``: the request line's
  method and raw target, and the headers exactly as received (order and case kept), so proxy
  tests can assert what leaked upstream.
- ``/echo`` (any method) — the request body, verbatim, with the method in ``X-Echo-Method``.
- ``/bytes/{n}`` — ``n`` deterministic bytes (:func:`expected_bytes`), ``n`` up to 64 MiB, with
  Content-Length.
- ``/files/{name}`` — a file from ``www_dir`` with ETag, Last-Modified, conditional GET (304) and
  gzip when the client accepts it.
- ``/whoami`` — the client's b32 address, one line of plain text, from the ``X-I2P-DestB32``
  header an i2pd ``type = http`` server tunnel (or Java's I2PTunnel HTTP server) adds; 421
  when the request came through a tunnel that adds none (the eepsite's plain port 80).

The same app serves the second eepsite with another index page (:data:`INDEX2_TEMPLATE`).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

from aiohttp import web

from i2proxy.log import configure, get_logger
from testnet.udpecho import start_udp_echo

log = get_logger(__name__)

MAX_BYTES = 64 * 1024 * 1024
MAX_ECHO_BODY = 16 * 1024 * 1024
MAX_FILE = 64 * 1024 * 1024
_PATTERN_PERIOD = 251  # prime, so the pattern does not line up with any power-of-two chunking
_PATTERN = bytes(i % _PATTERN_PERIOD for i in range(_PATTERN_PERIOD * 1024))

INDEX_HTML = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>i2proxy demo eepsite</title></head>
<body>
<h1>Hello from the private I2P network</h1>
<p>This page was served by the i2proxy demo eepsite, through an i2pd server tunnel,
over a private network of real i2pd routers on this machine.</p>
<ul>
<li><a href="/headers">/headers</a>: the request headers as they arrived here</li>
<li><a href="/bytes/1048576">/bytes/1048576</a>: 1 MiB of test data</li>
<li><a href="/files/hello.txt">/files/hello.txt</a>: a static file</li>
</ul>
</body></html>
"""


#: The second eepsite's page: it embeds a resource of the first (for per-site isolation tests).
INDEX2_TEMPLATE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>i2proxy demo eepsite 2</title></head>
<body>
<h1>Hello from the second eepsite</h1>
<p>A second site on its own destination. It embeds the first eepsite's /whoami below.</p>
<ul>
<li><a href="/whoami">/whoami</a>: your b32 address, as this site sees it</li>
<li><a href="http://{eepsite}/">the first eepsite</a></li>
</ul>
<iframe id="embedded-whoami" src="http://{eepsite}:{whoami_port}/whoami"></iframe>
<img id="embedded-image" src="http://{eepsite}/files/hello.txt" alt="">
</body></html>
"""

#: The header i2pd's http server tunnels and Java's I2PTunnel HTTP server add.
DEST_B32_HEADER = "X-I2P-DestB32"
_B32_RE = re.compile(r"^[a-z2-7]{52}\.b32\.i2p$")


def expected_bytes(n: int, offset: int = 0) -> bytes:
    """The body of ``/bytes/{n}`` (or the part of it starting at ``offset``)."""
    out = bytearray()
    pos = offset
    while len(out) < n:
        start = pos % _PATTERN_PERIOD
        take = min(n - len(out), len(_PATTERN) - start)
        out += _PATTERN[start : start + take]
        pos += take
    return bytes(out)


async def index(request: web.Request) -> web.Response:
    return web.Response(text=request.app["index_html"], content_type="text/html")


async def whoami(request: web.Request) -> web.Response:
    """The client's b32 as the server tunnel reported it; 421 when no tunnel reported one."""
    b32 = request.headers.get(DEST_B32_HEADER, "").strip().lower()
    if not _B32_RE.match(b32):
        return web.Response(
            status=421,
            text=f"no valid {DEST_B32_HEADER} header: this port's server tunnel is not an "
            "http-type tunnel (the demo eepsite answers /whoami on I2P port 81)\n",
            headers={"Cache-Control": "no-store"},
        )
    return web.Response(text=b32 + "\n", headers={"Cache-Control": "no-store"})


async def headers(request: web.Request) -> web.Response:
    body = {
        "method": request.method,
        "path": request.raw_path,
        "headers": [
            [name.decode("latin-1"), value.decode("latin-1")] for name, value in request.raw_headers
        ],
    }
    return web.Response(text=json.dumps(body), content_type="application/json")


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.Response(
        body=body,
        headers={"X-Echo-Method": request.method},
        content_type=request.content_type or "application/octet-stream",
    )


async def some_bytes(request: web.Request) -> web.StreamResponse:
    try:
        n = int(request.match_info["n"])
    except ValueError:
        raise web.HTTPBadRequest(text="n must be an integer\n") from None
    if not 0 <= n <= MAX_BYTES:
        raise web.HTTPBadRequest(text=f"n must be between 0 and {MAX_BYTES}\n")
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    response.content_length = n
    await response.prepare(request)
    if request.method != "HEAD":
        sent = 0
        while sent < n:
            chunk = expected_bytes(min(len(_PATTERN) - _PATTERN_PERIOD, n - sent), sent)
            await response.write(chunk)
            sent += len(chunk)
    await response.write_eof()
    return response


def _resolve(www_dir: Path, name: str) -> Path:
    root = www_dir.resolve()
    path = (root / name).resolve()
    if root not in path.parents or any(part.startswith(".") for part in Path(name).parts):
        raise web.HTTPNotFound()
    if not path.is_file():
        raise web.HTTPNotFound()
    return path


def _etag_matches(header: str, etags: set[str]) -> bool:
    candidates = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in candidates or bool(candidates & etags)


async def files(request: web.Request) -> web.Response:
    www_dir: Path = request.app["www_dir"]
    path = _resolve(www_dir, request.match_info["name"])
    stat = path.stat()
    if stat.st_size > MAX_FILE:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_FILE, actual_size=stat.st_size)
    content = path.read_bytes()
    digest = hashlib.sha256(content).hexdigest()[:32]
    identity_tag, gzip_tag = f'"{digest}"', f'"{digest}-gz"'
    use_gzip = "gzip" in request.headers.get("Accept-Encoding", "").lower()
    etag = gzip_tag if use_gzip else identity_tag
    modified = datetime.fromtimestamp(int(stat.st_mtime), UTC)
    common = {
        "ETag": etag,
        "Last-Modified": format_datetime(modified, usegmt=True),
        "Vary": "Accept-Encoding",
        "Cache-Control": "no-cache",
    }

    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        if _etag_matches(if_none_match, {identity_tag, gzip_tag}):
            return web.Response(status=304, headers=common)
    elif (since := request.headers.get("If-Modified-Since")) is not None:
        try:
            if modified <= parsedate_to_datetime(since):
                return web.Response(status=304, headers=common)
        except (TypeError, ValueError):
            pass  # an unparsable date is ignored, as RFC 9110 says

    if use_gzip:
        content = gzip.compress(content, mtime=0)
        common["Content-Encoding"] = "gzip"
    content_type = "text/plain" if path.suffix in (".txt", "") else "application/octet-stream"
    if path.suffix in (".html", ".htm"):
        content_type = "text/html"
    return web.Response(body=content, headers=common, content_type=content_type)


def make_app(
    www_dir: Path, udp_echo: tuple[str, int] | None = None, *, index_html: str = INDEX_HTML
) -> web.Application:
    app = web.Application(client_max_size=MAX_ECHO_BODY)
    app["www_dir"] = www_dir
    app["index_html"] = index_html
    if udp_echo is not None:

        async def run_udp_echo(app: web.Application):  # type: ignore[no-untyped-def]
            transports = await start_udp_echo(*udp_echo)
            yield
            for transport in transports:
                transport.close()

        app.cleanup_ctx.append(run_udp_echo)
    app.router.add_get("/", index)
    app.router.add_route("*", "/headers", headers)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/bytes/{n}", some_bytes)
    app.router.add_get("/files/{name:.+}", files)
    app.router.add_get("/whoami", whoami)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the i2proxy demo eepsite")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--www-dir", type=Path, required=True)
    parser.add_argument("--udp-echo-port", type=int, help="also run the UDP echo service")
    args = parser.parse_args(argv)
    configure(json=True)
    log.info("eepsite starting", host=args.host, port=args.port, www_dir=str(args.www_dir))
    udp_echo = (args.host, args.udp_echo_port) if args.udp_echo_port else None
    web.run_app(make_app(args.www_dir, udp_echo), host=args.host, port=args.port, print=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
