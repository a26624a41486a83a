"""Host-namespace forwarder: ``127.0.0.1:P`` on the host to a router port inside the namespace.

The listening sockets are created in the host namespace *before* the helper process enters the
test network's namespace (see ``netns.enter``); every connection it then opens is inside the
namespace. When the router behind a port is stopped, the connect fails and the client's
connection is simply closed; once it runs again the same port works again.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

from i2proxy.log import get_logger
from testnet.pipe import bridge, tune

log = get_logger(__name__)
CONNECT_TIMEOUT = 10.0


def listen_on_free_port(host: str = "127.0.0.1") -> socket.socket:
    """A listening socket on a free port chosen by the kernel (in the current namespace)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind((host, 0))
    server.listen(128)
    server.setblocking(False)
    return server


class Forwarder:
    """Accepts on ``server`` and connects each client to ``127.0.0.1:target_port``."""

    def __init__(self, server: socket.socket, target_port: int) -> None:
        self.server = server
        self.target_port = target_port
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        return int(self.server.getsockname()[1])

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(self.server)
            except OSError as exc:
                log.warning("forward accept failed", error=str(exc))
                await asyncio.sleep(0.1)
                continue
            task = asyncio.ensure_future(self._handle(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _handle(self, conn: socket.socket) -> None:
        tune(conn)
        upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tune(upstream)
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await asyncio.get_running_loop().sock_connect(
                    upstream, ("127.0.0.1", self.target_port)
                )
        except (OSError, TimeoutError):
            # The router is down: refuse the client the closest way we can (an immediate reset).
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            upstream.close()
            return
        await bridge(conn, upstream)

    async def close(self) -> None:
        self.server.close()
        for task in list(self._tasks):
            task.cancel()
