"""A destination that is not on the network fails fast, through the dialer and the proxy.

The SYN goes with a nonce; i2pd answers MessageStatus 21 ("no LeaseSet") once its own lookup
found nothing, we look the destination up once more (I2CP HostLookup), and the dial ends in
``DestinationOffline``: the proxy answers its 504 "appears to be offline" page. Before, the SYN
went with nonce 0, the router said nothing, and the same request took the 60 s connect timeout.

And the other side of that verdict: a *live* site is not called offline because the asking
destination is young (its first lookup can say "not found"; ``dialer/young.py``), while a young
destination's true "offline" stays under the 15 s goal and an older one's is immediate.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.integration.i2cp_support import CLIENT_ROUTER, native_dialer, open_stream_retrying_once
from tests.integration.proxy_support import ProxyProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

#: The issue's goal for a known name whose destination is not on the network.
GOAL_SECONDS = 15.0


def never_published() -> str:
    """The base64 of a fresh destination nobody ever ran: certainly not on the network."""
    from i2proxy.i2p.keys import PrivateKeys

    return PrivateKeys.generate().destination.to_base64()


async def test_dialing_a_destination_that_was_never_published_fails_as_offline_fast(testnet):
    from i2proxy.dialer import DestinationOffline
    from i2proxy.dialer.young import YoungDestinationRetry
    from i2proxy.i2p.destination import Destination

    b32 = testnet.eepsite.b32
    async with native_dialer(testnet, CLIENT_ROUTER) as dialer:
        # First the live site: a fast "offline" only means something once this router's lookups
        # reach a floodfill (in one CI run none did yet, and every lookup failed in 0.01 s).
        await _fetch_live_site(dialer, b32, deadline=time.monotonic() + 180)
        for _ in range(300):  # up to 60 s for that stream's closing handshake
            if not dialer.manager.stream_count:
                break
            await asyncio.sleep(0.2)
        assert dialer.manager.stream_count == 0
        timings = []
        # While young (session < 90 s) the "not found" is looked up again at 1, 3 and 7 s
        # (dialer/young.py); then the dialer believes it at once, as an older one does.
        for rule in (dialer.young_retry, YoungDestinationRetry(young_for=0.0), None):
            if rule is not None:
                dialer.young_retry = rule
            young = dialer.young_retry.is_young(dialer.session_age())
            retries = dialer.young_lookup_retries
            target = Destination.from_base64(never_published())
            started = time.monotonic()
            with pytest.raises(DestinationOffline, match="appears to be offline"):
                await dialer.open_stream(target, 80, b"GET / HTTP/1.1\r\n\r\n", timeout=90)
            timings.append(time.monotonic() - started)
            assert (dialer.young_lookup_retries > retries) == young
            if not young:
                assert timings[-1] < 5.0, timings  # the router's "not found": no retries
        print(f"offline dial times (young, old, old): {[round(t, 3) for t in timings]} s")
        assert max(timings) < GOAL_SECONDS, timings
        assert dialer.manager.stream_count == 0
        # the session is unharmed: the live site still answers
        await _fetch_live_site(dialer, b32, deadline=time.monotonic() + 60, retry=False)


#: A session whose first inbound tunnel is ready at once (0 hops: i2pd 2.45.1 asks for our
#: LeaseSet, "session ready", immediately) while its outbound tunnel still needs a build round
#: trip through two routers — the moment i2pd answers every lookup "not found" (``!IsReady()``).
FRESH_SESSION = {
    "inbound.length": "0",
    "outbound.length": "2",
    "inbound.quantity": "2",
    "outbound.quantity": "2",
}
#: One-way link delay that makes that build take >= 0.6 s (at 0 ms it was done before our
#: first lookup: 0 of 2 dials were provoked; at 200 ms every one was, see the docs).
FRESH_LINK_DELAY_MS = 200


async def test_a_fresh_destinations_first_dial_to_a_live_site_is_not_called_offline(testnet):
    """The false "offline" of CI (a fresh destination's first dial got DestinationOffline),
    provoked on i2pd 2.45.1: the dial starts the moment the session is ready
    (``send_ready_wait=0``: no wait for our own LeaseSet to come back, as when that wait ran
    out), before the destination has an outbound tunnel. The router's first lookup of the live
    eepsite says "not found"; the young destination looks again and gets the page.

    Not provoked on i2pd 2.58: it asks for our LeaseSet only once the destination can send,
    so there the false "not found" needs lost lookup replies, which nothing here forces."""
    from i2proxy.dialer.native import NativeDialer
    from i2proxy.i2p.keys import PrivateKeys
    from testnet.network import Network

    router = testnet.client_router("i2pd", "2.45")
    b32 = testnet.eepsite.b32
    request = f"GET / HTTP/1.1\r\nHost: {b32}\r\nConnection: close\r\n\r\n".encode()
    network = Network(testnet.name)
    await network.set_link_delay(FRESH_LINK_DELAY_MS)
    dialer = NativeDialer(
        *router.i2cp_host_port,
        keys=PrivateKeys.generate(),
        options=FRESH_SESSION,
        send_ready_wait=0.0,
    )
    try:
        await dialer.start()
        started = time.monotonic()
        reader, writer = await dialer.open_stream(b32, 80, request, timeout=60)
        try:
            assert (await asyncio.wait_for(reader.read(), 60)).startswith(b"HTTP/1.1 200")
        finally:
            writer.close()
        elapsed = time.monotonic() - started
        print(
            f"{router.name}: page after {elapsed:.2f} s, "
            f"{dialer.young_lookup_retries} lookup(s) asked again"
        )
        # The case was provoked: the router's first answer for the live site was "not found".
        assert dialer.young_lookup_retries >= 1
        assert dialer.young_lookups_rescued >= 1
    finally:
        await asyncio.wait_for(dialer.close(), 10)
        await network.set_link_delay(0)


async def _fetch_live_site(dialer, b32: str, *, deadline: float, retry: bool = True) -> None:
    """GET / from the eepsite through ``dialer``; with ``retry``, until it works or ``deadline``
    (the router may not know a usable floodfill yet: i2pd 2.58 marks one unreachable for 8 min
    after a simultaneous connect, see docs/TESTNET.md)."""
    from i2proxy.dialer import DialError

    request = f"GET / HTTP/1.1\r\nHost: {b32}\r\nConnection: close\r\n\r\n".encode()
    while True:
        try:
            reader, writer = await dialer.open_stream(b32, 80, request, timeout=60)
        except (DialError, TimeoutError):
            if not retry or time.monotonic() > deadline:
                raise
            await asyncio.sleep(5)
            continue
        try:
            assert (await asyncio.wait_for(reader.read(), 60)).startswith(b"HTTP/1.1 200")
        finally:
            writer.close()
        return


async def test_a_never_published_destination_fails_as_offline_fast_on_java(testnet):
    """Java 2.7 searched 18.7 s for the SYN's LeaseSet and answered 21, and the second lookup
    took 15 s more (34 s). Now our lookup runs beside the SYN with SYN_LOOKUP_BUDGET as its
    timeout, which Java honours, and decides: 10 s, and 13.5 s from a young destination (one
    retry cut at dialer/young.py's VERDICT_TIME)."""
    from i2proxy.dialer import DestinationOffline
    from i2proxy.i2p.destination import Destination

    java = testnet.routers_of_kind("java")[0]
    # Java accepts an inbound gateway only with R + IPv4, which the test routers lack.
    async with native_dialer(testnet, java.index, options={"inbound.length": "0"}) as dialer:
        timings = []
        for _ in range(2):
            target = Destination.from_base64(never_published())
            started = time.monotonic()
            with pytest.raises(DestinationOffline, match="appears to be offline"):
                await dialer.open_stream(target, 80, b"GET / HTTP/1.1\r\n\r\n", timeout=90)
            timings.append(time.monotonic() - started)
        print(f"offline dial times on Java: {[round(t, 3) for t in timings]} s")
        assert max(timings) < GOAL_SECONDS, timings
        b32 = testnet.eepsite.b32  # the session is unharmed: a live site still answers
        request = f"GET / HTTP/1.1\r\nHost: {b32}\r\nConnection: close\r\n\r\n".encode()
        # the site's first contact with this destination, which the loaded CI machine lost once
        reader, writer = await open_stream_retrying_once(dialer, b32, 80, request)
        assert (await asyncio.wait_for(reader.read(), 60)).startswith(b"HTTP/1.1 200")
        writer.close()


def _curl(*args: str, timeout: float = 120):
    import subprocess

    return subprocess.run(
        ["curl", "-sS", "--max-time", str(int(timeout)), *args],
        capture_output=True,
        timeout=timeout + 10,
        check=False,
    )


@pytest.fixture(scope="module")
def offline_proxy(testnet, tmp_path_factory):
    """``i2proxy run`` on I2CP with ``offline.i2p`` in its book, pointing nowhere, warmed up:
    the eepsite answered 200 and a spare destination is ready for the next new site.

    ``--syn-window-ms 0``: SOCKS answers only after the dial, so its reply code is still open
    when the dial fails (with a window the client is told "connected" first, see PROXY.md).

    Why wait for the spare: the offline request is a new site, so it takes the spare. Right
    after start on a fresh test network a new destination needed 10 to 25 s before it could send
    (session ready, then its first outbound tunnel); a request waits for that, and only then
    can anything be looked up (PROXY.md, the offline 504). What is measured here is the
    verdict of a proxy that has been up for a while, as a user's is.
    """
    from i2proxy.naming import AddressBook

    data_dir = tmp_path_factory.mktemp("i2proxy-offline")
    book = AddressBook.open(data_dir, subscriptions=[])
    book.add("offline.i2p", never_published())
    book.add("eepsite.i2p", testnet.eepsite.destination)
    book.save()
    router = testnet.routers[testnet.proxy_router]
    # debug: a failed timing assertion prints the dial's lookups and SYN reports
    proxy = ProxyProcess(
        f"i2cp://{router.i2cp}", data_dir, "--syn-window-ms", "0", log_level="debug"
    )
    proxy.start()
    try:
        deadline = time.monotonic() + 150
        # --fail: a 504 page (a destination without tunnels yet can say "offline") is no answer
        while True:
            via = ["--fail", "-x", f"http://{proxy.http}"]
            result = _curl(*via, "http://eepsite.i2p/", timeout=30)
            if result.returncode == 0:
                break
            assert time.monotonic() < deadline, result.stderr[-300:]
            time.sleep(1)
        while int(proxy.health().get("pool_spares_ready", "0")) < 1:
            assert time.monotonic() < deadline, "no spare destination ready"
            time.sleep(0.5)
        yield proxy
    finally:
        assert proxy.stop() == 0


def test_a_known_name_whose_site_is_offline_gets_the_offline_page_in_under_15_s(offline_proxy):
    since = ProxyProcess.log_time_now()
    started = time.monotonic()
    result = _curl("-x", f"http://{offline_proxy.http}", "-D", "-", "http://offline.i2p/")
    elapsed = time.monotonic() - started
    print(f"offline page after {elapsed:.3f} s")
    assert result.stdout.startswith(b"HTTP/1.1 504 "), result.stdout[:300]
    assert b"appears to be offline" in result.stdout
    assert elapsed < GOAL_SECONDS, offline_proxy.timeline(since)


async def test_socks5_gets_host_unreachable_for_an_offline_site_in_under_15_s(offline_proxy):
    from python_socks import ProxyError, ProxyType
    from python_socks.async_.asyncio import Proxy

    host, port = offline_proxy.socks.split(":")
    socks = Proxy.create(ProxyType.SOCKS5, host, int(port), rdns=True)
    since = ProxyProcess.log_time_now()
    started = time.monotonic()
    with pytest.raises(ProxyError) as info:
        await socks.connect("offline.i2p", 80, timeout=90)
    elapsed = time.monotonic() - started
    print(f"SOCKS5 reply after {elapsed:.3f} s: {info.value}")
    assert info.value.error_code == 4  # host unreachable
    assert elapsed < GOAL_SECONDS, offline_proxy.timeline(since)
