"""The link relay: every router-to-router TCP connection passes through here.

nftables in the namespace redirects connections to a router's NTCP2 port
(``[200::N]:port``) to this relay's port for that router; the relay connects on, from the
*same* source address as the original caller (all router addresses are local to the namespace)
so the router still sees its peer's Yggdrasil address, and delivers every chunk when the link's
delay and impairments say (``testnet.impair``). Its own sockets carry a firewall mark so they are
not redirected again. One rate-capped bottleneck per directed link (router A → router B), shared
by all connections between the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass

from i2proxy.log import get_logger
from testnet.impair import (
    BOTTLENECK_QUEUE,
    Bottleneck,
    LinkCounters,
    LinkModel,
    LinkSettings,
    max_read,
)
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


class LinkSchedule:
    """The :class:`~testnet.pipe.Schedule` of one direction of one relayed connection."""

    def __init__(self, relay: Relay, bottleneck: Bottleneck) -> None:
        self.relay = relay
        self.model = LinkModel(bottleneck, relay.counters)

    def read_size(self, chunk: int) -> int:
        return max_read(self.relay.settings, chunk)

    def read_wait(self, now: float) -> float:
        if self.relay.settings.impairment.rate is None:
            return 0.0
        return self.model.bottleneck.backlog(now) - BOTTLENECK_QUEUE

    def due(self, now: float, size: int, in_flight: int) -> float:
        return self.model.schedule(self.relay.settings, now, size, in_flight)


class Relay:
    """Relays for all routers of one network, sharing one adjustable :class:`LinkSettings`."""

    def __init__(self, targets: list[RelayTarget], settings: LinkSettings | None = None) -> None:
        self.targets = targets
        self.settings = settings or LinkSettings()
        self.counters = LinkCounters()
        self._bottlenecks: dict[tuple[str, str], Bottleneck] = {}
        self._servers: list[socket.socket] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def schedule(self, source: str, destination: str) -> LinkSchedule:
        """A schedule for data from router ``source`` to router ``destination``."""
        key = (source, destination)
        if key not in self._bottlenecks:
            self._bottlenecks[key] = Bottleneck()
        return LinkSchedule(self, self._bottlenecks[key])

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
        await bridge(
            conn,
            upstream,
            self.schedule(source, target.address),
            self.schedule(target.address, source),
        )

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
