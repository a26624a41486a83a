"""Replay protection and fast failure against the newer routers of the mixed network.

- our SYN names its target in its NACKs: i2pd 2.58 accepts it, and drops a SYN whose NACKs name
  another destination ("Streaming: Destination mismatch"). 2.58 checks only SYNs that did not
  come through an ECIES-X25519 session, so the server's LeaseSet is ElGamal-only here;
- Java 2.7.0 names us in its SYNs: we count them and accept them;
- a never-published destination fails as offline fast from an i2pd 2.58 router too.
"""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest

from tests.integration.i2cp_support import native_dialer, sam_session

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]


def _i2pd_258(testnet):
    return testnet.client_router("i2pd", "2.58")


def _i2pd_245(testnet):
    return testnet.client_router("i2pd", "2.45")


async def test_i2pd_258_accepts_our_syn_and_drops_one_naming_another_destination(
    testnet, monkeypatch
):
    from i2proxy.dialer import DialTimeout
    from i2proxy.i2p.keys import PrivateKeys
    from i2proxy.streaming import connection

    server_router, client_router = _i2pd_258(testnet), _i2pd_245(testnet)
    options = {"inbound.length": "1", "outbound.length": "1", "i2cp.leaseSetEncType": "0"}
    async with (
        sam_session(
            server_router.sam_host_port, options, verify_from=client_router.sam_host_port
        ) as sam,
        native_dialer(testnet, client_router.index) as dialer,
    ):
        pending = await sam.start_accept()
        reader, writer = await dialer.open_stream(sam.destination, 0, b"ping", timeout=60)
        await pending.wait(30)
        pending.writer.write(b"pong")
        await pending.writer.drain()
        assert await asyncio.wait_for(reader.readexactly(4), 30) == b"pong"
        writer.close()
        pending.writer.close()

        elsewhere = PrivateKeys.generate().destination.hash
        monkeypatch.setattr(
            connection.Connection, "_replay_nacks", lambda self: connection.replay_nacks(elsewhere)
        )
        pending = await sam.start_accept()
        with pytest.raises(DialTimeout):
            await dialer.open_stream(sam.destination, 0, b"replayed", timeout=20)
        pending.writer.close()


async def test_java_names_us_in_its_syn_and_we_accept_it(testnet):
    java = testnet.routers_of_kind("java")[0]
    async with native_dialer(testnet, _i2pd_245(testnet).index, published=True) as server:

        async def answer(reader, writer):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            writer.close()

        server.listen(answer)
        host, port = java.http_proxy_host_port
        curl = ["curl", "-sS", "--max-time", "30", "-x", f"http://{host}:{port}"]
        deadline = time.monotonic() + 180
        while server.manager.replay_protected_syns == 0 and time.monotonic() < deadline:
            url = f"http://{server.destination.b32}/"
            await asyncio.to_thread(subprocess.run, [*curl, url], capture_output=True, check=False)
        assert server.manager.replay_protected_syns >= 1
        assert server.manager.invalid_packets == 0


async def test_an_offline_destination_fails_fast_from_an_i2pd_258_router(testnet):
    from i2proxy.dialer import DestinationOffline
    from i2proxy.i2p.keys import PrivateKeys

    async with native_dialer(testnet, _i2pd_258(testnet).index) as dialer:
        started = time.monotonic()
        with pytest.raises(DestinationOffline):
            target = PrivateKeys.generate().destination
            await dialer.open_stream(target, 80, b"GET / HTTP/1.1\r\n\r\n", timeout=90)
        elapsed = time.monotonic() - started
        print(f"offline on i2pd 2.58 after {elapsed:.3f} s")
        assert elapsed < 15
