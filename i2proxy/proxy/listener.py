"""Listening sockets that accept only while the server has room for another pending connection.

``asyncio.start_server`` accepts everything the kernel hands it, up to a hundred connections per
wake-up, before any of them can send a byte. A burst (a browser opening 30 connections at once
through the proxy, a benchmark opening 1000) then filled the pre-auth budget in one go and the
budget could only close the oldest to make room: most of the burst was closed unanswered. Here
the kernel's accept queue (``BACKLOG``) holds a burst instead, and the server accepts while
``has_room()`` says yes; otherwise it waits for :meth:`Listener.wake` or ``retry_in`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
from collections.abc import Callable

from i2proxy.log import get_logger

log = get_logger("i2proxy.proxy")

#: Connections the kernel queues while we do not accept (capped by net.core.somaxconn).
BACKLOG = 4096
#: Pause after the process ran out of file descriptors (asyncio's own accept loop does the same).
EMFILE_PAUSE = 1.0

Accepted = Callable[[asyncio.StreamReader, asyncio.StreamWriter], None]


async def bind(host: str, port: int) -> list[socket.socket]:
    """Listening, non-blocking sockets for ``host:port`` (every address ``host`` names)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE | socket.AI_NUMERICSERV
    )
    sockets: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class Listener:
    """One accept loop per socket; ``on_accept`` gets a StreamReader/StreamWriter pair."""

    def __init__(
        self,
        sockets: list[socket.socket],
        on_accept: Accepted,
        has_room: Callable[[], bool],
        retry_in: Callable[[], float | None],
        *,
        limit: int,
    ) -> None:
        self.sockets = sockets
        self._on_accept = on_accept
        self._has_room = has_room
        self._retry_in = retry_in
        self._limit = limit
        self._room = asyncio.Event()
        self._tasks = [asyncio.create_task(self._accept_loop(sock)) for sock in sockets]

    def wake(self) -> None:
        """A pending connection went away (or became old enough to evict): look again."""
        self._room.set()

    async def _wait_for_room(self) -> None:
        while not self._has_room():
            self._room.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), self._retry_in())

    async def _accept_loop(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wait_for_room()
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError as exc:  # out of descriptors, aborted handshake: try again later
                log.warning("accept failed", error=str(exc))
                await asyncio.sleep(EMFILE_PAUSE)
                continue
            await self._start(conn)

    async def _start(self, conn: socket.socket) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=conn, limit=self._limit)
        except OSError:
            conn.close()
            return
        self._on_accept(reader, writer)

    async def close(self) -> None:
        """Stop accepting and close the listening sockets (accepted connections stay)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sock in self.sockets:
            sock.close()


def raise_open_files_limit(needed: int) -> int:
    """Raise this process's soft limit on open files to ``needed`` (never above the hard
    limit, never lowering it), as nginx, HAProxy and Tor do: a desktop session's soft limit
    is often 1024, below ``max_clients`` plus the pending budget. Returns the soft limit now
    in force; beyond it accepting fails ("accept failed", retried after a pause)."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return -1
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target <= soft:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError):
        return soft
    return target


async def serve(
    host: str,
    port: int,
    on_accept: Accepted,
    has_room: Callable[[], bool],
    retry_in: Callable[[], float | None],
    *,
    limit: int,
) -> Listener:
    """Bind ``host:port`` and start accepting (see :class:`Listener`)."""
    return Listener(await bind(host, port), on_accept, has_room, retry_in, limit=limit)


__all__ = ["BACKLOG", "Listener", "raise_open_files_limit", "serve"]
