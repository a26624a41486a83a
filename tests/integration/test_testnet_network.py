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


# --- the three router kinds ---------------------------------------------------------------------


async def console_version(webconsole: str) -> str | None:
    import re

    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(f"http://{webconsole}/") as r:
        match = re.search(r"Version:</b>\s*([0-9.]+)", await r.text())
    return match.group(1) if match else None


async def sam_hello_version(sam: tuple[str, int]) -> str | None:
    reader, writer = await asyncio.open_connection(*sam)
    try:
        writer.write(b"HELLO VERSION MIN=3.0 MAX=3.3\n")
        return parse_reply(await reader.readline()).get("VERSION")
    finally:
        writer.close()


async def test_every_router_is_the_kind_and_version_its_status_says(testnet: TestnetStatus):
    from testnet.network import i2cp_version

    assert testnet.mix == "mixed"
    # 2.58 uses only floodfills >= 0.9.59: every floodfill runs 2.58.
    floodfills = [r for r in testnet.routers if r.floodfill]
    assert floodfills and all(r.kind == "i2pd" and r.is_version("2.58") for r in floodfills)
    assert testnet.client_router("i2pd", "2.45.1").index == 3
    assert testnet.client_router("i2pd", "2.58").index == 5
    for router in testnet.i2pd_routers:
        assert router.webconsole is not None
        assert await console_version(router.webconsole) == router.version, router.name
    java = testnet.client_router("java")
    assert (java.kind, java.version, java.webconsole) == ("java", "2.7.0", None)
    # Java's I2CP SetDate carries its API version; its SAM speaks 3.3 (i2pd 2.45.1: 3.1).
    assert await i2cp_version(*java.i2cp_host_port) == "0.9.64"
    assert await sam_hello_version(java.sam_host_port) == "3.3"
    assert await sam_hello_version(testnet.client_router("i2pd", "2.45.1").sam_host_port) in (
        "3.0",
        "3.1",
    )
    assert await sam_hello_version(testnet.client_router("i2pd", "2.58").sam_host_port) == "3.3"


def curl_code(proxy: str, url: str) -> tuple[str, bytes]:
    proc = subprocess.run(
        ["curl", "-sS", "--max-time", "90", "-x", f"http://{proxy}", "-w", "\n%{http_code}", url],
        capture_output=True, check=False,
    )  # fmt: skip
    body, _, code = proc.stdout.rpartition(b"\n")
    return code.decode(), body


def test_java_http_proxy_and_eepsite_work_both_ways(testnet: TestnetStatus):
    assert testnet.java_http_proxy and testnet.java_eepsite
    java = testnet.routers[testnet.java_eepsite.router]
    assert java.is_java and java.http_proxy == testnet.java_http_proxy
    assert java.eepsite == testnet.java_eepsite.b32 != testnet.eepsite.b32
    for proxy, site in [
        (testnet.java_http_proxy, testnet.eepsite.b32),  # Java → i2pd 2.45.1 server
        (testnet.java_http_proxy, testnet.java_eepsite.b32),  # Java → its own server
        (testnet.http_proxy, testnet.java_eepsite.b32),  # i2pd 2.45.1 → Java server
    ]:
        code, body = curl_code(proxy, f"http://{site}/")
        assert code == "200", (proxy, site, code, body[:200])
        assert b"Hello from the private I2P network" in body
    from testnet.eepsite import expected_bytes

    code, body = curl_code(testnet.java_http_proxy, f"http://{testnet.eepsite.b32}/bytes/100000")
    assert code == "200" and body == expected_bytes(100000)


async def test_the_java_eepsite_resolves_on_every_kind_of_router(testnet: TestnetStatus):
    from testnet.samprobe import naming_lookup

    assert testnet.java_eepsite is not None
    for router in (
        testnet.client_router("i2pd", "2.45.1"),
        testnet.client_router("i2pd", "2.58"),
        testnet.client_router("java"),
    ):
        found = await naming_lookup(*router.sam_host_port, testnet.java_eepsite.b32, timeout=60)
        assert found == testnet.java_eepsite.destination, router.name
