"""The SAM router dies mid-session: callers get RouterUnavailable at once, nothing hangs, and new
streams work again once it is back (a transient session comes back as a new destination)."""

from __future__ import annotations

import asyncio
import time

import pytest

from i2proxy.dialer.base import DialError, RouterUnavailable
from i2proxy.dialer.sam import SAMDialer
from tests.integration.i2cp_support import restartable_router

pytest.importorskip("testnet.network", reason="the private test network is not built")
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


async def get(dialer: SAMDialer, b32: str, path: str, timeout: float = 30) -> bytes:
    request = f"GET {path} HTTP/1.1\r\nHost: {b32}\r\nConnection: close\r\n\r\n".encode()
    reader, writer = await dialer.open_stream(b32, 80, request, timeout=timeout)
    try:
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


async def test_sam_router_killed_and_restarted(testnet, testnet_network) -> None:
    b32 = testnet.eepsite.b32
    router = restartable_router(testnet)
    host, port = testnet.routers[router].sam_host_port
    length = str(testnet.tunnel_length)
    dialer = SAMDialer(host, port, options={"inbound.length": length, "outbound.length": length})
    await dialer.start()
    try:
        assert (await get(dialer, b32, "/")).startswith(b"HTTP/1.1 200")
        destination = dialer.destination

        # A long download is in flight when the router dies.
        request = f"GET /bytes/67108864 HTTP/1.1\r\nHost: {b32}\r\n\r\n".encode()
        reader, writer = await dialer.open_stream(b32, 80, request, timeout=30)
        assert await asyncio.wait_for(reader.read(65536), 30)

        async def drain() -> str:
            try:
                while await reader.read(65536):
                    pass
            except (OSError, ConnectionError) as exc:
                return repr(exc)
            return "EOF"

        draining = asyncio.create_task(drain())
        killed = time.monotonic()
        await testnet_network.stop_router(router)
        outcome = await asyncio.wait_for(draining, 10)
        print(f"in-flight SAM stream ended {time.monotonic() - killed:.2f} s after: {outcome}")
        writer.close()

        # The control socket's EOF marks the session down; a new dial fails fast, not hangs.
        started = time.monotonic()
        with pytest.raises(RouterUnavailable):
            await dialer.open_stream(b32, 80, b"GET / HTTP/1.0\r\n\r\n", timeout=30)
        assert time.monotonic() - started < 1, "opening while the router is down must not hang"

        await testnet_network.start_router(router)
        returned = time.monotonic()
        body = b""
        while time.monotonic() - returned < 60:
            try:
                body = await get(dialer, b32, "/", timeout=20)
                break
            except RouterUnavailable:
                await asyncio.sleep(0.5)
            except (DialError, TimeoutError) as exc:
                # STREAM STATUS OK comes before the SYN-ACK on i2pd, so a stream whose peer
                # still answers to our old (dead) tunnels shows up as a read timeout.
                print(f"retrying after {exc!r} at {time.monotonic() - returned:.1f} s")
                await asyncio.sleep(0.5)
        recovered = time.monotonic() - returned
        print(f"new SAM stream succeeded {recovered:.1f} s after the router returned")
        assert body.startswith(b"HTTP/1.1 200"), "no working stream within 60 s"
        assert dialer.destination != destination  # transient: fresh keys, no stale peer state
        assert dialer.client.sessions_created == 2
    finally:
        started = time.monotonic()
        await asyncio.wait_for(dialer.close(), 10)
        assert time.monotonic() - started < 10
