"""The proxy edge against LAN neighbours and hostile clients, over real loopback sockets.

Every local page needs credentials once users are configured; silent or unauthenticated
connections live in a budget of their own and cannot starve an authenticated user.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import socket

import aiohttp
import pytest
import structlog
from structlog.testing import capture_logs

from i2proxy.config import Config
from i2proxy.proxy.server import ProxyServer
from tests.unit.proxy_support import LoopbackDialer, start_origin
from tests.unit.test_proxy_server import SITE, Book, raw, url

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
@pytest.mark.parametrize("spread", [["127.0.0.2"], [f"127.0.0.{n}" for n in range(2, 7)]])
async def test_80_silent_connections_from_other_hosts_do_not_starve_an_authenticated_request(
    proxy, spread
):
    """127.0.0.2-6 stand for LAN hosts (the proxy listens on 127.0.0.1; a client on this
    machine connects from the address it reaches, as ``raw`` does)."""
    silent = await _silent(proxy, 80, spread)
    await asyncio.sleep(0.2)
    started = asyncio.get_running_loop().time()
    reply = await _authenticated_get(proxy)
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"xxxxx")
    # Served once the oldest silent ones had their grace (1 s), long before their auth timeout.
    assert asyncio.get_running_loop().time() - started < proxy.config.auth_timeout - 1
    # Nothing of the silent ones got a client slot; the pending budget stayed bounded.
    assert proxy.stats.pending <= proxy.config.max_pending
    assert proxy.stats.pending_evicted >= 80 - proxy.config.max_pending
    for _, writer in silent:
        writer.close()


@pytest.mark.parametrize(
    "proxy",
    [{**USERS, "max_clients": 64, "auth_timeout": 1.0, "pending_grace": 0.1}],
    indirect=True,
)
async def test_80_silent_connections_from_this_machine_are_bounded_by_the_auth_timeout(proxy):
    """Clients on this machine are never closed to make room (their requests may come late
    from a busy process), so a local flood holds the budget until ``auth_timeout``: no more
    than ``max_pending`` at once, each closed after the timeout, the request behind them
    served then."""
    silent = await _silent(proxy, 80, ["127.0.0.1"])
    for _ in range(500):  # until the listener has taken what the budget allows
        if proxy.stats.pending == proxy.config.max_pending:
            break
        await asyncio.sleep(0.01)
    assert proxy.stats.pending == proxy.config.max_pending  # the rest wait in the kernel
    await asyncio.sleep(0.3)  # past the grace: still none closed to make room
    assert proxy.stats.pending_evicted == 0
    started = asyncio.get_running_loop().time()
    reply = await _authenticated_get(proxy)
    waited = asyncio.get_running_loop().time() - started
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"xxxxx")
    assert waited < 2 * proxy.config.auth_timeout + 1
    # It got in once the auth timeout had closed enough silent ones (17 of the first 64).
    assert proxy.stats.pending_evicted >= 80 - proxy.config.max_pending + 1
    assert proxy.stats.pending <= proxy.config.max_pending
    for reader, _ in silent[: proxy.config.max_pending]:  # each by its auth timeout
        assert await asyncio.wait_for(reader.read(1), 3 * proxy.config.auth_timeout) == b""
    for _, writer in silent:
        writer.close()


@pytest.mark.parametrize("proxy", [{"pending_grace": 0.1}], indirect=True)
@pytest.mark.parametrize(("client", "all_answered"), [("127.0.0.1", True), ("127.0.0.2", False)])
async def test_a_burst_whose_requests_come_late_is_answered_in_full_from_this_machine(
    proxy, client, all_answered
):
    """300 clients of one slow process connect at once and write their requests 0.5 s later
    (5 x ``pending_grace``): from this machine every one is answered; from another host
    (127.0.0.2 standing for a LAN host) the budget closes the silent ones over its
    per-address cap, as it must against a slow-loris host."""
    host, port = proxy.addresses["http"]

    async def get() -> bytes:
        reader, writer = await asyncio.open_connection(host, port, local_addr=(client, 0))
        await asyncio.sleep(0.5)
        try:
            writer.write(b"GET http://site.i2p/bytes/4 HTTP/1.1\r\nHost: site.i2p\r\n")
            writer.write(b"Connection: close\r\n\r\n")
            return await asyncio.wait_for(reader.read(), 30)
        except ConnectionError:
            return b""
        finally:
            writer.close()

    replies = await asyncio.gather(*(get() for _ in range(300)))
    answered = sum(r.startswith(b"HTTP/1.1 200 ") and r.endswith(b"xxxx") for r in replies)
    if all_answered:
        assert answered == 300 and proxy.stats.pending_evicted == 0
    else:
        assert answered < 300 and proxy.stats.pending_evicted == 300 - answered


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


@pytest.mark.parametrize(
    "proxy", [{"max_pending_per_address": 4, "pending_grace": 0.3}], indirect=True
)
async def test_per_address_cap_closes_that_address_oldest_pending_connections(proxy):
    noisy = await _silent(proxy, 10, ["127.0.0.2"])
    quiet = await _silent(proxy, 3, ["127.0.0.3"])
    assert not await _closed_by_proxy(noisy[0][0])  # the oldest is still within its grace
    await asyncio.sleep(0.4)
    closed = [await _closed_by_proxy(r) for r, _ in noisy]
    assert closed == [True] * 6 + [False] * 4  # the oldest six made room for newer ones
    assert [await _closed_by_proxy(r) for r, _ in quiet] == [False] * 3
    for _, w in noisy + quiet:
        w.close()


async def test_a_burst_of_connections_from_one_address_is_answered_in_full(proxy):
    """300 clients connect at once, far more than the pending budget (64, 16 per address):
    the kernel's accept queue holds them until there is room, none is closed unanswered
    (asyncio's own accept loop took them all at once and the budget closed most)."""
    host, port = proxy.addresses["http"]

    async def get() -> bytes:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET http://site.i2p/bytes/4 HTTP/1.1\r\nHost: site.i2p\r\n")
        writer.write(b"Connection: close\r\n\r\n")
        try:
            return await asyncio.wait_for(reader.read(), 30)
        finally:
            writer.close()

    replies = await asyncio.gather(*(get() for _ in range(300)))
    assert all(r.startswith(b"HTTP/1.1 200 ") and r.endswith(b"xxxx") for r in replies)
    assert proxy.stats.pending_evicted == 0


@pytest.mark.parametrize(
    "proxy", [{"max_pending": 4, "max_pending_per_address": 4, "pending_grace": 0.5}], indirect=True
)
async def test_a_full_budget_closes_its_oldest_connection_only_after_the_grace(proxy):
    silent = await _silent(proxy, 4, ["127.0.0.2"])
    started = asyncio.get_running_loop().time()
    reply = await asyncio.wait_for(_authenticated_get(proxy), 10)  # no users: GOOD is ignored
    waited = asyncio.get_running_loop().time() - started
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert 0.3 < waited < 3  # queued in the kernel until the oldest silent one had its grace
    assert [await _closed_by_proxy(r) for r, _ in silent] == [True, False, False, False]
    for _, writer in silent:
        writer.close()


@pytest.mark.parametrize(
    "proxy", [{"max_pending_per_address": 2, "pending_grace": 0.2}], indirect=True
)
async def test_making_room_spares_an_old_connection_whose_request_waits_unread(proxy):
    """With the event loop too busy to read a connection within the grace (1000 requests at
    once on a loaded machine), its request waits in the socket: that is our delay, not a
    silent client, so only the silent ones over the per-address cap are closed."""
    from i2proxy.proxy.context import ClientSlot
    from i2proxy.proxy.server import _Pending

    loop = asyncio.get_running_loop()
    entries = []
    for sends_request in (True, False, True, False):  # oldest first, one address, cap 2
        ours, theirs = socket.socketpair()
        _reader, writer = await asyncio.open_connection(sock=ours)
        writer.transport.pause_reading()  # the busy loop has not read it yet
        if sends_request:
            theirs.send(b"GET http://site.i2p/ HTTP/1.1\r\n\r\n")
        slot = ClientSlot("192.0.2.9", proxy._admit)
        task = asyncio.create_task(asyncio.sleep(30))
        proxy._pending[slot] = _Pending(task, writer, since=loop.time() - 1.0)
        entries.append((task, theirs))
    proxy._make_room()
    await asyncio.sleep(0.05)
    closed = [task.cancelled() for task, _ in entries]
    assert closed == [False, True, False, True]
    for task, theirs in entries:
        task.cancel()
        theirs.close()


@pytest.mark.parametrize(
    "proxy", [{"max_pending_per_address": 2, "pending_grace": 0.2}], indirect=True
)
async def test_making_room_spares_an_old_connection_whose_request_asyncio_read_but_its_task_did_not(
    proxy,
):
    """The socket is empty but the request sits in the connection's StreamReader: asyncio read
    it while the task waited for its turn on a busy loop. Not a silent client either."""
    from i2proxy.proxy.context import ClientSlot
    from i2proxy.proxy.server import _Pending

    loop = asyncio.get_running_loop()
    entries = []
    for sends_request in (True, False, True, False):  # oldest first, one address, cap 2
        ours, theirs = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=ours)
        if sends_request:
            theirs.send(b"GET http://site.i2p/ HTTP/1.1\r\n\r\n")
        slot = ClientSlot("192.0.2.9", proxy._admit)
        task = asyncio.create_task(asyncio.sleep(30))  # its turn has not come
        proxy._pending[slot] = _Pending(task, writer, since=loop.time() - 1.0, reader=reader)
        entries.append((task, theirs, reader, sends_request))
    for _ in range(100):  # until asyncio has moved both requests out of their sockets
        await asyncio.sleep(0.01)
        if all(len(r._buffer) for _, _, r, sends in entries if sends):
            break
    proxy._make_room()
    await asyncio.sleep(0.05)
    closed = [task.cancelled() for task, *_ in entries]
    assert closed == [False, True, False, True]
    for task, theirs, *_ in entries:
        task.cancel()
        theirs.close()


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


# -- address helper: framing, cross-site forms, single-use tokens bound to the URL ----------------

NEW = "n" * 52 + ".b32.i2p"


async def _helper_offer(server, session) -> tuple[dict[str, str], aiohttp.ClientResponse]:
    server.dialer.routes[NEW] = server.dialer.routes[SITE]
    async with session.get(
        f"http://new.i2p/headers?i2paddresshelper={NEW}", proxy=url(server)
    ) as resp:
        page = await resp.text()
    form = {
        "host": "new.i2p",
        "dest": NEW,
        "url": "http://new.i2p/headers",
        "token": re.search(r'name=token value="([^"]+)"', page).group(1),
        "choice": "session",
    }
    return form, resp


async def _add(server, session, form, headers=None) -> int:
    async with session.post(
        "http://proxy.i2p/add",
        data=form,
        proxy=url(server),
        headers=headers or {},
        allow_redirects=False,
    ) as resp:
        return resp.status


async def test_helper_pages_cannot_be_framed_and_send_their_origin(proxy):
    async with aiohttp.ClientSession() as session:
        _, resp = await _helper_offer(proxy, session)
    assert resp.status == 200
    assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]
    assert resp.headers["x-frame-options"] == "DENY"
    assert resp.headers["referrer-policy"] == "origin"  # so the form's Origin is not "null"


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.i2p"},
        {"Origin": "null"},
        {"Origin": "http://new.i2p.evil.i2p"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
async def test_add_from_another_site_is_refused(proxy, headers):
    async with aiohttp.ClientSession() as session:
        form, _ = await _helper_offer(proxy, session)
        assert await _add(proxy, session, form, headers) == 403
        assert proxy.resolver.resolve("new.i2p") is None
        # The token was not spent by the refused attempt: the user's own click still works.
        assert await _add(proxy, session, form, {"Origin": "http://new.i2p"}) == 303
    assert proxy.resolver.resolve("new.i2p") == NEW


async def test_add_token_is_single_use_and_bound_to_the_url(proxy):
    async with aiohttp.ClientSession() as session:
        form, _ = await _helper_offer(proxy, session)
        for evil in ("http://evil.com\\@new.i2p/", "http://new.i2p/\r\nSet-Cookie: a=b"):
            assert await _add(proxy, session, {**form, "url": evil}) == 403
        assert await _add(proxy, session, form, {"Origin": "http://new.i2p.alt"}) == 303
        assert await _add(proxy, session, form) == 403  # the same token again
    assert proxy.stats.internal_errors == 0


# -- hostile input gets the protocol's error reply, never a crash ---------------------------------


async def test_socks5_greeting_auth_and_more_than_1kib_in_one_write_is_served(proxy):
    request = (
        b"\x05\x01\x02"
        + b"\x01\x05alice\x02pw"
        + b"\x05\x01\x00\x03"
        + bytes([len(SITE)])
        + SITE.encode()
        + b"\x00\x50"
    )
    first = b"GET /bytes/3 HTTP/1.0\r\nHost: x\r\nX-Pad: " + b"p" * 1500 + b"\r\n\r\n"
    reply = await raw(proxy, request + first, "socks")
    assert reply.startswith(b"\x05\x02\x01\x00\x05\x00")
    assert reply.endswith(b"\r\n\r\nxxx")
    assert proxy.stats.internal_errors == 0


@pytest.mark.parametrize("proxy", [USERS], indirect=True)
async def test_socks5_wrong_password_and_more_than_1kib_in_one_write_is_refused(proxy):
    greeting_and_auth = b"\x05\x01\x02\x01\x05alice\x04nope"
    assert await raw(proxy, greeting_and_auth + b"x" * 2000, "socks") == b"\x05\x02\x01\x01"
    assert proxy.stats.internal_errors == 0


@pytest.mark.parametrize(
    "head",
    [
        # ¹²³ in Latin-1, the decoding of HTTP header bytes: str.isdigit() says yes, int() no.
        b"GET / HTTP/1.1\r\nHost: site.i2p:\xb9\xb2\xb3\r\n\r\n",
        b"GET http://site.i2p:\xb9\xb2\xb3/ HTTP/1.1\r\nHost: x\r\n\r\n",
        b"CONNECT site.i2p:\xb9\xb2\xb3 HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: site.i2p:¹²³\r\n\r\n".encode(),
    ],
)
async def test_unicode_digits_in_a_port_are_a_400(proxy, head):
    reply = await raw(proxy, head)
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert proxy.stats.internal_errors == 0


@pytest.mark.parametrize("token", ["¹.abc", "¹²³." + "a" * 40, "1000." + "é" * 40])
async def test_odd_add_tokens_are_a_403(proxy, token):
    async with aiohttp.ClientSession() as session:
        form, _ = await _helper_offer(proxy, session)
        assert await _add(proxy, session, {**form, "token": token}) == 403
    assert proxy.stats.internal_errors == 0


WILDCARD = {"http_listen": "0.0.0.0:0", "allow": ["127.0.0.0/8"]}


@pytest.mark.parametrize("proxy", [WILDCARD], indirect=True)
@pytest.mark.parametrize(
    "host", [b"\xff\xfe\xfd", b'a";alert(1);"', b"\xc3\xa9.example", b"[::1", b"proxy.i2p"]
)
async def test_pac_file_on_a_wildcard_bind_never_echoes_the_host_header(proxy, host):
    port = own_host(proxy)
    for head in (
        b"GET /proxy.pac HTTP/1.1\r\nHost: 127.0.0.1:" + port + b"\r\n\r\n",
        b"GET http://proxy.i2p/proxy.pac HTTP/1.1\r\nHost: " + host + b":" + port + b"\r\n\r\n",
    ):
        reply = await raw(proxy, head, read_until_close=False)
        assert reply.startswith(b"HTTP/1.1 200 ")
        # The address the client reached the proxy on, taken from the socket.
        assert b'return "PROXY 127.0.0.1:' + port + b'";' in reply
    assert proxy.stats.internal_errors == 0


# -- Content-Length and Transfer-Encoding together (RFC 9112 §6.1, §6.3) ---------------------------


async def _raw_site(answer: bytes):
    """A TCP "site" that reads one request head and sends ``answer``, then closes."""
    requests: list[bytes] = []

    async def handle(reader, writer):
        requests.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(answer)
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.close()

    site = await asyncio.start_server(handle, "127.0.0.1", 0)
    return site, site.sockets[0].getsockname()[1], requests


async def test_a_response_with_content_length_and_chunked_is_relayed_by_its_chunks(proxy):
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"a\r\n0123456789\r\n0\r\n\r\n"
    )
    site, port, _ = await _raw_site(answer)
    name = "c" * 52 + ".b32.i2p"
    proxy.dialer.routes[name] = port
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://{name}/", proxy=url(proxy)) as resp,
    ):
        assert "content-length" not in resp.headers
        assert await resp.read() == b"0123456789"
    site.close()
    assert proxy.stats.internal_errors == 0


async def test_a_request_with_content_length_and_chunked_is_a_400_and_never_sent(proxy):
    request = (
        b"POST http://site.i2p/echo HTTP/1.1\r\nHost: site.i2p\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    )
    reply = await raw(proxy, request)
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert b"connection: close" in reply.lower()
    assert proxy.dialer.opened == []


async def test_a_chunked_request_reaches_the_site_without_a_content_length(proxy):
    site, port, requests = await _raw_site(b"HTTP/1.1 204 No Content\r\n\r\n")
    name = "q" * 52 + ".b32.i2p"
    proxy.dialer.routes[name] = port
    request = (
        f"POST http://{name}/ HTTP/1.1\r\nHost: {name}\r\nTransfer-Encoding: chunked\r\n"
        "Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    ).encode()
    assert (await raw(proxy, request)).startswith(b"HTTP/1.1 204 ")
    head = requests[0].lower()
    assert b"transfer-encoding: chunked" in head and b"content-length" not in head
    site.close()


# -- a router restart under a transfer; what the log says ----------------------------------------


@contextlib.contextmanager
def all_logs():
    """Every log entry, whatever level an earlier test configured."""
    old = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with capture_logs() as logs:
            yield logs
    finally:
        structlog.configure(**old)


class _RecordingDialer(LoopbackDialer):
    """The loopback dialer, keeping the stream readers so a test can fail them as the native
    dialer does when the router goes away (``abort_all``: ``set_exception`` on each)."""

    def __init__(self, routes):
        super().__init__(routes=routes)
        self.readers: list[asyncio.StreamReader] = []

    async def open_stream(self, target, port=0, initial_data=b"", *, timeout=None):
        reader, writer = await super().open_stream(target, port, initial_data, timeout=timeout)
        self.readers.append(reader)
        return reader, writer


async def _held_site(answer: bytes):
    async def handle(reader, writer):
        await reader.read(65536)
        writer.write(answer)
        await writer.drain()
        await asyncio.sleep(30)

    site = await asyncio.start_server(handle, "127.0.0.1", 0)
    return site, site.sockets[0].getsockname()[1]


@pytest.mark.parametrize("kind", ["http", "socks"])
async def test_router_gone_mid_transfer_ends_the_client_transfer_with_one_log_line(kind):
    from python_socks import ProxyType
    from python_socks.async_.asyncio import Proxy

    from i2proxy.dialer.base import RouterUnavailable

    site, port = await _held_site(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000
    )
    dialer = _RecordingDialer({SITE: port})
    config = Config(http_listen="127.0.0.1:0", socks_listen="127.0.0.1:0", syn_window_ms=50)
    server = ProxyServer(config, dialer, Book())
    await server.start()
    try:
        with all_logs() as logs:
            if kind == "http":
                host, hport = server.addresses["http"]
                reader, writer = await asyncio.open_connection(host, hport)
                writer.write(f"GET http://{SITE}/ HTTP/1.1\r\nHost: {SITE}\r\n\r\n".encode())
            else:
                shost, sport = server.addresses["socks"]
                socks = Proxy.create(ProxyType.SOCKS5, shost, sport, rdns=True)
                sock = await socks.connect(SITE, 80, timeout=5)
                reader, writer = await asyncio.open_connection(sock=sock)
                writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            while len(got) < 5000:
                got += await asyncio.wait_for(reader.read(65536), 5)
            dialer.readers[-1].set_exception(RouterUnavailable("router restarted"))
            rest = await asyncio.wait_for(reader.read(-1), 5)  # EOF: the transfer ended
            writer.close()
            await asyncio.sleep(0.1)
        assert b"x" * 5000 in got + rest and len(got + rest) < 100000
        assert server.stats.internal_errors == 0
        loud = [e for e in logs if e["log_level"] in ("warning", "error", "critical")]
        assert loud == []
        ended = [e for e in logs if "I2P stream" in e["event"]]
        assert len(ended) == 1 and "exc_info" not in ended[0] and "exception" not in ended[0]
    finally:
        await server.close(grace=1)
        site.close()


async def test_refused_names_are_not_logged_at_info(proxy):
    from python_socks import ProxyError, ProxyType
    from python_socks.async_.asyncio import Proxy

    shost, sport = proxy.addresses["socks"]
    with all_logs() as logs:
        for name in ("detectportal.firefox.com", "secret-name.i2p"):
            socks = Proxy.create(ProxyType.SOCKS5, shost, sport, rdns=True)
            with pytest.raises(ProxyError):
                await socks.connect(name, 80, timeout=5)
    at_info = [e for e in logs if e["log_level"] != "debug"]
    assert at_info, "the refusal itself is still logged"
    assert not [e for e in at_info if "firefox" in repr(e) or "secret-name" in repr(e)]


# -- open files: the default max_clients fits ------------------------------------------------------


def test_the_open_files_limit_is_raised_to_fit_the_clients_up_to_the_hard_limit():
    """A process started with a desktop's soft limit (1024 here, 256 below) gets room for
    ``max_clients`` plus the pending budget, never above its hard limit."""
    import resource
    import subprocess
    import sys

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    first = 3000 if hard == resource.RLIM_INFINITY else min(3000, hard)
    code = (
        "import resource\n"
        "from i2proxy.proxy.listener import raise_open_files_limit as r\n"
        "print(r(3000), resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 2000))\n"
        "print(r(3000), resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard)),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == [str(first), str(first), "2000", "2000"]
