"""The dependency floors keep out versions with known holes, and a gzip bomb stays bounded.

A malicious feed server is the one place aiohttp decodes hostile compressed data: before
aiohttp 3.13.3 one read of a gzip bomb was inflated in a single call (a 1 MiB bomb cost
+127 MiB on 3.9.5), whatever ``fetch_feed``'s size cap said.
"""

from __future__ import annotations

import asyncio
import re
import tomllib
import tracemalloc
import zlib
from importlib.metadata import version
from pathlib import Path

import pytest

from i2proxy.naming.fetch import FeedTooLarge, fetch_feed, make_session

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
#: The first version of each package without the hole named in pyproject.toml.
SAFE = {"h11": (0, 16), "aiohttp": (3, 14, 4)}


def _floors() -> dict[str, tuple[int, ...]]:
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    floors = {}
    for dep in deps:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?>=([0-9.]+)", dep)
        assert m, f"dependency without a >= floor: {dep}"
        floors[m[1].lower()] = tuple(int(x) for x in m[2].split("."))
    return floors


def _installed(name: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version(name))[:3])


@pytest.mark.parametrize("name", sorted(SAFE))
def test_floor_excludes_known_weak_versions_and_is_installed(name):
    floor = _floors()[name]
    assert floor >= SAFE[name]
    assert _installed(name) >= floor


def _gzip_bomb(size: int) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    return b"".join(comp.compress(block) for _ in range(size >> 20)) + comp.flush()


class LoopbackDialer:
    """Opens a TCP connection to the test's own server instead of an I2P stream."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def open_stream(self, target, port=0, initial_data=b"", *, timeout=None):
        return await asyncio.open_connection("127.0.0.1", self.port)


async def test_a_gzip_bomb_feed_is_refused_without_inflating_it_in_memory():
    body = _gzip_bomb(128 << 20)  # 128 MiB of zeros in ~128 KiB
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(head + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    session = make_session(LoopbackDialer(port), lambda host: "x" * 52 + ".b32.i2p")  # type: ignore[arg-type]
    tracemalloc.start()
    try:
        with pytest.raises(FeedTooLarge):
            await fetch_feed(session, "http://bomb.i2p/hosts.txt", max_bytes=1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await session.close()
        server.close()
        await server.wait_closed()
    assert peak < 32 << 20, f"peak {peak >> 20} MiB while refusing a 1 MiB-capped feed"
