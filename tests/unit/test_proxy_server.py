"""The proxy server over real local sockets: python-socks, aiohttp and raw clients.

The dialer is a loopback one (``.b32.i2p`` name → a local aiohttp app), so these tests check the
frontends alone; tests/integration/test_proxy_*.py run the same clients over I2P.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from python_socks import ProxyError, ProxyType
from python_socks.async_.asyncio import Proxy

from i2proxy.config import Config
from i2proxy.proxy.server import ProxyServer
from tests.unit.proxy_support import LoopbackDialer, headers_of, start_origin

SITE = "s" * 52 + ".b32.i2p"
DOWN = "d" * 52 + ".b32.i2p"
REFUSING = "r" * 52 + ".b32.i2p"
OFFLINE = "o" * 52 + ".b32.i2p"


class Book:
    def __init__(self):
        self.names = {"site.i2p": SITE}
        self.saved = {}
        self.session = {}

    def lookup(self, name):
        return self.session.get(name) or self.saved.get(name) or self.names.get(name)

    def add(self, name, destination, book="local", *, replace=False):
        self.saved[name] = destination

    def add_session(self, name, destination):
        self.session[name] = destination


@pytest.fixture
async def proxy(request):
    runner, port = await start_origin()
    dialer = LoopbackDialer(routes={SITE: port}, refused={REFUSING}, offline={OFFLINE})
    options = {
        "http_listen": "127.0.0.1:0",
        "socks_listen": "127.0.0.1:0",
        "mixed_listen": "127.0.0.1:0",
        "syn_window_ms": 100,
    }
    options.update(getattr(request, "param", {}))
    config = Config(**options)
    server = ProxyServer(config, dialer, Book())
    await server.start()
    yield server
    await server.close(grace=1)
    await runner.cleanup()


def url(server, name="http"):
    host, port = server.addresses[name]
    return f"http://{host}:{port}"


async def raw(server, data: bytes, listener="http", read_until_close=True) -> bytes:
    host, port = server.addresses[listener]
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(data)
    await writer.drain()
    try:
        if read_until_close:
            return await asyncio.wait_for(reader.read(-1), 10)
        return await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()


# -- HTTP ------------------------------------------------------------------------------------------


async def test_aiohttp_get_through_http_proxy_sends_filtered_headers_in_the_first_packet(proxy):
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            "http://site.i2p/headers",
            proxy=url(proxy),
            headers={"Accept-Language": "de", "X-Forwarded-For": "10.1.1.1", "DNT": "1"},
        ) as resp,
    ):
        assert resp.status == 200
        seen = headers_of(await resp.read())
    assert seen["host"] == SITE
    assert seen["user-agent"] == "MYOB/6.66 (AN/ON)"
    assert not {"accept-language", "x-forwarded-for", "dnt", "proxy-connection"} & set(seen)
    opened = proxy.dialer.opened[-1]
    assert opened.port == 80
    assert opened.initial_data.startswith(b"GET /headers HTTP/1.1\r\nHost: " + SITE.encode())


async def test_keep_alive_serves_several_requests_on_one_browser_connection_and_one_stream(proxy):
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        for n in (10, 20000, 30):
            async with session.get(f"http://site.i2p/bytes/{n}", proxy=url(proxy)) as resp:
                assert len(await resp.read()) == n
    assert proxy.stats.connections == 1
    assert len(proxy.dialer.opened) == 1
    assert proxy.stats.streams_reused == 2


async def test_post_body_rides_with_the_head_and_comes_back(proxy):
    body = b"hello " * 500
    async with (
        aiohttp.ClientSession() as session,
        session.post("http://site.i2p/echo", data=body, proxy=url(proxy)) as resp,
    ):
        assert await resp.read() == body
    assert proxy.dialer.opened[-1].initial_data.endswith(body)


async def test_large_post_body_is_streamed_after_the_head(proxy):
    body = bytes(range(256)) * 4096  # 1 MiB
    async with (
        aiohttp.ClientSession() as session,
        session.put("http://site.i2p/echo", data=body, proxy=url(proxy)) as resp,
    ):
        assert await resp.read() == body


async def test_expect_100_continue_is_answered_by_the_proxy(proxy):
    body = b"x" * 5000
    request = (
        b"POST http://site.i2p/echo HTTP/1.1\r\nHost: site.i2p\r\nExpect: 100-continue\r\n"
        b"Content-Length: 5000\r\nConnection: close\r\n\r\n"
    )
    host, port = proxy.addresses["http"]
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(request)
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 100 ")
    writer.write(body)
    rest = await asyncio.wait_for(reader.read(-1), 10)
    writer.close()
    assert rest.startswith(b"HTTP/1.1 200 ") and rest.endswith(body)
    assert b"expect" not in proxy.dialer.opened[-1].initial_data.lower()


async def test_supercookies_are_dropped_from_responses(proxy):
    reply = await raw(
        proxy, b"GET http://site.i2p/cookie HTTP/1.1\r\nHost: site.i2p\r\nConnection: close\r\n\r\n"
    )
    assert b"fine=2" in reply
    assert b"super=1" not in reply


async def test_origin_form_with_host_header_works_like_a_transparent_proxy(proxy):
    reply = await raw(
        proxy, b"GET /headers HTTP/1.1\r\nHost: site.i2p\r\nConnection: close\r\n\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize(
    ("target", "status"),
    [
        ("http://example.com/", b"403"),
        ("http://10.0.0.1/", b"403"),
        ("http://localhost:8080/", b"403"),
        ("http://unknown.i2p/", b"404"),
        ("http://" + DOWN + "/", b"504"),
        ("http://" + REFUSING + "/", b"502"),
        ("http://bad_.b32.i2p/", b"400"),
        ("https://site.i2p/", b"400"),
    ],
)
async def test_errors_get_specific_statuses_with_a_short_page(proxy, target, status):
    reply = await raw(proxy, f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 " + status + b" ")
    assert b"<!DOCTYPE html>" in reply
    assert b"cache-control: no-store" in reply


async def test_unknown_name_page_offers_configured_jump_services(proxy):
    reply = await raw(proxy, b"GET http://unknown.i2p/x HTTP/1.1\r\nHost: unknown.i2p\r\n\r\n")
    assert b"shx5vqsw7usdaunyzr2qmes2fq37oumybpudrd4jjj4e4vk4uusa.b32.i2p/jump/unknown.i2p" in reply


async def test_connect_tunnels_bytes_and_carries_the_first_bytes_in_the_syn(proxy):
    host, port = proxy.addresses["http"]
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"CONNECT site.i2p:80 HTTP/1.1\r\nHost: site.i2p:80\r\n\r\n")
    assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 200 Connection established\r\n\r\n"
    writer.write(b"GET /bytes/3 HTTP/1.0\r\n\r\n")
    reply = await asyncio.wait_for(reader.read(-1), 10)
    writer.close()
    assert reply.endswith(b"xxx")
    assert proxy.dialer.opened[-1].initial_data == b"GET /bytes/3 HTTP/1.0\r\n\r\n"


@pytest.mark.parametrize("proxy", [{"syn_window_ms": 0}], indirect=True)
async def test_failed_connect_gets_a_status_line_without_html(proxy):
    reply = await raw(proxy, f"CONNECT {DOWN}:443 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert (
        reply == b"HTTP/1.1 504 Gateway Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    reply = await raw(proxy, b"CONNECT example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 403 Forbidden\r\n") and reply.endswith(b"\r\n\r\n")


async def test_health_page_and_pac_file(proxy):
    async with aiohttp.ClientSession() as session:
        async with session.get("http://proxy.i2p/", proxy=url(proxy)) as resp:
            assert resp.status == 200
            assert "i2proxy is running" in await resp.text()
        async with session.get(url(proxy) + "/proxy.pac") as resp:
            assert resp.headers["content-type"] == "application/x-ns-proxy-autoconfig"
            pac = await resp.text()
    host, port = proxy.addresses["http"]
    assert f'return "PROXY {host}:{port}"' in pac
    assert 'return "DIRECT"' in pac


async def test_header_too_large_is_431_and_garbage_is_400(proxy):
    big = b"GET http://site.i2p/ HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 40000 + b"\r\n\r\n"
    assert (await raw(proxy, big)).startswith(b"HTTP/1.1 431 ")
    assert (await raw(proxy, b"HELLO THERE\r\n\r\n")).startswith(b"HTTP/1.1 400 ")


@pytest.mark.parametrize("proxy", [{"header_timeout": 0.3}], indirect=True)
async def test_slow_headers_get_408(proxy):
    assert (await raw(proxy, b"GET http://site.i2p/ HTTP/1.1\r\n")).startswith(b"HTTP/1.1 408 ")


# -- address helper -------------------------------------------------------------------------------


async def test_address_helper_asks_first_then_remembers_for_this_run_only(proxy):
    new = "n" * 52 + ".b32.i2p"
    proxy.dialer.routes[new] = proxy.dialer.routes[SITE]
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"http://new.i2p/headers?i2paddresshelper={new}", proxy=url(proxy)
        ) as resp:
            assert resp.status == 200
            page = await resp.text()
        assert "Nothing has been saved" in page
        token = re.search(r'name=token value="([^"]+)"', page).group(1)
        form = {"host": "new.i2p", "dest": new, "url": "http://new.i2p/headers", "token": "bad"}
        async with session.post("http://proxy.i2p/add", data=form, proxy=url(proxy)) as resp:
            assert resp.status == 403
        form["token"] = token
        form["choice"] = "session"
        async with session.post(
            "http://proxy.i2p/add", data=form, proxy=url(proxy), allow_redirects=False
        ) as resp:
            assert resp.status == 303
            assert resp.headers["location"] == "http://new.i2p/headers"
        async with session.get("http://new.i2p/headers", proxy=url(proxy)) as resp:
            assert headers_of(await resp.read())["host"] == new
    assert proxy.resolver.session == {"new.i2p": new}


async def test_address_helper_for_a_known_name_with_another_destination_is_a_conflict(proxy):
    other = "o" * 52 + ".b32.i2p"
    reply = await raw(
        proxy, f"GET http://site.i2p/?i2paddresshelper={other} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    assert reply.startswith(b"HTTP/1.1 409 ")
    assert b"Address conflict" in reply and SITE.encode() in reply
    same = await raw(
        proxy, f"GET http://site.i2p/a?i2paddresshelper={SITE} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    assert same.startswith(b"HTTP/1.1 302 ")
    assert b"location: http://site.i2p/a\r\n" in same


# -- auth and access -------------------------------------------------------------------------------


@pytest.mark.parametrize("proxy", [{"users": {"alice": "pw"}}], indirect=True)
async def test_http_proxy_auth_is_enforced(proxy):
    reply = await raw(proxy, b"GET http://site.i2p/bytes/1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 407 ")
    assert b'proxy-authenticate: Basic realm="i2proxy"' in reply
    good = base64.b64encode(b"alice:pw")
    reply = await raw(
        proxy,
        b"GET http://site.i2p/bytes/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Proxy-Authorization: Basic " + good + b"\r\n\r\n",
    )
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert b"proxy-authorization" not in proxy.dialer.opened[-1].initial_data.lower()


@pytest.mark.parametrize("proxy", [{"allow": ["10.0.0.0/8"]}], indirect=True)
async def test_clients_outside_the_allow_list_are_closed_on(proxy):
    try:
        reply = await raw(proxy, b"GET http://site.i2p/ HTTP/1.1\r\nHost: x\r\n\r\n")
    except ConnectionResetError:
        reply = b""
    assert reply == b""
    assert proxy.dialer.opened == []
    assert proxy.stats.refused == 1


@pytest.mark.parametrize("proxy", [{"max_clients": 1}], indirect=True)
async def test_too_many_clients_get_503_and_socks5_general_failure(proxy):
    host, port = proxy.addresses["http"]
    hold_reader, hold = await asyncio.open_connection(host, port)
    hold.write(b"GET http://site.i2p/bytes/1 HTTP/1.1\r\nHost: site.i2p\r\n\r\n")
    assert (await asyncio.wait_for(hold_reader.read(65536), 10)).startswith(b"HTTP/1.1 200 ")
    # The kept-alive browser connection holds the only client slot.
    busy = await raw(proxy, b"GET http://site.i2p/ HTTP/1.1\r\nHost: site.i2p\r\n\r\n")
    assert busy.startswith(b"HTTP/1.1 503 ")
    assert b"retry-after: 5\r\n" in busy
    request = b"\x05\x01\x00\x05\x01\x00\x03" + bytes([len(SITE)]) + SITE.encode() + b"\x00\x50"
    assert await raw(proxy, request, "socks") == b"\x05\x00" + b"\x05\x01\x00\x01" + bytes(6)
    hold.close()


# -- SOCKS -----------------------------------------------------------------------------------------


async def socks_get(server, proxy_type, *, rdns=True, username=None, password=None, host=SITE):
    shost, sport = server.addresses["socks"]
    socks = Proxy.create(proxy_type, shost, sport, username=username, password=password, rdns=rdns)
    sock = await socks.connect(host, 80, timeout=5)
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(b"GET /headers HTTP/1.0\r\nHost: x\r\n\r\n")
    data = await asyncio.wait_for(reader.read(-1), 10)
    writer.close()
    return data


@pytest.mark.parametrize("proxy_type", [ProxyType.SOCKS5, ProxyType.SOCKS4])
async def test_python_socks_socks5_and_socks4a_reach_the_site_with_the_request_in_the_syn(
    proxy, proxy_type
):
    data = await socks_get(proxy, proxy_type)
    assert data.startswith(b"HTTP/1.0 200 ")
    opened = proxy.dialer.opened[-1]
    assert (opened.target, opened.port) == (SITE, 80)
    assert opened.initial_data == b"GET /headers HTTP/1.0\r\nHost: x\r\n\r\n"


async def test_socks_names_from_the_address_book_work(proxy):
    assert (await socks_get(proxy, ProxyType.SOCKS5, host="site.i2p")).startswith(b"HTTP/1.0 200")


async def test_socks5_refusals_have_exact_replies(proxy):
    greeting = b"\x05\x01\x00"
    ip = await raw(proxy, greeting + b"\x05\x01\x00\x01\x01\x02\x03\x04\x00\x50", "socks")
    assert ip == b"\x05\x00" + b"\x05\x08\x00\x01" + b"\0" * 6
    name = b"example.com"
    clearnet = await raw(
        proxy, greeting + b"\x05\x01\x00\x03" + bytes([len(name)]) + name + b"\x00\x50", "socks"
    )
    assert clearnet == b"\x05\x00" + b"\x05\x02\x00\x01" + b"\0" * 6
    name = b"unknown.i2p"
    unknown = await raw(
        proxy, greeting + b"\x05\x01\x00\x03" + bytes([len(name)]) + name + b"\x00\x50", "socks"
    )
    assert unknown == b"\x05\x00" + b"\x05\x04\x00\x01" + b"\0" * 6
    socks4_ip = await raw(proxy, b"\x04\x01\x00\x50\x01\x02\x03\x04\x00", "socks")
    assert socks4_ip == b"\x00\x5b" + b"\0" * 6


async def test_python_socks_rejects_ip_targets(proxy):
    with pytest.raises(ProxyError):
        await socks_get(proxy, ProxyType.SOCKS5, rdns=False, host="127.0.0.1")


async def test_an_offline_site_gets_a_504_page_that_says_so_and_what_to_try(proxy):
    reply = await raw(proxy, f"GET http://{OFFLINE}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 504 ")
    assert b"appears to be offline" in reply
    assert b"try again in a few minutes" in reply and b"jump service" in reply


async def test_a_get_whose_answer_was_lost_at_the_open_is_sent_once_more(proxy):
    proxy.dialer.reply_lost[SITE] = 1
    async with (
        aiohttp.ClientSession() as session,
        session.get("http://site.i2p/bytes/5000", proxy=url(proxy)) as resp,
    ):
        assert resp.status == 200
        assert len(await resp.read()) == 5000
    first, again = proxy.dialer.opened
    assert again.initial_data == first.initial_data
    assert first.initial_data.startswith(b"GET /bytes/5000 HTTP/1.1\r\n")
    assert proxy.stats.requests_repeated == 1


async def test_a_get_is_sent_at_most_twice_and_a_post_once_when_answers_are_lost(proxy):
    proxy.dialer.reply_lost[SITE] = 5
    reply = await raw(proxy, b"GET http://site.i2p/bytes/10 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 502 ") and len(proxy.dialer.opened) == 2
    body = b"pay=1"
    post = b"POST http://site.i2p/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n" + body
    reply = await raw(proxy, post)
    assert reply.startswith(b"HTTP/1.1 502 ") and len(proxy.dialer.opened) == 3
    assert b"the request did reach the site" in reply
    assert proxy.stats.requests_repeated == 1


@pytest.mark.parametrize("proxy", [{"syn_window_ms": 0}], indirect=True)
async def test_an_offline_site_is_socks5_host_unreachable(proxy):
    name = OFFLINE.encode()
    reply = await raw(
        proxy, b"\x05\x01\x00\x05\x01\x00\x03" + bytes([len(name)]) + name + b"\x00\x50", "socks"
    )
    assert reply == b"\x05\x00" + b"\x05\x04\x00\x01" + b"\0" * 6


@pytest.mark.parametrize("proxy", [{"syn_window_ms": 0}], indirect=True)
async def test_without_syn_window_dial_errors_get_precise_socks_codes(proxy):
    name = DOWN.encode()
    reply = await raw(
        proxy, b"\x05\x01\x00\x05\x01\x00\x03" + bytes([len(name)]) + name + b"\x00\x50", "socks"
    )
    assert reply == b"\x05\x00" + b"\x05\x04\x00\x01" + b"\0" * 6
    name = REFUSING.encode()
    reply = await raw(
        proxy, b"\x05\x01\x00\x05\x01\x00\x03" + bytes([len(name)]) + name + b"\x00\x50", "socks"
    )
    assert reply == b"\x05\x00" + b"\x05\x05\x00\x01" + b"\0" * 6


@pytest.mark.parametrize("proxy", [{"users": {"alice": "pw"}}], indirect=True)
async def test_socks5_auth_is_enforced(proxy):
    data = await socks_get(proxy, ProxyType.SOCKS5, username="alice", password="pw")
    assert data.startswith(b"HTTP/1.0 200 ")
    with pytest.raises(ProxyError):
        await socks_get(proxy, ProxyType.SOCKS5, username="alice", password="wrong")
    with pytest.raises(ProxyError):
        await socks_get(proxy, ProxyType.SOCKS5)
    with pytest.raises(ProxyError):
        await socks_get(proxy, ProxyType.SOCKS4)


# -- mixed port ------------------------------------------------------------------------------------


async def test_mixed_port_speaks_socks5_socks4a_and_http(proxy):
    shost, sport = proxy.addresses["mixed"]
    for proxy_type in (ProxyType.SOCKS5, ProxyType.SOCKS4, ProxyType.HTTP):
        socks = Proxy.create(proxy_type, shost, sport, rdns=True)
        sock = await socks.connect(SITE, 80, timeout=5)
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(b"GET /bytes/5 HTTP/1.0\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(-1), 10)).endswith(b"xxxxx")
        writer.close()


# -- robustness ------------------------------------------------------------------------------------


VALID_REQUESTS = [
    b"GET http://site.i2p/bytes/3 HTTP/1.1\r\nHost: site.i2p\r\nAccept: */*\r\n\r\n",
    b"POST http://site.i2p/echo HTTP/1.1\r\nHost: site.i2p\r\nContent-Length: 5\r\n\r\nhello",
    b"POST http://site.i2p/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n0\r\n\r\n",
    b"CONNECT site.i2p:80 HTTP/1.1\r\nHost: site.i2p:80\r\n\r\nGET / HTTP/1.0\r\n\r\n",
    b"\x05\x01\x00\x05\x01\x00\x03\x08site.i2p\x00\x50GET /bytes/1 HTTP/1.0\r\n\r\n",
    b"\x04\x01\x00\x50\x00\x00\x00\x01u\x00site.i2p\x00GET /bytes/1 HTTP/1.0\r\n\r\n",
]


@st.composite
def mutated_requests(draw):
    """Valid requests cut short, with bytes flipped, inserted or repeated."""
    data = bytearray(draw(st.sampled_from(VALID_REQUESTS)))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["flip", "insert", "cut", "repeat"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif op == "cut":
            del data[pos:]
        else:
            data[pos:pos] = data[pos : pos + 40] * draw(st.integers(2, 200))
    return bytes(data)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(listener=st.sampled_from(["http", "socks", "mixed"]), data=mutated_requests())
async def test_fuzz_mutated_requests_get_an_answer_or_a_close(proxy, listener, data):
    host, port = proxy.addresses[listener]
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        writer.write_eof()
        await asyncio.wait_for(reader.read(-1), 10)
    except ConnectionError:
        pass
    finally:
        writer.close()
    assert proxy.stats.internal_errors == 0


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    listener=st.sampled_from(["http", "socks", "mixed"]),
    data=st.one_of(
        st.binary(max_size=3000),
        st.sampled_from(
            [
                b"\x05\x01\x00\x05\x01\x00\x03\xff",
                b"\x04\x01\x00\x50\x00\x00\x00\x01" + b"u" * 2000,
                b"GET http://site.i2p/ HTTP/1.1\r\nContent-Length: 99999999\r\n\r\nabc",
                b"POST http://site.i2p/echo HTTP/1.1\r\nHost: x\r\n"
                b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
                b"GET http://site.i2p/ HTTP/1.1\r\n" + b"X: y\r\n" * 5000,
            ]
        ),
    ),
)
async def test_fuzz_live_sockets_never_crash_the_server(proxy, listener, data):
    host, port = proxy.addresses[listener]
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        writer.write_eof()
        await asyncio.wait_for(reader.read(-1), 10)
    except ConnectionError:
        pass
    finally:
        writer.close()
    # Still serving: a good request right after garbage works.
    reply = await raw(
        proxy, b"GET http://site.i2p/bytes/2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert reply.endswith(b"xx")
    assert proxy.stats.internal_errors == 0


async def test_http_request_on_the_socks_port_gets_an_explanation(proxy):
    reply = await raw(proxy, b"GET http://site.i2p/ HTTP/1.1\r\nHost: x\r\n\r\n", "socks")
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"SOCKS port" in reply


async def test_full_destination_helper_can_be_saved_to_the_address_book(proxy):
    from i2proxy.i2p.keys import PrivateKeys

    destination = PrivateKeys.generate().destination
    helper = destination.to_base64()
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"http://fresh.i2p/x?a=1&i2paddresshelper={helper}", proxy=url(proxy)
        ) as resp:
            page = await resp.text()
        assert "Save to my address book" in page
        assert destination.b32 in page
        token = re.search(r'name=token value="([^"]+)"', page).group(1)
        dest_field = re.search(r'name=dest value="([^"]+)"', page).group(1)
        form = {
            "host": "fresh.i2p",
            "dest": dest_field,
            "url": "http://fresh.i2p/x?a=1",
            "token": token,
            "choice": "save",
        }
        async with session.post(
            "http://proxy.i2p/add", data=form, proxy=url(proxy), allow_redirects=False
        ) as resp:
            assert resp.status == 303
            assert resp.headers["location"] == "http://fresh.i2p/x?a=1"
    assert proxy.book.saved["fresh.i2p"] == destination
    assert "fresh.i2p" not in proxy.book.session


async def test_helper_save_goes_into_the_real_address_book_and_is_written_to_disk(tmp_path):
    from i2proxy.i2p.keys import PrivateKeys
    from i2proxy.naming import AddressBook

    runner, port = await start_origin()
    destination = PrivateKeys.generate().destination
    book = AddressBook.open(tmp_path, subscriptions=[])
    dialer = LoopbackDialer(routes={destination.b32: port})
    server = ProxyServer(Config(http_listen="127.0.0.1:0", socks_listen=""), dialer, book)
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            helper = destination.to_base64()
            async with session.get(
                f"http://saved.i2p/headers?i2paddresshelper={helper}", proxy=url(server)
            ) as resp:
                page = await resp.text()
            form = {
                "host": "saved.i2p",
                "dest": re.search(r'name=dest value="([^"]+)"', page).group(1),
                "url": "http://saved.i2p/headers",
                "token": re.search(r'name=token value="([^"]+)"', page).group(1),
                "choice": "save",
            }
            async with session.post("http://proxy.i2p/add", data=form, proxy=url(server)) as resp:
                seen = headers_of(await resp.read())  # followed the 303 to the site
        assert seen["host"] == destination.b32
        assert AddressBook.open(tmp_path, subscriptions=[]).lookup("saved.i2p") == destination
    finally:
        await server.close(grace=1)
        await runner.cleanup()


async def _raw_site(answer: bytes):
    """A TCP 'site' that reads a request head and sends ``answer`` (then keeps the socket)."""
    held = []

    async def handle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        held.append(writer)

    site = await asyncio.start_server(handle, "127.0.0.1", 0)
    return site, site.sockets[0].getsockname()[1], held


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
        b"garbage that is not HTTP\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    ],
)
async def test_misbehaving_sites_give_502_or_a_cut_response_never_a_hang(proxy, answer):
    site, port, held = await _raw_site(answer)
    weird = "w" * 52 + ".b32.i2p"
    proxy.dialer.routes[weird] = port
    if answer.endswith(b"short"):
        held_close = asyncio.get_running_loop().call_later(0.5, lambda: [w.close() for w in held])
    reply = await raw(proxy, f"GET http://{weird}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    if answer.endswith(b"short"):
        held_close.cancel()
        assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"short")
    else:
        assert reply.startswith(b"HTTP/1.1 502 ")
    site.close()
    assert proxy.stats.internal_errors == 0


async def test_browser_leaving_mid_response_closes_the_stream(proxy):
    host, port = proxy.addresses["http"]
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET http://site.i2p/bytes/50000000 HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.readexactly(1000)
    writer.transport.abort()
    for _ in range(100):
        await asyncio.sleep(0.02)
        if proxy.stats.clients == 0:
            break
    assert proxy.stats.clients == 0
    assert not [w for w in proxy._writers if not w.is_closing()]
    assert proxy.stats.internal_errors == 0


async def test_websocket_upgrade_passes_through_the_http_proxy(proxy):
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect("http://site.i2p/ws", proxy=url(proxy)) as ws,
    ):
        await ws.send_str("hi")
        assert (await ws.receive(timeout=5)).data == "echo:hi"
        await ws.send_str("again")
        assert (await ws.receive(timeout=5)).data == "echo:again"
    sent = proxy.dialer.opened[-1].initial_data.lower()
    assert b"connection: upgrade\r\nupgrade: websocket" in sent
    assert b"sec-websocket-key" in sent


@pytest.mark.parametrize("proxy", [{"allow": ["127.0.0.2/32"]}], indirect=True)
async def test_allow_list_admits_its_network_and_closes_on_others(proxy):
    host, port = proxy.addresses["http"]
    request = b"GET http://site.i2p/bytes/2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    reader, writer = await asyncio.open_connection(host, port, local_addr=("127.0.0.2", 0))
    writer.write(request)
    assert (await asyncio.wait_for(reader.read(-1), 10)).endswith(b"xx")
    writer.close()
    try:
        refused = await raw(proxy, request)  # from 127.0.0.1
    except ConnectionResetError:
        refused = b""
    assert refused == b""


@pytest.mark.parametrize("proxy", [{"users": {"alice": "pw"}}], indirect=True)
async def test_connect_needs_proxy_auth_too(proxy):
    reply = await raw(proxy, b"CONNECT site.i2p:80 HTTP/1.1\r\nHost: site.i2p:80\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 407 ")
    assert b'proxy-authenticate: Basic realm="i2proxy"' in reply
    assert reply.endswith(b"\r\n\r\n")
    assert proxy.dialer.opened == []


async def test_site_response_heads_are_bounded(proxy):
    huge = b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"p" * 100_000 + b"\r\n\r\n"
    site, port, _held = await _raw_site(huge)
    name = "h" * 52 + ".b32.i2p"
    proxy.dialer.routes[name] = port
    reply = await raw(
        proxy, f"GET http://{name}/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )
    assert reply.startswith(b"HTTP/1.1 502 ")
    site.close()
    fine = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + b"Set-Cookie: c=1\r\n" * 1000 + b"\r\nok"
    site, port, _held = await _raw_site(fine)
    proxy.dialer.routes[name] = port
    reply = await raw(
        proxy, f"GET http://{name}/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"ok")
    site.close()


@pytest.mark.parametrize("proxy", [{"header_timeout": 0.3, "idle_timeout": 30}], indirect=True)
async def test_a_started_head_on_a_kept_alive_connection_gets_header_timeout_not_idle(proxy):
    host, port = proxy.addresses["http"]
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET http://site.i2p/bytes/1 HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.readuntil(b"\r\n\r\nx")
    writer.write(b"GET http://site.i2p/bytes/1 HTTP/1.1\r\n")  # ... and then nothing
    reply = await asyncio.wait_for(reader.read(-1), 5)
    writer.close()
    assert reply.startswith(b"HTTP/1.1 408 ")


async def test_socks5_credentials_are_accepted_when_the_proxy_has_no_users(proxy):
    data = await socks_get(proxy, ProxyType.SOCKS5, username="isolation", password="tab-1")
    assert data.startswith(b"HTTP/1.0 200 ")


async def test_close_stops_accepting_and_ends_running_transfers_after_the_grace_period(proxy):
    host, port = proxy.addresses["http"]
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET http://site.i2p/bytes/500000000 HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.readexactly(1000)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await proxy.close(grace=0.5)
    assert loop.time() - started < 3
    with pytest.raises(OSError):
        await asyncio.open_connection(host, port)  # no longer accepting
    rest = b""
    with contextlib.suppress(ConnectionError):
        while chunk := await asyncio.wait_for(reader.read(1 << 20), 5):
            rest += chunk
    assert len(rest) < 500_000_000  # cut, not completed
    assert proxy.stats.clients == 0
    writer.close()
