"""Isolation keys: the first-party rule, the SOCKS/HTTP keys, and the proxy choosing a pool
destination per key over real local sockets (against routers: test_isolation_live.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp
import pytest
from python_socks import ProxyType
from python_socks.async_.asyncio import Proxy

from i2proxy.config import Config
from i2proxy.dialer.pool import DestinationPool
from i2proxy.proxy.isolation import Isolation, first_party, http_key, site_of, socks_key
from i2proxy.proxy.server import ProxyServer
from tests.unit.proxy_support import LoopbackDialer, start_origin

A = "a" * 52 + ".b32.i2p"
B = "b" * 52 + ".b32.i2p"


def test_site_of_a_b32_is_itself_and_of_a_name_its_last_two_labels():
    assert site_of(A.upper()) == A
    assert site_of("forum.Example.i2p.") == "example.i2p"
    assert site_of("example.i2p") == "example.i2p"


def test_a_top_level_navigation_is_its_own_first_party_even_with_a_referer():
    headers = [(b"sec-fetch-dest", b"document"), (b"referer", f"http://{A}/".encode())]
    assert first_party(B, headers) == B
    assert first_party(B, [(b"sec-fetch-site", b"none")]) == B


def test_a_subresource_belongs_to_the_site_of_its_origin_or_referer():
    img = [(b"sec-fetch-dest", b"image"), (b"referer", f"http://{A}/page".encode())]
    assert first_party(B, img) == A
    cors = [(b"origin", b"http://forum.example.i2p"), (b"referer", f"http://{A}/".encode())]
    assert first_party(B, cors) == "example.i2p"
    # An iframe is not top-level: its document belongs to the embedding page.
    frame = [(b"sec-fetch-dest", b"iframe"), (b"referer", f"http://{A}/".encode())]
    assert first_party(B, frame) == A


def test_without_origin_or_referer_the_target_is_the_first_party():
    assert first_party(B, []) == B
    assert first_party(B, [(b"origin", b"null"), (b"referer", b"not a url \xff")]) == B


def test_socks_keys_follow_credentials_and_user_ids():
    key = socks_key(Isolation.SITE, credentials=("u", "p"), user_id="", users_configured=False)
    assert key == ("token", "u", "p")
    other = socks_key(Isolation.USER, credentials=("u", "q"), user_id="", users_configured=False)
    assert other != key
    user = socks_key(Isolation.USER, credentials=("u", "q"), user_id="", users_configured=True)
    assert user == ("user", "u")
    assert socks_key(Isolation.USER, credentials=None, user_id="id1", users_configured=False)
    assert socks_key(Isolation.SITE, credentials=None, user_id="", users_configured=False) is None
    assert (
        socks_key(Isolation.NONE, credentials=("u", "p"), user_id="", users_configured=False)
        is None
    )


def test_http_keys_combine_first_party_and_user():
    doc = [(b"sec-fetch-dest", b"document")]
    a = http_key(
        Isolation.SITE, target_host=A, headers=doc, credentials=None, users_configured=False
    )
    b = http_key(
        Isolation.SITE, target_host=B, headers=doc, credentials=None, users_configured=False
    )
    assert a == ("site", A) and b == ("site", B)
    alice = http_key(
        Isolation.SITE,
        target_host=A,
        headers=doc,
        credentials=("alice", "x"),
        users_configured=True,
    )
    assert alice == ("site", A, "user", "alice")
    assert (
        http_key(
            Isolation.USER, target_host=A, headers=doc, credentials=None, users_configured=False
        )
        is None
    )


@dataclass
class TaggedDialer(LoopbackDialer):
    """A loopback dialer that says which destination (dialer) opened each stream."""

    count = 0

    def __post_init__(self) -> None:
        TaggedDialer.count += 1
        self.tag = TaggedDialer.count

    async def open_stream(self, target, port=0, initial_data=b"", *, timeout=None):
        initial_data = initial_data.replace(
            b"\r\n\r\n", f"\r\nX-Dest: {self.tag}\r\n\r\n".encode(), 1
        )
        return await super().open_stream(target, port, initial_data, timeout=timeout)


@pytest.fixture
async def isolated_proxy():
    runner, port = await start_origin()
    routes = {A: port, B: port}
    pool = DestinationPool(lambda: TaggedDialer(routes=routes), max_destinations=8, spares=1)
    config = Config(
        http_listen="127.0.0.1:0",
        socks_listen="127.0.0.1:0",
        syn_window_ms=50,
        isolation={"http": "site", "socks": "site"},
    )
    server = ProxyServer(config, TaggedDialer(routes=routes), pool=pool)
    await server.start()
    await pool.start()
    yield server
    await server.close(grace=1)
    await pool.close()
    await runner.cleanup()


async def socks_dest(server, username: str, password: str) -> str:
    host, port = server.addresses["socks"]
    socks = Proxy.create(ProxyType.SOCKS5, host, port, username=username, password=password)
    sock = await socks.connect(A, 80, timeout=5)
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(b"GET /headers HTTP/1.0\r\nHost: x\r\n\r\n")
    data = await asyncio.wait_for(reader.read(-1), 10)
    writer.close()
    return data.split(b'"X-Dest", "')[1].split(b'"')[0].decode()


async def test_socks_credentials_pick_the_destination(isolated_proxy):
    alice = await socks_dest(isolated_proxy, "alice", "1")
    bob = await socks_dest(isolated_proxy, "bob", "1")
    assert alice != bob
    assert await socks_dest(isolated_proxy, "alice", "1") == alice
    assert await socks_dest(isolated_proxy, "alice", "2") not in (alice, bob)


async def test_http_first_party_picks_the_destination(isolated_proxy):
    host, port = isolated_proxy.addresses["http"]
    proxy = f"http://{host}:{port}"

    async def dest(url: str, **headers: str) -> str:
        async with (
            aiohttp.ClientSession() as session,
            session.get(url, proxy=proxy, headers=headers) as response,
        ):
            found = dict((await response.json())["headers"])
            return found["X-Dest"]

    top_a = await dest(f"http://{A}/headers", **{"Sec-Fetch-Dest": "document"})
    top_b = await dest(f"http://{B}/headers", **{"Sec-Fetch-Dest": "document"})
    embedded = await dest(
        f"http://{B}/headers", **{"Sec-Fetch-Dest": "image", "Referer": f"http://{A}/"}
    )
    assert top_a != top_b
    assert embedded == top_a
