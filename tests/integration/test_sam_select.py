"""Router auto-detection against real routers: I2CP on, I2CP off (only SAM), nothing at all."""

from __future__ import annotations

import asyncio
import socket

import pytest
import pytest_asyncio

from i2proxy.dialer.select import (
    AutoDialer,
    NoRouterFound,
    RouterURL,
    detect_router,
    make_dialer,
    probe_i2cp,
    probe_sam,
)
from tests.integration.i2cp_support import open_stream_retrying_once

pytest.importorskip("testnet.network", reason="the private test network is not built")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(300),
    pytest.mark.asyncio(loop_scope="module"),
]

CLIENT_ROUTER = 3


def free_port() -> int:
    """A loopback port nothing listens on (bound and released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def candidates(i2cp: tuple[str, int], sam: tuple[str, int]) -> list[RouterURL]:
    return [RouterURL("i2cp", *i2cp), RouterURL("sam", *sam)]


@pytest.fixture(scope="module")
def ports(testnet):
    router = testnet.routers[CLIENT_ROUTER]
    return router.i2cp_host_port, router.sam_host_port


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def nothing_but_tcp():
    """A TCP server that accepts and says nothing: an open port is not a router."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    yield ("127.0.0.1", server.sockets[0].getsockname()[1])
    server.close()
    await server.wait_closed()


async def test_probes_recognise_each_protocol_and_only_it(ports) -> None:
    i2cp, sam = ports
    # i2pd 2.45.1 echoes the client's GetDate version in its SetDate: it says nothing about i2pd.
    assert await probe_i2cp(*i2cp) == "0.9.62"
    assert await probe_sam(*sam) == "3.1"
    assert await probe_i2cp(*sam) is None  # SAM answers garbage to GetDate
    assert await probe_sam(*i2cp) is None


async def test_open_port_that_does_not_speak_is_not_a_router(nothing_but_tcp) -> None:
    assert await probe_i2cp(*nothing_but_tcp, timeout=1.0) is None
    assert await probe_sam(*nothing_but_tcp, timeout=1.0) is None


async def test_i2cp_on_is_preferred(ports) -> None:
    pytest.importorskip("i2proxy.dialer.native")
    i2cp, sam = ports
    assert await detect_router(candidates(i2cp, sam)) == RouterURL("i2cp", *i2cp)


async def test_i2cp_off_falls_back_to_sam(ports, nothing_but_tcp) -> None:
    _, sam = ports
    # Nothing on the I2CP port, then an I2CP port that is open but silent: both mean "off".
    for i2cp in (("127.0.0.1", free_port()), nothing_but_tcp):
        found = await detect_router(candidates(i2cp, sam), timeout=1.0)
        assert found == RouterURL("sam", *sam)


async def test_nothing_listening_gives_the_how_to_enable_message() -> None:
    i2cp, sam = ("127.0.0.1", free_port()), ("127.0.0.1", free_port())
    with pytest.raises(NoRouterFound) as info:
        await detect_router(candidates(i2cp, sam), timeout=1.0)
    message = str(info.value)
    assert f"I2CP 127.0.0.1:{i2cp[1]}" in message and f"SAM 127.0.0.1:{sam[1]}" in message
    assert "[i2cp]" in message and "[sam]" in message and "enabled = true" in message
    assert "Java I2P" in message and "--router" in message


async def test_auto_dialer_on_sam_only_logs_the_hint_once_and_streams(
    testnet, ports, capsys
) -> None:
    import i2proxy.dialer.select as select

    _, sam = ports
    select._hint_logged = False
    dialers = []
    try:
        for _ in range(2):
            dialer = make_dialer(
                None,
                options={"inbound.length": "1", "outbound.length": "1"},
                candidates=candidates(("127.0.0.1", free_port()), sam),
            )
            assert isinstance(dialer, AutoDialer)
            dialers.append(dialer)
            await dialer.start()
            assert dialer.backend == "sam"
        err = capsys.readouterr().err
        assert err.count("sam_fallback") == 1
        assert "[i2cp] enabled = true" in err
        request = b"GET / HTTP/1.0\r\n\r\n"
        # the backend is what this tests: a first contact lost outright is dialled again
        site = testnet.eepsite.b32
        reader, writer = await open_stream_retrying_once(dialers[0], site, 80, request)
        try:
            assert (await asyncio.wait_for(reader.read(), 60)).startswith(b"HTTP/1.0 200")
        finally:
            writer.close()
    finally:
        for dialer in dialers:
            await dialer.close()


async def test_auto_dialer_with_i2cp_on_uses_the_native_stack(testnet, ports) -> None:
    pytest.importorskip("i2proxy.dialer.native")
    i2cp, sam = ports
    dialer = make_dialer(
        None,
        options={"inbound.length": "1", "outbound.length": "1"},
        candidates=candidates(i2cp, sam),
    )
    await dialer.start()
    try:
        assert dialer.backend == "i2cp"
        assert type(dialer.inner).__name__ == "NativeDialer"
        request = b"GET / HTTP/1.0\r\n\r\n"
        # the backend is what this tests: a first contact lost outright is dialled again
        reader, writer = await open_stream_retrying_once(dialer, testnet.eepsite.b32, 80, request)
        try:
            assert (await asyncio.wait_for(reader.read(), 60)).startswith(b"HTTP/1.0 200")
        finally:
            writer.close()
    finally:
        await dialer.close()


async def test_i2proxy_run_without_any_router_exits_with_the_message(tmp_path) -> None:
    """The real command, default candidates (127.0.0.1:7654 and :7656 in this namespace)."""
    import subprocess
    import sys

    if await probe_i2cp("127.0.0.1", 7654, 1.0) or await probe_sam("127.0.0.1", 7656, 1.0):
        pytest.skip("a router answers on the default ports of this machine")
    argv = [sys.executable, "-m", "i2proxy", "run", "--http", "127.0.0.1:0", "--socks", ""]
    done = await asyncio.to_thread(
        subprocess.run,
        [*argv, "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "No I2P router answered on I2CP 127.0.0.1:7654, SAM 127.0.0.1:7656" in done.stderr
    assert "[i2cp]" in done.stderr and "enabled = true" in done.stderr
