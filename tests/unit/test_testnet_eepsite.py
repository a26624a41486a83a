"""The demo eepsite's endpoints, served by aiohttp on loopback (the app itself, no I2P)."""

from __future__ import annotations

import asyncio
import gzip
import json
import os

import pytest

from testnet.eepsite import MAX_BYTES, expected_bytes, make_app


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    (tmp_path / "feed.txt").write_text("example.i2p=AAAA\n" * 50)
    (tmp_path / ".secret").write_text("no")
    return await aiohttp_client(make_app(tmp_path))


async def test_index_is_a_small_html_page(client):
    response = await client.get("/")
    assert response.status == 200
    assert response.content_type == "text/html"
    assert "private I2P network" in await response.text()


async def test_headers_come_back_exactly_as_sent_in_order_and_case(client):
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(
        b"POST /headers?x=1 HTTP/1.1\r\nHost: site.i2p\r\nX-Mixed-Case: v1\r\n"
        b"x-mixed-case: v2\r\nReferer: http://a/\r\nContent-Length: 0\r\n"
        b"Connection: close\r\n\r\n"
    )
    raw = await reader.read()
    writer.close()
    data = json.loads(raw.split(b"\r\n\r\n", 1)[1])
    assert data == {
        "method": "POST",
        "path": "/headers?x=1",
        "headers": [
            ["Host", "site.i2p"],
            ["X-Mixed-Case", "v1"],
            ["x-mixed-case", "v2"],
            ["Referer", "http://a/"],
            ["Content-Length", "0"],
            ["Connection", "close"],
        ],
    }


async def test_echo_returns_method_and_body(client):
    body = os.urandom(5000)
    response = await client.put("/echo", data=body)
    assert response.headers["X-Echo-Method"] == "PUT"
    assert await response.read() == body


async def test_bytes_are_deterministic_with_content_length(client):
    response = await client.get("/bytes/300000")
    assert response.headers["Content-Length"] == "300000"
    assert await response.read() == expected_bytes(300000)
    assert expected_bytes(10, offset=250)[:2] == bytes([250, 0])


@pytest.mark.parametrize("n", ["-1", "abc", str(MAX_BYTES + 1)])
async def test_bad_byte_counts_are_refused(client, n):
    assert (await client.get(f"/bytes/{n}")).status == 400


async def test_files_support_etag_last_modified_and_conditional_get(client):
    first = await client.get("/files/feed.txt")
    assert first.status == 200
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert (await client.get("/files/feed.txt", headers={"If-None-Match": etag})).status == 304
    assert (
        await client.get("/files/feed.txt", headers={"If-Modified-Since": modified})
    ).status == 304
    changed = await client.get("/files/feed.txt", headers={"If-None-Match": '"other"'})
    assert changed.status == 200


async def test_files_are_gzipped_when_asked(client):
    response = await client.get(
        "/files/feed.txt", headers={"Accept-Encoding": "gzip"}, auto_decompress=False
    )
    assert response.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(await response.read()) == b"example.i2p=AAAA\n" * 50


@pytest.mark.parametrize("name", ["missing.txt", ".secret", "..%2F..%2Fetc%2Fpasswd"])
async def test_files_outside_www_dir_or_hidden_are_not_found(client, name):
    assert (await client.get(f"/files/{name}")).status == 404


async def test_whoami_answers_the_b32_the_server_tunnel_reported(client):
    b32 = "a" * 52 + ".b32.i2p"
    response = await client.get("/whoami", headers={"X-I2P-DestB32": b32.upper()})
    assert response.status == 200
    assert await response.text() == b32 + "\n"
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("value", [None, "", "a" * 52 + ".b32.i2p.evil", "x" * 60, "1" * 52])
async def test_whoami_without_a_valid_tunnel_header_is_misdirected(client, value):
    headers = {} if value is None else {"X-I2P-DestB32": value}
    response = await client.get("/whoami", headers=headers)
    assert response.status == 421
    assert "port 81" in await response.text()
