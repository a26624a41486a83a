"""Proof that the private network is a real I2P network: SAM streams and i2pd's HTTP proxy."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import subprocess

import pytest

from testnet.samprobe import create_published_session, parse_reply
from testnet.status import TestnetStatus

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

TUNNEL_OPTS = "inbound.length=1 outbound.length=1 inbound.quantity=2 outbound.quantity=2"
ONE_MB = 1024 * 1024


async def sam_command(sam: tuple[str, int], line: str):
    """Open a SAM connection, say HELLO, send ``line`` and return (reader, writer, reply).

    Nothing else is written before the reply arrives: i2pd corrupts data sent in the same write
    as STREAM CONNECT.
    """
    reader, writer = await asyncio.open_connection(*sam)
    writer.write(b"HELLO VERSION MIN=3.1 MAX=3.1\n")
    assert parse_reply(await reader.readline())["RESULT"] == "OK"
    writer.write(line.encode() + b"\n")
    return reader, writer, parse_reply(await reader.readline())


async def echo_once(sam: tuple[str, int], nickname: str) -> None:
    """Accept one stream on session ``nickname`` and echo it back until the peer is done."""
    reader, writer, reply = await sam_command(sam, f"STREAM ACCEPT ID={nickname} SILENT=false")
    assert reply.get("RESULT") == "OK", reply
    await reader.readline()  # the connecting peer's destination
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def test_sam_stream_carries_1mb_between_two_routers_intact(testnet: TestnetStatus):
    server_sam = testnet.routers[3].sam_host_port
    client_sam = testnet.routers[2].sam_host_port
    tag = os.urandom(3).hex()
    server, client = await asyncio.gather(
        create_published_session(server_sam, f"srv{tag}", check_via=client_sam),
        create_published_session(client_sam, f"cli{tag}", check_via=server_sam),
    )
    server_dest = server.destination
    try:
        echo = asyncio.ensure_future(echo_once(server_sam, f"srv{tag}"))
        await asyncio.sleep(0.5)  # let STREAM ACCEPT register before the connect arrives
        reader, writer, reply = await sam_command(
            client_sam, f"STREAM CONNECT ID=cli{tag} DESTINATION={server_dest} SILENT=false"
        )
        assert reply.get("RESULT") == "OK", reply
        payload = os.urandom(ONE_MB)

        async def send() -> None:
            for i in range(0, len(payload), 32768):
                writer.write(payload[i : i + 32768])
                await writer.drain()

        sender = asyncio.ensure_future(send())
        received = await asyncio.wait_for(reader.readexactly(len(payload)), timeout=120)
        await sender
        assert hashlib.sha256(received).hexdigest() == hashlib.sha256(payload).hexdigest()
        writer.close()
        echo.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await echo
    finally:
        server.close()
        client.close()


def test_i2pd_http_proxy_fetches_the_eepsite_page_with_curl(testnet: TestnetStatus):
    proc = subprocess.run(
        ["curl", "-sS", "--max-time", "60", "-x", f"http://{testnet.http_proxy}",
         f"http://{testnet.eepsite.b32}/"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Hello from the private I2P network" in proc.stdout


def test_i2pd_socks_proxy_fetches_eepsite_bytes_with_curl(testnet: TestnetStatus):
    proc = subprocess.run(
        ["curl", "-sS", "--max-time", "60", "--socks5-hostname", testnet.socks_proxy,
         f"http://{testnet.eepsite.b32}/bytes/100000"],
        capture_output=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    from testnet.eepsite import expected_bytes

    assert proc.stdout == expected_bytes(100000)
