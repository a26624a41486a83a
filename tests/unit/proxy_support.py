"""A loopback dialer for exercising the proxy server over real local sockets.

It maps ``.b32.i2p`` names to TCP servers on 127.0.0.1 and records what each ``open_stream``
got, so tests can check that the first request rode along as ``initial_data``. The real I2P
backends are exercised by tests/integration/test_proxy_*.py.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from aiohttp import web

from i2proxy.dialer.base import DestinationOffline, PeerRefused, PeerUnreachable, ReplyLost


@dataclass
class Opened:
    target: object
    port: int
    initial_data: bytes


@dataclass
class LoopbackDialer:
    routes: dict[str, int] = field(default_factory=dict)
    refused: set[str] = field(default_factory=set)
    #: Names whose destination has no LeaseSet on the network (the router looked twice).
    offline: set[str] = field(default_factory=set)
    opened: list[Opened] = field(default_factory=list)
    #: Name → how many more opens raise ReplyLost after the request reached the site (it is
    #: delivered to the route and its answer dropped, as a lost SYN reply drops it).
    reply_lost: dict[str, int] = field(default_factory=dict)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def open_stream(self, target, port=0, initial_data=b"", *, timeout=None):
        name = target if isinstance(target, str) else target.b32
        self.opened.append(Opened(target, port, initial_data))
        if name in self.refused:
            raise PeerRefused(name)
        if name in self.offline:
            raise DestinationOffline(f"{name}: no LeaseSet on the network")
        if name not in self.routes:
            raise PeerUnreachable(name)
        reader, writer = await asyncio.open_connection("127.0.0.1", self.routes[name])
        writer.write(initial_data)
        await writer.drain()
        if self.reply_lost.get(name):
            self.reply_lost[name] -= 1
            writer.close()
            raise ReplyLost(f"{name}: the SYN reply was lost after the pre-ACK")
        return reader, writer


def origin_app() -> web.Application:
    """The same endpoints as the testnet eepsite: /headers, /echo, /bytes/{n}."""

    async def headers(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "headers": [
                    [k.decode("latin-1"), v.decode("latin-1")] for k, v in request.raw_headers
                ],
                "path": request.path_qs,
            }
        )

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read(), content_type="application/octet-stream")

    async def nbytes(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * int(request.match_info["n"]))

    async def cookie(request: web.Request) -> web.Response:
        response = web.Response(text="cookies")
        response.headers.add("Set-Cookie", "super=1; Domain=.i2p")
        response.headers.add("Set-Cookie", "fine=2")
        return response

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            await ws.send_str("echo:" + message.data)
        return ws

    app = web.Application()
    app.router.add_get("/ws", websocket)
    app.router.add_get("/headers", headers)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/bytes/{n}", nbytes)
    app.router.add_get("/cookie", cookie)
    return app


async def start_origin() -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(origin_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


def headers_of(body: bytes) -> dict[str, str]:
    return {k.lower(): v for k, v in json.loads(body)["headers"]}
