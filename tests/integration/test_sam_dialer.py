"""SAMDialer against real i2pd routers on the private network.

Our client runs on router 3 (a non-floodfill without other services); peers: the demo eepsite
(i2pd server tunnel on router 4) and our own aiohttp site behind a SAM session on router 2.
"""

from __future__ import annotations

import asyncio
import base64
import time

import pytest
import pytest_asyncio

from i2proxy.dialer.base import (
    DialError,
    InvalidTarget,
    PeerUnreachable,
    StreamStats,
)
from i2proxy.dialer.sam import SAMDialer
from i2proxy.sam import protocol

pytest.importorskip("testnet.network", reason="the private test network is not built")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(300),
    pytest.mark.asyncio(loop_scope="module"),
]

CLIENT_ROUTER = 3
SERVER_ROUTER = 2
#: A b32 that no router has a LeaseSet for.
UNKNOWN_B32 = "a" * 52 + ".b32.i2p"


def tunnel_options(testnet) -> dict[str, str]:
    length = str(testnet.tunnel_length)
    return {
        "inbound.length": length,
        "outbound.length": length,
        "inbound.quantity": "2",
        "outbound.quantity": "2",
    }


def invalid_destination_b64() -> str:
    """Well-formed base64 of a destination whose key certificate claims 4 bytes it lacks."""
    raw = bytes(384) + b"\x05\x00\x04"
    return base64.b64encode(raw).decode().replace("+", "-").replace("/", "~")


async def http_get(dialer, target: str, path: str = "/", *, timeout: float = 120) -> bytes:
    request = f"GET {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n".encode()
    reader, writer = await dialer.open_stream(target, 80, request, timeout=timeout)
    try:
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def dialer(testnet):
    """One session for the module: SESSION CREATE takes ~20 s on i2pd. Warmed up: the module
    tests what the dialer does once its session can send, not how soon a fresh one can. i2pd
    answers SESSION STATUS OK at its first inbound tunnel, and in CI of session 15 router 3
    (restarted by the restart tests before) got CANT_REACH_PEER for 7 s of young-session
    retries (dialer/young.py; PROXY.md, the offline page's known limit)."""
    host, port = testnet.routers[CLIENT_ROUTER].sam_host_port
    sam = SAMDialer(host, port, options=tunnel_options(testnet))
    await sam.start()
    deadline = time.monotonic() + 90
    while True:
        try:
            await http_get(sam, testnet.eepsite.b32, "/files/hello.txt", timeout=30)
            break
        except PeerUnreachable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(2)
    yield sam
    await sam.close()


@pytest.fixture(scope="module")
def own_site(testnet):
    from tests.integration.proxy_support import SamSite

    site = SamSite(
        testnet.routers[SERVER_ROUTER].sam_host_port,
        check_via=testnet.routers[CLIENT_ROUTER].sam_host_port,
    )
    site.start()
    yield site
    site.stop()


async def test_get_demo_eepsite_by_b32(dialer, testnet) -> None:
    body = await http_get(dialer, testnet.eepsite.b32, "/files/hello.txt")
    assert body.startswith(b"HTTP/1.1 200")
    assert b"Hello from the i2proxy demo eepsite." in body


async def test_get_demo_eepsite_by_full_destination(dialer, testnet) -> None:
    body = await http_get(dialer, testnet.eepsite.destination, "/files/hello.txt")
    assert b"Hello from the i2proxy demo eepsite." in body


async def test_stream_stats_say_the_request_did_not_ride_in_the_syn(dialer, testnet) -> None:
    request = b"GET / HTTP/1.0\r\n\r\n"
    reader, writer = await dialer.open_stream(testnet.eepsite.b32, 80, request, timeout=120)
    try:
        stats = writer.get_extra_info("stream_stats")
        assert isinstance(stats, StreamStats)
        assert stats.initial_data_in_syn is False and stats.syn_payload_bytes == 0
        assert dialer.session.flavour.value == "i2pd"
        assert (await asyncio.wait_for(reader.read(), 120)).startswith(b"HTTP/1.0 200")
    finally:
        writer.close()


async def test_post_echo_through_our_own_site_on_another_router(dialer, own_site) -> None:
    """A SAM server on router 2, our SAM client on router 3: bytes both ways, 256 KiB body."""
    payload = bytes(range(256)) * 1024
    head = (
        f"POST /echo HTTP/1.1\r\nHost: {own_site.b32}\r\nContent-Length: {len(payload)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    reader, writer = await dialer.open_stream(own_site.b32, 80, head, timeout=120)
    try:
        writer.write(payload)
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), 120)
    finally:
        writer.close()
    header, _, body = response.partition(b"\r\n\r\n")
    assert header.startswith(b"HTTP/1.1 200")
    assert body == payload


async def test_parallel_streams_share_one_session(dialer, testnet) -> None:
    bodies = await asyncio.gather(
        *(http_get(dialer, testnet.eepsite.b32, "/files/hello.txt") for _ in range(8))
    )
    assert all(b"Hello from the i2proxy demo eepsite." in b for b in bodies)
    assert dialer.client.sessions_created == 1


async def test_unknown_b32_is_peer_unreachable(dialer) -> None:
    started = time.monotonic()
    with pytest.raises(PeerUnreachable, match="CANT_REACH_PEER"):
        await dialer.open_stream(UNKNOWN_B32, 80, b"GET / HTTP/1.0\r\n\r\n", timeout=90)
    print(f"CANT_REACH_PEER after {time.monotonic() - started:.1f} s")


async def test_malformed_destination_is_invalid_target_from_the_router(dialer) -> None:
    """The router itself answers INVALID_KEY (our syntax check lets well-formed base64 pass)."""
    with pytest.raises(InvalidTarget, match="INVALID_KEY"):
        await dialer.open_stream(invalid_destination_b64(), 80, timeout=30)


@pytest.mark.parametrize("target", ["garbage", "example.i2p", "a" * 51 + ".b32.i2p", ""])
async def test_garbage_target_is_invalid_target(dialer, target: str) -> None:
    with pytest.raises(InvalidTarget):
        await dialer.open_stream(target, 80, timeout=30)


async def test_dial_errors_leave_the_dialer_usable(dialer, testnet) -> None:
    for target in (UNKNOWN_B32, invalid_destination_b64(), "garbage"):
        with pytest.raises(DialError):
            await dialer.open_stream(target, 80, timeout=90)
    assert b"Hello" in await http_get(dialer, testnet.eepsite.b32, "/files/hello.txt")


async def test_naming_lookup_of_a_b32_returns_the_full_destination(dialer, testnet) -> None:
    assert await dialer.lookup(testnet.eepsite.b32) == testnet.eepsite.destination
    assert await dialer.lookup("ME") == dialer.destination


async def test_naming_lookup_of_an_unknown_b32_is_peer_unreachable(dialer) -> None:
    with pytest.raises(PeerUnreachable):
        await dialer.lookup(UNKNOWN_B32, timeout=90)


async def test_dest_generate_gives_keys_our_parser_accepts(dialer) -> None:
    from i2proxy.i2p.keys import PrivateKeys

    public, private = await dialer.client.generate_destination()
    keys = PrivateKeys.from_sam_base64(private)
    assert keys.destination.to_base64() == public
    assert keys.destination.sig_type.name.startswith("EDDSA")


async def test_persistent_keys_give_the_same_destination(testnet) -> None:
    from i2proxy.i2p.keys import PrivateKeys

    keys = PrivateKeys.generate()
    host, port = testnet.routers[CLIENT_ROUTER].sam_host_port
    sam = SAMDialer(host, port, keys=keys, options=tunnel_options(testnet))
    await sam.start()
    try:
        assert sam.destination == keys.destination.to_base64()
        assert b"Hello" in await http_get(sam, testnet.eepsite.b32, "/files/hello.txt")
    finally:
        await sam.close()


async def test_i2pd_gives_the_same_keys_a_second_session_without_duplicated_dest(testnet) -> None:
    """i2pd 2.45.1 quirk: SESSION CREATE with keys already in use returns OK and shares the
    router-side destination (ClientContext::CreateNewLocalDestination returns the existing one);
    SAM's DUPLICATED_DEST never comes. Two i2proxy instances must not share one key file."""
    from i2proxy.i2p.keys import PrivateKeys

    keys = PrivateKeys.generate()
    host, port = testnet.routers[CLIENT_ROUTER].sam_host_port
    first = SAMDialer(host, port, keys=keys, options=tunnel_options(testnet))
    second = SAMDialer(host, port, keys=keys, options=tunnel_options(testnet))
    await first.start()
    try:
        await second.start()
        assert first.destination == second.destination == keys.destination.to_base64()
        assert first.session.session_id != second.session.session_id
    finally:
        await second.close()
        await first.close()


async def test_hello_negotiates_3_1_on_i2pd_2_45(testnet) -> None:
    """i2pd 2.45.1 offers at most 3.1, so PING (3.2) must not be used there."""
    from i2proxy.sam.client import handshake, open_socket

    host, port = testnet.routers[CLIENT_ROUTER].sam_host_port
    reader, writer = await open_socket(host, port, 5)
    try:
        version = await handshake(reader, writer)
    finally:
        writer.close()
    assert version == (3, 1)


async def test_i2pd_rejects_a_hello_it_cannot_speak(testnet) -> None:
    from i2proxy.sam.client import handshake, open_socket

    host, port = testnet.routers[CLIENT_ROUTER].sam_host_port
    reader, writer = await open_socket(host, port, 5)
    try:
        with pytest.raises(protocol.NoVersion):
            await handshake(reader, writer, "4.0", "4.1")
    finally:
        writer.close()


async def test_an_idle_session_survives_its_keepalive_probes(testnet) -> None:
    """The keepalive probes the bridge on sockets of its own and never PINGs the control socket:
    i2pd 2.58 answers a PING with PONG and closes that socket, which ended the session every
    ~30 s. Probes every second here (30 s by default; one PING on the control socket would end
    the session at once), about eight of them, on the network's i2pd 2.58 router; by hand on an
    all-2.58 network the default session stayed up 150 s idle and then fetched (docs/SAM.md)."""
    host, port = testnet.client_router("i2pd", "2.58").sam_host_port
    sam = SAMDialer(host, port, options=tunnel_options(testnet), keepalive_interval=1.0)
    await sam.start()
    try:
        await asyncio.sleep(8.5)
        assert sam.client.sessions_created == 1 and sam.client.ready
        assert sam.client.probe_failures == 0
        assert 0 <= await sam.client.ping(timeout=10) < 10  # PING (3.2+) on a probe socket
        body = await http_get(sam, testnet.eepsite.b32)
        assert body.startswith(b"HTTP/1.1 200")
        assert sam.client.sessions_created == 1
    finally:
        await sam.close()
