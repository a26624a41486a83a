"""A full stream table is reported as our own limit, not as an unreachable destination.

Before, the native stack raised PeerUnreachable("too many streams") and every request failed in
1 ms with "the destination is unreachable (no lease set found)" and nothing in the log.
"""

from __future__ import annotations

import asyncio

import pytest
from python_socks import ProxyError, ProxyType
from python_socks.async_.asyncio import Proxy

from i2proxy.config import Config, load_config
from i2proxy.dialer.base import (
    DestinationOffline,
    DialTimeout,
    LocalLimitReached,
    PeerRefused,
    PeerUnreachable,
    ReplyLost,
    RouterUnavailable,
)
from i2proxy.dialer.native import dial_error
from i2proxy.i2cp.errors import RouterDisconnected
from i2proxy.proxy.cli import make_dialer
from i2proxy.proxy.server import ProxyServer
from i2proxy.streaming.errors import (
    StreamConnectTimeout,
    StreamDestinationOffline,
    StreamLimitReached,
    StreamRefused,
    StreamReplyLost,
    StreamUnreachable,
)

SITE = "s" * 52 + ".b32.i2p"


@pytest.mark.parametrize(
    ("low", "high"),
    [
        (StreamLimitReached("4096 I2P streams are open"), LocalLimitReached),
        (StreamRefused("reset"), PeerRefused),
        (StreamConnectTimeout("slow"), DialTimeout),
        (StreamUnreachable("gone"), PeerUnreachable),
        (StreamReplyLost("answer lost"), ReplyLost),
        (StreamDestinationOffline("offline"), DestinationOffline),
        (RouterDisconnected("lost"), RouterUnavailable),
    ],
)
def test_native_maps_streaming_and_i2cp_errors_to_dial_errors(low, high):
    mapped = dial_error(low)
    assert type(mapped) is high and str(low) in str(mapped)


def test_dial_timeout_is_a_timeout_error():
    assert isinstance(DialTimeout("x"), TimeoutError)


class FullDialer:
    """What the native dialer raises when its stream table is full."""

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def open_stream(self, target, port=0, initial_data=b"", *, timeout=None):
        raise dial_error(StreamLimitReached("2 I2P streams are open, the limit (max_streams)"))


@pytest.fixture
async def proxy():
    config = Config(http_listen="127.0.0.1:0", socks_listen="127.0.0.1:0", syn_window_ms=0)
    server = ProxyServer(config, FullDialer())
    await server.start()
    yield server
    await server.close(grace=1)


async def test_http_client_gets_503_naming_the_limit(proxy):
    host, port = proxy.addresses["http"]
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET http://{SITE}/ HTTP/1.1\r\nHost: {SITE}\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    body = await asyncio.wait_for(reader.read(65536), 10)
    writer.close()
    assert head.startswith(b"HTTP/1.1 503")
    assert b"limit" in body and b"no lease set" not in body
    assert proxy.stats.internal_errors == 0


async def test_socks_client_gets_general_failure(proxy):
    host, port = proxy.addresses["socks"]
    client = Proxy.create(ProxyType.SOCKS5, host, port, rdns=True)
    with pytest.raises(ProxyError) as info:
        await client.connect(SITE, 80, timeout=10)
    assert info.value.error_code == 1  # general SOCKS server failure, not "host unreachable"
    assert proxy.stats.internal_errors == 0


def test_max_streams_is_a_setting_that_reaches_the_native_stack(monkeypatch):
    monkeypatch.setenv("I2PROXY_MAX_STREAMS", "7")
    config = load_config()
    assert config.max_streams == 7
    dialer = make_dialer(Config(router="i2cp://127.0.0.1:1", max_streams=7))
    assert dialer.manager.options.max_streams == 7
