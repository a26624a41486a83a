"""The test network's outproxy on loopback: HTTP (absolute URI, CONNECT) and SOCKS5 to the
"clearnet" web server, names from its fixed map only, bad input answered and closed."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from aiohttp import web
from python_socks import ProxyError, ProxyType
from python_socks.async_.asyncio.v2 import Proxy

from testnet.clearnet import CLEARNET_TEXT, make_clearnet_app
from testnet.outproxy import (
    HostMap,
    ProxyRefusal,
    origin_request,
    parse_request_head,
    start_outproxy,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def outproxy(tmp_path):
    runner = web.AppRunner(make_clearnet_app())
    await runner.setup()
    clearnet = free_port()
    await web.TCPSite(runner, "127.0.0.1", clearnet).start()
    http, socks = free_port(), free_port()
    stats = tmp_path / "stats.json"
    servers = await start_outproxy("127.0.0.1", http, socks, clearnet, stats)
    yield http, socks, stats
    for server in servers:
        server.close()
    await runner.cleanup()


async def exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def test_absolute_uri_becomes_origin_form_without_hop_by_hop_headers():
    request = parse_request_head(
        b"GET http://WWW.example.test/a?b=1 HTTP/1.1\r\nHost: www.example.test\r\n"
        b"Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\nAccept: */*\r\n\r\n"
    )
    assert (request.host, request.port, request.path) == ("www.example.test", 80, "/a?b=1")
    assert origin_request(request) == (
        b"GET /a?b=1 HTTP/1.1\r\nHost: www.example.test\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\n\r\n",  # origin-form: not a proxy request
        b"GET https://www.example.test/ HTTP/1.1\r\n\r\n",
        b"CONNECT www.example.test HTTP/1.1\r\n\r\n",
        b"CONNECT www.example.test:99999 HTTP/1.1\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"GET http://www.example.test/ HTTP/1.1\r\nno colon\r\n\r\n",
    ],
)
def test_unusable_requests_are_refused_with_400(head):
    with pytest.raises(ProxyRefusal) as refusal:
        parse_request_head(head)
    assert refusal.value.status == 400


def test_only_mapped_names_and_ports_resolve():
    hosts = HostMap.clearnet(8084)
    assert hosts.resolve("WWW.Example.Test.", 80) == ("127.0.0.1", 8084)
    assert hosts.resolve("www.example.test", 443) is None
    assert hosts.resolve("127.0.0.1", 8084) is None


async def test_http_get_connect_and_refusals(outproxy):
    http, _, stats = outproxy
    response = await exchange(
        http, b"GET http://www.example.test/ HTTP/1.1\r\nHost: www.example.test\r\n\r\n"
    )
    assert response.startswith(b"HTTP/1.1 200 ") and response.endswith(CLEARNET_TEXT.encode())
    response = await exchange(
        http,
        b"CONNECT www.example.test:80 HTTP/1.1\r\n\r\n"
        b"GET /headers HTTP/1.1\r\nHost: www.example.test\r\nConnection: close\r\n\r\n",
    )
    assert response.startswith(b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200 ")
    unknown = await exchange(http, b"GET http://elsewhere.test/ HTTP/1.1\r\n\r\n")
    assert unknown.startswith(b"HTTP/1.1 502 ")
    oversized = await exchange(
        http, b"GET http://www.example.test/ HTTP/1.1\r\n" + b"X: y\r\n" * 5000
    )
    assert oversized.startswith(b"HTTP/1.1 400 ")
    assert json.loads(stats.read_text()) == {
        "http_requests": 1, "http_connects": 1, "socks5_connects": 0, "refused": 2,
    }  # fmt: skip


async def test_socks5_connects_by_name_and_refuses_addresses_and_unknown_names(outproxy):
    _, socks, stats = outproxy
    proxy = Proxy(ProxyType.SOCKS5, "127.0.0.1", socks, rdns=True)
    stream = await proxy.connect("www.example.test", 80, timeout=10)
    await stream.write(b"GET / HTTP/1.1\r\nHost: www.example.test\r\nConnection: close\r\n\r\n")
    assert (await stream.reader.read()).endswith(CLEARNET_TEXT.encode())
    await stream.close()
    for host, code in (("elsewhere.test", 4), ("127.0.0.1", 2)):
        with pytest.raises(ProxyError) as refused:
            await proxy.connect(host, 80, timeout=10)
        assert refused.value.error_code == code
    bind = b"\x05\x01\x00" + b"\x05\x02\x00\x03\x10www.example.test\x00\x50"
    assert await exchange(socks, bind) == b"\x05\x00" + bytes([5, 7, 0, 1]) + bytes(6)
    assert await exchange(socks, b"\x05\x01\x02") == b"\x05\xff"  # no acceptable method
    assert await exchange(socks, b"\x04\x01\x00") == b"\x05\xff"  # not SOCKS5
    assert json.loads(stats.read_text())["socks5_connects"] == 1
