"""The proxy edge against LAN neighbours and hostile clients, over real loopback sockets.

Every local page needs credentials once users are configured; silent or unauthenticated
connections live in a budget of their own and cannot starve an authenticated user.
"""

from __future__ import annotations

import asyncio
import base64

import pytest

from i2proxy.config import Config
from i2proxy.proxy.server import ProxyServer
from tests.unit.proxy_support import LoopbackDialer, start_origin
from tests.unit.test_proxy_server import SITE, Book, raw

GOOD = b"Proxy-Authorization: Basic " + base64.b64encode(b"alice:pw") + b"\r\n"
USERS = {"users": {"alice": "pw"}}


@pytest.fixture
async def proxy(request):
    """The proxy on loopback in front of a loopback "eepsite" (``SITE``, ``site.i2p``)."""
    runner, port = await start_origin()
    options = {
        "http_listen": "127.0.0.1:0",
        "socks_listen": "127.0.0.1:0",
        "mixed_listen": "127.0.0.1:0",
        "syn_window_ms": 100,
        **getattr(request, "param", {}),
    }
    server = ProxyServer(Config(**options), LoopbackDialer(routes={SITE: port}), Book())
    await server.start()
    yield server
    await server.close(grace=1)
    await runner.cleanup()


def own_host(server, listener="http") -> bytes:
    return f"{server.addresses[listener][1]}".encode()


# -- every page needs credentials ------------------------------------------------------------------


@pytest.mark.parametrize("proxy", [USERS], indirect=True)
@pytest.mark.parametrize("listener", ["http", "mixed"])
@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nHost: 192.0.2.7:%s\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%s\r\n\r\n",
        b"GET /proxy.pac HTTP/1.1\r\nHost: 10.1.2.3:%s\r\n\r\n",
        b"POST /add HTTP/1.1\r\nHost: 10.1.2.3:%s\r\nContent-Length: 0\r\n\r\n",
        b"GET http://proxy.i2p/ HTTP/1.1\r\nHost: proxy.i2p\r\n\r\n",
    ],
)
async def test_with_users_every_local_page_needs_credentials(proxy, listener, head):
    if b"%s" in head:
        head = head % own_host(proxy, listener)
    reply = await raw(proxy, head, listener)
    assert reply.startswith(b"HTTP/1.1 407 "), reply[:80]
    assert b"uptime_s" not in reply and b"FindProxyForURL" not in reply


@pytest.mark.parametrize("proxy", [USERS], indirect=True)
async def test_with_credentials_the_status_page_is_served(proxy):
    head = b"GET / HTTP/1.1\r\nHost: 192.0.2.7:" + own_host(proxy) + b"\r\n" + GOOD + b"\r\n"
    reply = await raw(proxy, head, read_until_close=False)
    assert reply.startswith(b"HTTP/1.1 200 ") and b"uptime_s" in reply


@pytest.mark.parametrize("proxy", [{**USERS, "public_pac": True}], indirect=True)
async def test_public_pac_serves_only_the_pac_file_without_credentials(proxy):
    pac = await raw(
        proxy,
        b"GET /proxy.pac HTTP/1.1\r\nHost: 10.1.2.3:" + own_host(proxy) + b"\r\n\r\n",
        read_until_close=False,
    )
    assert pac.startswith(b"HTTP/1.1 200 ") and b"FindProxyForURL" in pac
    status = await raw(proxy, b"GET / HTTP/1.1\r\nHost: 10.1.2.3:" + own_host(proxy) + b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 407 ")


# -- pre-auth budget ---------------------------------------------------------------------------


async def _silent(server, count: int, addresses: list[str], listener="http"):
    host, port = server.addresses[listener]
    conns = []
    for n in range(count):
        local = addresses[n % len(addresses)]
        conns.append(await asyncio.open_connection(host, port, local_addr=(local, 0)))
    return conns


async def _closed_by_proxy(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), 0.05) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


async def _authenticated_get(server) -> bytes:
    request = b"GET http://site.i2p/bytes/5 HTTP/1.1\r\nHost: site.i2p\r\n" + GOOD
    return await raw(server, request + b"Connection: close\r\n\r\n")


@pytest.mark.parametrize("proxy", [{**USERS, "max_clients": 64}], indirect=True)
@pytest.mark.parametrize("spread", [["127.0.0.1"], [f"127.0.0.{n}" for n in range(2, 7)]])
async def test_80_silent_connections_do_not_starve_an_authenticated_request(proxy, spread):
    silent = await _silent(proxy, 80, spread)
    await asyncio.sleep(0.2)
    reply = await _authenticated_get(proxy)
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"xxxxx")
    # Nothing of the silent ones got a client slot; the pending budget stayed bounded.
    assert proxy.stats.pending <= proxy.config.max_pending
    assert proxy.stats.pending_evicted >= 80 - proxy.config.max_pending
    for _, writer in silent:
        writer.close()


@pytest.mark.parametrize("proxy", [{**USERS, "max_clients": 64}], indirect=True)
async def test_80_silent_socks_connections_do_not_starve_an_authenticated_one(proxy):
    from python_socks import ProxyType
    from python_socks.async_.asyncio import Proxy

    silent = await _silent(proxy, 80, ["127.0.0.2", "127.0.0.3"], "socks")
    host, port = proxy.addresses["socks"]
    socks = Proxy.create(ProxyType.SOCKS5, host, port, username="alice", password="pw")
    sock = await socks.connect(SITE, 80, timeout=5)
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(b"GET /bytes/3 HTTP/1.0\r\nHost: x\r\n\r\n")
    assert (await asyncio.wait_for(reader.read(-1), 10)).endswith(b"\r\n\r\nxxx")
    writer.close()
    for _, w in silent:
        w.close()


@pytest.mark.parametrize("proxy", [{"max_pending_per_address": 4}], indirect=True)
async def test_per_address_cap_closes_that_address_oldest_pending_connections(proxy):
    noisy = await _silent(proxy, 10, ["127.0.0.2"])
    quiet = await _silent(proxy, 3, ["127.0.0.3"])
    await asyncio.sleep(0.2)
    closed = [await _closed_by_proxy(r) for r, _ in noisy]
    assert closed == [True] * 6 + [False] * 4  # the oldest six made room for newer ones
    assert [await _closed_by_proxy(r) for r, _ in quiet] == [False] * 3
    for _, w in noisy + quiet:
        w.close()


@pytest.mark.parametrize("proxy", [{"auth_timeout": 0.3}], indirect=True)
async def test_a_connection_that_does_not_authenticate_in_time_is_closed(proxy):
    [(reader, writer)] = await _silent(proxy, 1, ["127.0.0.1"], "socks")
    started = asyncio.get_running_loop().time()
    assert await asyncio.wait_for(reader.read(1), 5) == b""
    assert asyncio.get_running_loop().time() - started < 2
    assert proxy.stats.pending == 0 and proxy.stats.pending_evicted == 1
    writer.close()


@pytest.mark.parametrize("proxy", [{"auth_timeout": 0.3}], indirect=True)
async def test_an_authenticated_keep_alive_connection_outlives_the_auth_timeout(proxy):
    host, port = proxy.addresses["http"]
    reader, writer = await asyncio.open_connection(host, port)
    request = b"GET http://site.i2p/bytes/2 HTTP/1.1\r\nHost: site.i2p\r\n\r\n"
    writer.write(request)
    assert (await asyncio.wait_for(reader.read(65536), 5)).endswith(b"xx")
    await asyncio.sleep(0.6)
    writer.write(request)
    assert (await asyncio.wait_for(reader.read(65536), 5)).endswith(b"xx")
    writer.close()
