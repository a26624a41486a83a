"""What goes into the SYN of a SOCKS or HTTP CONNECT tunnel: the client's first write, and a
second one only when the first cannot be the whole request."""

from __future__ import annotations

import asyncio

import pytest

from i2proxy.proxy.streams import (
    COALESCE_GAP,
    SYN_PAYLOAD_TARGET,
    collect_window,
    is_bodyless_request_head,
)

GET = b"GET / HTTP/1.1\r\nHost: site.i2p\r\nAccept: */*\r\n\r\n"
POST_HEAD = b"POST /form HTTP/1.1\r\nHost: site.i2p\r\nContent-Length: 5\r\n\r\n"


@pytest.mark.parametrize(
    ("data", "whole"),
    [
        (GET, True),
        (b"HEAD /x HTTP/1.0\r\n\r\n", True),
        (b"get / http/1.1\r\nhost: a\r\n\r\n", True),
        (GET[:-2], False),  # the head is not finished
        (POST_HEAD, False),  # its body follows
        (b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", False),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", False),  # TLS, not HTTP
        (b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * SYN_PAYLOAD_TARGET + b"\r\n\r\n", False),
        (b"", False),
    ],
)
def test_a_whole_request_head_without_a_body_is_recognised(data, whole):
    assert is_bodyless_request_head(data) is whole


async def _collect(writes: list[tuple[float, bytes]]) -> tuple[bytes, float]:
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    for delay, chunk in writes:
        loop.call_later(delay, reader.feed_data, chunk)
    started = loop.time()
    first = await collect_window(reader, b"", 1.0, SYN_PAYLOAD_TARGET)
    return first, loop.time() - started


async def test_a_get_is_dialled_without_waiting_for_a_second_write():
    first, took = await _collect([(0.0, GET), (0.2, b"late")])
    assert first == GET
    assert took < COALESCE_GAP / 2


async def test_a_post_still_waits_for_its_body_written_separately():
    first, _ = await _collect([(0.0, POST_HEAD), (COALESCE_GAP / 4, b"hello")])
    assert first == POST_HEAD + b"hello"


async def test_a_head_written_in_two_parts_is_joined():
    first, _ = await _collect([(0.0, GET[:10]), (COALESCE_GAP / 4, GET[10:])])
    assert first == GET
