"""The native dialer (our I2CP + our streaming) against i2pd peers and against itself."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from tests.integration.i2cp_support import (
    CLIENT_ROUTER,
    SERVER_ROUTER,
    native_dialer,
    open_stream_retrying_once,
    read_exactly_hashing,
    sam_address,
    sam_session,
    tunnel_options,
    write_all,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

MB = 1 << 20


async def test_our_client_to_i2pd_sam_server_10mb_each_way(testnet):
    size = 10 * MB
    upload, download = os.urandom(size), os.urandom(size)
    # A new SAM session's LeaseSet is not always published at once (i2pd's publish race):
    # sam_session re-creates it until another router resolves it.
    sam_server = sam_session(
        sam_address(testnet, SERVER_ROUTER),
        tunnel_options(testnet),
        verify_from=sam_address(testnet, CLIENT_ROUTER),
    )
    sam = await sam_server.__aenter__()
    try:
        async with native_dialer(testnet, CLIENT_ROUTER) as dialer:
            await run_10mb_each_way(sam, dialer, upload, download, size)
    finally:
        await sam_server.__aexit__(None, None, None)


async def run_10mb_each_way(sam, dialer, upload: bytes, download: bytes, size: int) -> None:
    """Our client streams ``upload`` to the SAM server while it streams ``download`` back."""
    pending = await sam.start_accept()
    reader, writer = await dialer.open_stream(sam.destination, 0, upload[:1024], timeout=60)
    await pending.wait(timeout=60)

    async def client_side() -> str:
        sending = asyncio.create_task(write_all(writer, upload[1024:]))
        received = await read_exactly_hashing(reader, size)
        await sending
        return received

    async def server_side() -> str:
        sending = asyncio.create_task(write_all(pending.writer, download))
        received = await read_exactly_hashing(pending.reader, size)
        await sending
        return received

    client_got, server_got = await asyncio.wait_for(
        asyncio.gather(client_side(), server_side()), 240
    )
    assert server_got == hashlib.sha256(upload).hexdigest()
    assert client_got == hashlib.sha256(download).hexdigest()
    stats = writer.get_extra_info("stream_stats")
    print(f"stats: {stats}")
    assert stats.initial_data_in_syn
    writer.close()
    pending.writer.close()


async def test_our_client_to_i2pd_server_tunnel_10mb_each_way(testnet):
    """10 MB up and 10 MB back through i2pd's streaming server side (the eepsite's /echo)."""
    size = 10 * MB
    body = os.urandom(size)
    b32 = testnet.eepsite.b32
    head = (
        f"POST /echo HTTP/1.1\r\nHost: {b32}\r\nContent-Length: {size}\r\n"
        "Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
    ).encode()
    async with native_dialer(testnet, CLIENT_ROUTER) as dialer:
        # A fresh destination: a first lookup that finds nothing is asked again (dialer/young.py);
        # a first contact lost outright is dialled again (the transfer is what this tests).
        reader, writer = await open_stream_retrying_once(dialer, b32, 80, head)
        sending = asyncio.create_task(write_all(writer, body))
        status_and_headers = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 240)
        assert status_and_headers.startswith(b"HTTP/1.1 200"), status_and_headers[:100]
        length = next(
            int(line.split(b":", 1)[1])
            for line in status_and_headers.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        assert length == size
        echoed = await asyncio.wait_for(read_exactly_hashing(reader, size), 240)
        await sending
        assert echoed == hashlib.sha256(body).hexdigest()
        stats = writer.get_extra_info("stream_stats")
        print(f"stats: {stats}")
        writer.close()


async def test_i2pd_sam_client_to_our_server(testnet):
    size = 2 * MB
    request, response = os.urandom(size), os.urandom(size)
    seen: list[str] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_exactly_hashing(reader, size))
        await write_all(writer, response)
        writer.close()

    async with native_dialer(testnet, CLIENT_ROUTER, published=True) as dialer:
        dialer.listen(handler)
        # Our answers travel to the SAM session's LeaseSet: confirm it is published first.
        async with sam_session(
            sam_address(testnet, SERVER_ROUTER),
            tunnel_options(testnet),
            verify_from=sam_address(testnet, CLIENT_ROUTER),
        ) as sam:
            reader, writer = await sam.connect(dialer.destination.to_base64(), timeout=90)
            await write_all(writer, request)
            got = await asyncio.wait_for(read_exactly_hashing(reader, size), 90)
            writer.close()
    assert seen == [hashlib.sha256(request).hexdigest()]
    assert got == hashlib.sha256(response).hexdigest()


async def get_once_more_if_its_answer_was_lost(dialer, b32: str, request: bytes):
    """Open with a GET in the SYN; send it once more on ``ReplyLost``, as the HTTP proxy does.

    On first contact with a site, a SYN reply lost after our pre-ACK cannot be recovered
    (docs/STREAMING.md); the request did reach the site, so only a safe one is repeated. The CI
    run of 6b3c812 met this here. Once the site is known, a lost reply is recovered in-stream.
    """
    from i2proxy.dialer.base import ReplyLost

    try:
        return await dialer.open_stream(b32, 80, request, timeout=60)
    except ReplyLost as exc:
        print(f"first contact: {exc}; the GET is sent once more")
        return await dialer.open_stream(b32, 80, request, timeout=60)


async def test_our_client_gets_the_demo_eepsite(testnet):
    from testnet.eepsite import expected_bytes

    b32 = testnet.eepsite.b32
    async with native_dialer(testnet, CLIENT_ROUTER) as dialer:
        for path, check in (
            ("/", lambda body: b"Hello from the private I2P network" in body),
            ("/bytes/1048576", lambda body: body == expected_bytes(MB)),
        ):
            request = (f"GET {path} HTTP/1.1\r\nHost: {b32}\r\nConnection: close\r\n\r\n").encode()
            reader, writer = await get_once_more_if_its_answer_was_lost(dialer, b32, request)
            raw = await asyncio.wait_for(reader.read(), 120)
            head, _, body = raw.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head[:100]
            assert check(body), f"{path}: unexpected body ({len(body)} bytes)"
            stats = writer.get_extra_info("stream_stats")
            assert stats.initial_data_in_syn and stats.syn_payload_bytes == len(request)
            writer.close()


async def test_our_client_to_our_server_across_two_routers(testnet):
    size = 4 * MB
    upload = os.urandom(size)

    async def echo_digest(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        header = await reader.readexactly(8)
        length = int.from_bytes(header, "big")
        digest = hashlib.sha256()
        remaining = length
        while remaining:
            chunk = await reader.read(min(remaining, 1 << 16))
            if not chunk:
                return
            digest.update(chunk)
            writer.write(chunk)  # echo as it arrives: both directions busy at once
            remaining -= len(chunk)
        writer.write(digest.digest())
        await writer.drain()
        writer.close()

    async with (
        native_dialer(testnet, SERVER_ROUTER, published=True) as server,
        native_dialer(testnet, CLIENT_ROUTER) as client,
    ):
        server.listen(echo_digest, 4444)
        reader, writer = await client.open_stream(
            server.destination.b32, 4444, size.to_bytes(8, "big"), timeout=60
        )
        sending = asyncio.create_task(write_all(writer, upload))
        echoed = await asyncio.wait_for(read_exactly_hashing(reader, size), 180)
        server_digest = await asyncio.wait_for(reader.readexactly(32), 30)
        await sending
        assert echoed == hashlib.sha256(upload).hexdigest()
        assert server_digest == hashlib.sha256(upload).digest()
        assert await asyncio.wait_for(reader.read(), 30) == b""  # the server's CLOSE arrived
        writer.close()
