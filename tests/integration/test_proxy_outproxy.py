"""``i2proxy run --outproxy`` against the test network's outproxy, over real routers.

``www.example.test`` is resolvable only by the test outproxy (an I2P destination on the services
router), so a 200 with the clearnet page proves the request went through it; the outproxy's
counters say which kind (HTTP or SOCKS5) carried it. Clients: curl (HTTP proxy, CONNECT,
``--socks5-hostname``). Native I2CP backend: on i2pd 2.45.1 for the HTTP kind, on i2pd 2.58 for
the SOCKS5 kind.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

import pytest

from i2proxy.i2p.base64 import b32encode
from tests.integration.proxy_support import ProxyProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

CLEARNET = "http://www.example.test/"
FAILOVER = "outproxy failed; trying the next"
#: A destination nobody runs: the first outproxy of the failover run.
DEAD = "http://" + b32encode(hashlib.sha256(b"no outproxy here").digest()) + ".b32.i2p"


def curl(*args: str, timeout: int = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", str(timeout), *args],
        capture_output=True,
        timeout=timeout + 10,
        check=False,
    )


def stats(testnet) -> dict[str, int]:
    try:
        return json.loads(Path(testnet.outproxy.stats_file).read_text())
    except FileNotFoundError:
        return {"http_requests": 0, "http_connects": 0, "socks5_connects": 0, "refused": 0}


def start_proxy(
    testnet, tmp_path_factory, backend: str, *outproxies: str, router=None
) -> ProxyProcess:
    router = router or testnet.routers[testnet.proxy_router]
    url = f"sam://{router.sam}" if backend == "sam" else f"i2cp://{router.i2cp}"
    extra = ["--hops", "1"]
    for outproxy in outproxies:
        extra += ["--outproxy", outproxy]
    proxy = ProxyProcess(url, tmp_path_factory.mktemp(f"outproxy-{backend}"), *extra)
    proxy.start()
    return proxy


def stop_proxy(proxy: ProxyProcess) -> None:
    assert proxy.stop() == 0
    events = [e.get("event") for e in proxy.log_events()]
    assert "connection task failed" not in events


def first_fetch(proxy: ProxyProcess, deadline: float = 240) -> subprocess.CompletedProcess[bytes]:
    """The first clearnet GET (the outproxy destination's tunnels may still be building)."""
    end = time.monotonic() + deadline
    while True:
        result = curl("-x", f"http://{proxy.http}", "-w", "\n%{http_code}", CLEARNET)
        if result.stdout.endswith(b"\n200") or time.monotonic() > end:
            return result
        time.sleep(2)


@pytest.fixture(scope="module")
def http_kind(testnet, tmp_path_factory):
    """Failover order: a dead destination first, then the real outproxy's HTTP side."""
    proxy = start_proxy(testnet, tmp_path_factory, "i2cp", DEAD, testnet.outproxy.http)
    yield proxy
    stop_proxy(proxy)


@pytest.fixture(scope="module")
def socks5_kind(testnet, tmp_path_factory):
    """On I2CP, on an i2pd 2.58 client router where the network has one. Not SAM: i2pd's SAM
    bridge (2.45.1 and 2.58.0) has no TO_PORT for STREAM CONNECT, so every stream would land on
    the outproxy's default port (its HTTP side), never on 1080."""
    router = next(iter(testnet.routers_of_kind("i2pd", "2.58", floodfill=False)), None)
    proxy = start_proxy(testnet, tmp_path_factory, "i2cp", testnet.outproxy.socks5, router=router)
    yield proxy
    stop_proxy(proxy)


def test_http_outproxy_after_a_dead_one_serves_get_connect_and_socks_clients(testnet, http_kind):
    before = stats(testnet)
    first = first_fetch(http_kind)
    assert first.stdout.endswith(b"\n200"), first
    assert testnet.outproxy.marker.encode() in first.stdout
    assert b"Hello from the clearnet (test)" in first.stdout
    failovers = [e.get("event") for e in http_kind.log_events()].count(FAILOVER)
    assert failovers >= 1  # the dead one was tried first
    after_get = stats(testnet)
    assert after_get["http_requests"] > before["http_requests"]
    # Sticky: the next requests go straight to the working outproxy.
    connect = curl("-p", "-x", f"http://{http_kind.http}", "-w", "\n%{http_code}", CLEARNET)
    assert connect.stdout.endswith(b"\n200") and testnet.outproxy.marker.encode() in connect.stdout
    socks = curl("--socks5-hostname", http_kind.socks, CLEARNET)
    assert testnet.outproxy.marker.encode() in socks.stdout, socks
    assert stats(testnet)["http_connects"] >= after_get["http_connects"] + 2
    # ... and the dead one was not tried again for this host.
    assert [e.get("event") for e in http_kind.log_events()].count(FAILOVER) == failovers
    # The outproxy streams left from a pool destination of their own, not the shared one.
    # (a new one, or the spare, ready or still building: either is the outproxy key's alone)
    taken = ("pool.destination_new", "pool.spare_taken")
    new = [e for e in http_kind.log_events() if e.get("event") in taken]
    assert [e.get("kind") for e in new] == ["outproxy"]


def test_outproxied_requests_are_filtered_like_eepsite_requests(testnet, http_kind):
    assert first_fetch(http_kind).stdout.endswith(b"\n200")
    result = curl(
        "-x",
        f"http://{http_kind.http}",
        "-H",
        "X-Forwarded-For: 192.168.1.7",
        "-H",
        "Via: 1.1 lan",
        "-H",
        "Accept-Language: de-CH",
        "-H",
        "Referer: http://secret.i2p/page",
        "http://www.example.test/headers",
    )
    seen = {name.lower(): value for name, value in json.loads(result.stdout)["headers"]}
    assert seen["host"] == "www.example.test"
    assert seen["user-agent"] == "MYOB/6.66 (AN/ON)"
    assert not {"x-forwarded-for", "via", "accept-language", "referer"} & set(seen)
    assert not [n for n in seen if n.startswith("x-i2p")]


def test_socks5_outproxy_serves_get_connect_and_socks_clients(testnet, socks5_kind):
    before = stats(testnet)
    first = first_fetch(socks5_kind)
    assert first.stdout.endswith(b"\n200"), first
    assert testnet.outproxy.marker.encode() in first.stdout
    connect = curl("-p", "-x", f"http://{socks5_kind.http}", CLEARNET)
    assert testnet.outproxy.marker.encode() in connect.stdout, connect
    socks = curl("--socks5-hostname", socks5_kind.socks, CLEARNET)
    assert testnet.outproxy.marker.encode() in socks.stdout, socks
    after = stats(testnet)
    assert after["socks5_connects"] >= before["socks5_connects"] + 3
    # A name the outproxy cannot reach: its own SOCKS reply, as a 502 page / SOCKS reply 4.
    page = curl("-x", f"http://{socks5_kind.http}", "-w", "\n%{http_code}", "http://nowhere.test/")
    assert page.stdout.endswith(b"\n502") and b"could not reach the site" in page.stdout
    # SOCKS: with the SYN window the client was told "connected" before the dial (so its first
    # bytes could ride in the SYN); the failed dial is then a close without an answer.
    refused = curl("--socks5-hostname", socks5_kind.socks, "http://nowhere.test/")
    assert refused.returncode != 0 and refused.stdout == b"", refused


def test_without_outproxy_clearnet_stays_refused(testnet, tmp_path_factory):
    before = stats(testnet)
    proxy = start_proxy(testnet, tmp_path_factory, "i2cp")
    try:
        http = curl("-x", f"http://{proxy.http}", "-o", "/dev/null", "-w", "%{http_code}", CLEARNET)
        assert http.stdout == b"403"
        connect = curl("-p", "-x", f"http://{proxy.http}", CLEARNET)
        assert connect.returncode == 56 and b"403" in connect.stderr
        socks = curl("--socks5-hostname", proxy.socks, CLEARNET)
        assert socks.returncode == 97
    finally:
        stop_proxy(proxy)
    assert stats(testnet) == before
