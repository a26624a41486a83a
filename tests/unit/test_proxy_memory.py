"""After a burst of connections the proxy gives memory back (docs/PROXY.md, *Memory*)."""

from __future__ import annotations

import asyncio
import gc

from i2proxy.config import Config
from i2proxy.proxy import memory
from i2proxy.proxy.server import ProxyServer
from tests.unit.proxy_support import LoopbackDialer


def test_no_release_while_connections_come_and_go_below_the_threshold():
    watch = memory.BurstWatch(min_drop=256, interval=60)
    assert not any(watch.observe(n, t) for t, n in enumerate([10, 200, 5, 300, 100, 50]))


def test_release_once_the_count_fell_to_half_its_peak_then_not_again_within_the_interval():
    watch = memory.BurstWatch(min_drop=256, interval=60)
    assert not watch.observe(5000, 0)
    assert not watch.observe(2600, 15)  # still more than half
    assert watch.observe(2400, 30)
    assert not watch.observe(3, 45)  # a second fall, too soon
    assert watch.observe(3, 91)  # fell from 2400 to 3 and a minute has passed
    assert not watch.observe(3, 200)  # nothing new since


def test_a_burst_noted_between_two_checks_is_released_at_the_next():
    watch = memory.BurstWatch(min_drop=256, interval=60)
    assert not watch.observe(10, 0)
    for count in range(11, 5001):  # 5 000 connections arrive and all leave before the next check
        watch.note(count)
    assert watch.observe(0, 15)
    assert not watch.observe(0, 90)  # nothing new since


def test_release_memory_collects_cycles_and_gives_the_heap_back():
    gc.collect()
    gc.disable()  # the cycles stay garbage until release_memory collects them
    try:
        garbage = []
        for _ in range(20_000):
            node: list = [bytearray(2048)]
            node.append(node)  # a reference cycle holding 2 KiB of heap
            garbage.append(node)
        del garbage, node
        released = memory.release_memory()
    finally:
        gc.enable()
    assert released["collected"] >= 20_000
    if released["rss_before_mb"] is not None:  # Linux: ~40 MB of heap went back
        assert released["rss_before_mb"] - released["rss_after_mb"] > 20


async def test_the_server_releases_memory_after_a_burst(monkeypatch):
    calls = _count_releases(monkeypatch, check_every=0.05)
    server = ProxyServer(Config(http_listen="127.0.0.1:0", socks_listen=""), LoopbackDialer())
    await server.start()
    try:
        clients = await _connect(server, 8)
        await asyncio.sleep(0.2)
        assert calls == []
        for _, writer in clients:
            writer.close()
        await _wait_for_a_release(calls, polls=40)
        assert calls == [1]
    finally:
        await server.close(grace=1)


async def test_the_server_sees_a_burst_that_ended_before_its_first_check(monkeypatch):
    calls = _count_releases(monkeypatch, check_every=0.5)
    server = ProxyServer(Config(http_listen="127.0.0.1:0", socks_listen=""), LoopbackDialer())
    await server.start()
    try:
        clients = await _connect(server, 8)
        await asyncio.sleep(0.05)
        for _, writer in clients:  # all gone well before the first check, 0.5 s after start
            writer.close()
        await _wait_for_a_release(calls, polls=30)
        assert calls == [1]
    finally:
        await server.close(grace=1)


def _count_releases(monkeypatch, *, check_every: float) -> list[int]:
    """Checks every ``check_every`` s, a watch that releases after a fall of 4; each release
    is counted in the returned list instead of run."""
    monkeypatch.setattr(memory, "CHECK_EVERY", check_every)
    calls: list[int] = []
    monkeypatch.setattr(memory, "release_memory", lambda: calls.append(1) or {})
    monkeypatch.setattr(memory.BurstWatch, "__init__", _small_watch)
    return calls


async def _connect(server: ProxyServer, count: int) -> list:
    host, port = server.addresses["http"]
    return [await asyncio.open_connection(host, port) for _ in range(count)]


async def _wait_for_a_release(calls: list[int], *, polls: int) -> None:
    for _ in range(polls):
        await asyncio.sleep(0.05)
        if calls:
            return


def _small_watch(self, *, min_drop=256, interval=60.0):
    self.min_drop, self.interval, self.peak, self._last = 4, 60.0, 0, -float("inf")


async def test_release_can_be_turned_off():
    server = ProxyServer(
        Config(http_listen="127.0.0.1:0", socks_listen="", release_memory=False),
        LoopbackDialer(),
    )
    await server.start()
    try:
        assert server._memory_task is None
    finally:
        await server.close(grace=1)
