"""The link-delay relay: every router-to-router TCP connection passes through here.

nftables in the namespace redirects connections to a router's NTCP2 port
(``[200::N]:port``) to this relay's port for that router; the relay connects on, from the
*same* source address as the original caller (all router addresses are local to the namespace)
so the router still sees its peer's Yggdrasil address, and holds every chunk back for the
configured one-way delay. Its own sockets carry a firewall mark so they are not redirected again.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass

from i2proxy.log import get_logger
from testnet.netns import RELAY_MARK
from testnet.pipe import bridge, tune

log = get_logger(__name__)
_SO_MARK = getattr(socket, "SO_MARK", 36)
CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class RelayTarget:
    """Connections accepted on ``[::1]:listen_port`` go on to ``[address]:port``."""

    listen_port: int
    address: str
    port: int


class Relay:
    """Relays for all routers of one network, sharing one adjustable delay."""

    def __init__(self, targets: list[RelayTarget], delay_ms: float = 0.0) -> None:
        self.targets = targets
        self.delay_ms = delay_ms
        self._servers: list[socket.socket] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def delay(self) -> float:
        return self.delay_ms / 1000.0

    async def start(self) -> None:
        for target in self.targets:
            server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("::1", target.listen_port))
            server.listen(64)
            server.setblocking(False)
            self._servers.append(server)
            self._spawn(self._accept_loop(server, target))

    def _spawn(self, coro) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept_loop(self, server: socket.socket, target: RelayTarget) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, peer = await loop.sock_accept(server)
            except OSError as exc:
                log.warning("relay accept failed", error=str(exc))
                await asyncio.sleep(0.1)
                continue
            self._spawn(self._handle(conn, peer[0], target))

    async def _handle(self, conn: socket.socket, source: str, target: RelayTarget) -> None:
        tune(conn)
        upstream = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            upstream.setsockopt(socket.SOL_SOCKET, _SO_MARK, RELAY_MARK)
            upstream.bind((source, 0))
            tune(upstream)
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await asyncio.get_running_loop().sock_connect(
                    upstream, (target.address, target.port)
                )
        except (OSError, TimeoutError) as exc:
            log.debug("relay connect failed", source=source, target=target.address, error=str(exc))
            conn.close()
            upstream.close()
            return
        await bridge(conn, upstream, self.delay)

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
