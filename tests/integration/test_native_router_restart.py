"""The router is killed mid-session: streams fail at once, new ones work after its return."""

from __future__ import annotations

import asyncio
import time

import pytest

from i2proxy.dialer.base import DialError, RouterUnavailable
from tests.integration.i2cp_support import (
    native_dialer,
    open_stream_retrying_once,
    restartable_router,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]  # a retried first dial: +130 s


async def get(dialer, b32: str, path: str, timeout: float = 30, *, retry: bool = False) -> bytes:
    """GET ``path``; with ``retry``, a dial lost on the loaded network is made once more (the
    check before the restart, whose subject is not that dial)."""
    request = f"GET {path} HTTP/1.1\r\nHost: {b32}\r\nConnection: close\r\n\r\n".encode()
    if retry:
        reader, writer = await open_stream_retrying_once(dialer, b32, 80, request, timeout=timeout)
    else:
        reader, writer = await dialer.open_stream(b32, 80, request, timeout=timeout)
    try:
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


async def test_router_killed_and_restarted_mid_session(testnet):
    from testnet.network import Network

    network = Network(testnet.name)
    router = restartable_router(testnet)
    b32 = testnet.eepsite.b32
    try:
        async with native_dialer(testnet, router) as dialer:
            assert (await get(dialer, b32, "/", retry=True)).startswith(b"HTTP/1.1 200")
            destination = dialer.destination

            # A long download is in flight when the router dies.
            request = f"GET /bytes/67108864 HTTP/1.1\r\nHost: {b32}\r\n\r\n".encode()
            reader, writer = await dialer.open_stream(b32, 80, request, timeout=30)
            assert await asyncio.wait_for(reader.read(65536), 30)

            async def drain() -> BaseException | None:
                try:
                    while await reader.read(65536):
                        pass
                except (DialError, ConnectionError) as exc:
                    return exc
                return None

            draining = asyncio.create_task(drain())
            killed = time.monotonic()
            await network.stop_router(router)
            error = await asyncio.wait_for(draining, 5)
            failed_after = time.monotonic() - killed
            print(f"in-flight stream failed {failed_after:.2f} s after the router died: {error!r}")
            assert isinstance(error, RouterUnavailable)

            started = time.monotonic()
            with pytest.raises(RouterUnavailable):
                await dialer.open_stream(b32, 80, b"GET / HTTP/1.0\r\n\r\n", timeout=30)
            assert time.monotonic() - started < 1, "opening while the router is down must not hang"

            await network.start_router(router)  # returns once the router is usable
            returned = time.monotonic()
            body = b""
            while time.monotonic() - returned < 15:
                try:
                    body = await get(dialer, b32, "/", timeout=10)
                    break
                except DialError as exc:
                    print(f"{time.monotonic() - returned:.1f} s: {exc!r}")
                    await asyncio.sleep(0.5)
            recovered_after = time.monotonic() - returned
            print(f"new stream succeeded {recovered_after:.1f} s after the router returned")
            assert body.startswith(b"HTTP/1.1 200"), "no working stream within 15 s"
            assert dialer.destination == destination  # same destination after the reconnect
            assert dialer.client.sessions_created == 2
            writer.close()
        # Leaving the context closed the dialer within its 10 s bound: nothing hung.
        leftover = [
            t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()
        ]
        assert not [t for t in leftover if "i2cp" in t.get_name()]
    finally:
        if network.status().routers[router].pid is None:
            await network.start_router(router)
