"""The "clearnet" web server of the test network: what ``www.example.test`` serves.

Only the test outproxy (``testnet.outproxy``) can reach it — it resolves the name from a fixed
map to this server's port inside the namespace — so its page arriving anywhere proves the
request went through the outproxy. Endpoints:

- ``/`` — ``Hello from the clearnet (test)`` and the :data:`MARKER` line, plain text.
- ``/headers`` — the request as received (the eepsite's handler): what a clearnet site learns.
- ``/bytes/{n}`` — ``n`` deterministic bytes (the eepsite's handler).
"""

from __future__ import annotations

from aiohttp import web

from testnet.eepsite import headers, some_bytes

#: A line only this server's front page contains.
MARKER = "served-by: www.example.test (i2proxy test network)"
CLEARNET_TEXT = f"Hello from the clearnet (test)\n{MARKER}\n"


async def front_page(request: web.Request) -> web.Response:
    return web.Response(text=CLEARNET_TEXT)


def make_clearnet_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/", front_page)
    app.router.add_route("*", "/headers", headers)
    app.router.add_get("/bytes/{n}", some_bytes)
    return app
