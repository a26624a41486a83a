"""The test network's services over real routers: /whoami, the second eepsite, the outproxy.

Clients are i2pd's own proxies, SAM sessions of our own (whose b32 we know) and, when the
network has one, Java's HTTP proxy; the outproxy is reached through i2pd's SOCKS proxy, as an
I2P client with no outproxy support of its own would (python-socks does the inner handshake).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest
from python_socks import ProxyError, ProxyType
from python_socks.async_.asyncio.v2 import Proxy

from testnet.samprobe import parse_reply, public_destination
from testnet.status import TestnetStatus

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

B32_RE = re.compile(r"^[a-z2-7]{52}\.b32\.i2p$")
#: ECIES first: i2pd 2.58.0's SAM thread segfaulted on a STREAM CONNECT from an ElGamal-only
#: session (its default) to the 2.45.1-hosted sites, twice in two tries.
SAM_OPTS = (
    "inbound.length=1 outbound.length=1 inbound.quantity=2 outbound.quantity=2 "
    "i2cp.leaseSetEncType=4,0"
)


def curl(*args: str, timeout: int = 90, fail: bool = True) -> subprocess.CompletedProcess[str]:
    """curl with retries. ``fail``: an HTTP error is a failed attempt whose page is not written
    (without it a retried 5xx page stays in stdout before the answer that followed: CI of
    8e3c778 read i2pd's "Host is down" page and then the b32)."""
    retries = ["--retry", "3", "--retry-all-errors", *(["--fail"] if fail else [])]
    return subprocess.run(
        ["curl", "-sS", "--max-time", str(timeout), *retries, *args],
        capture_output=True,
        text=True,
        timeout=timeout * 4 + 10,
        check=False,
    )


def b32_of(destination_b64: str) -> str:
    raw = base64.b64decode(destination_b64.translate(str.maketrans("-~", "+/")))
    digest = hashlib.sha256(raw).digest()
    return base64.b32encode(digest).decode().lower().rstrip("=") + ".b32.i2p"


async def _sam_line(reader, writer, line: str) -> dict[str, str]:
    writer.write(line.encode() + b"\n")
    return parse_reply(await asyncio.wait_for(reader.readline(), 120))


async def sam_get(sam: tuple[str, int], nickname: str, b32: str, path: str) -> tuple[str, bytes]:
    """(our session's b32, the raw response) of one GET over a fresh SAM session to ``b32``."""
    reader, writer = await asyncio.open_connection(*sam)
    try:
        assert (await _sam_line(reader, writer, "HELLO VERSION MIN=3.0 MAX=3.1"))["RESULT"] == "OK"
        reply = await _sam_line(
            reader,
            writer,
            f"SESSION CREATE STYLE=STREAM ID={nickname} DESTINATION=TRANSIENT "
            f"SIGNATURE_TYPE=7 {SAM_OPTS}",
        )
        assert reply["RESULT"] == "OK", reply
        ours = b32_of(public_destination(reply["DESTINATION"]))
        for _attempt in range(3):  # the first lookup of a site may time out on a busy machine
            s_reader, s_writer = await asyncio.open_connection(*sam)
            try:
                await _sam_line(s_reader, s_writer, "HELLO VERSION MIN=3.0 MAX=3.1")
                status = await _sam_line(
                    s_reader, s_writer, f"STREAM CONNECT ID={nickname} DESTINATION={b32}"
                )
                if status.get("RESULT") != "OK":
                    continue
                # Only after the status line: i2pd corrupts data sent with STREAM CONNECT.
                s_writer.write(f"GET {path} HTTP/1.1\r\nHost: {b32}\r\n\r\n".encode())
                return ours, await asyncio.wait_for(s_reader.read(), 120)
            finally:
                s_writer.close()
        raise AssertionError(f"SAM could not reach {b32}: {status}")
    finally:
        writer.close()


def body_of(response: bytes) -> str:
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), response[:300]
    return body.decode()


# -- /whoami and the second eepsite ---------------------------------------------------------------


def test_whoami_through_i2pds_proxies_is_one_valid_b32_for_both_sites(testnet: TestnetStatus):
    """i2pd's HTTP and SOCKS proxy run on one destination (of the proxy router); both sites
    see the same, valid b32 — never the site's own. Java's HTTP proxy is another client."""
    seen = set()
    i2pd_proxies = (
        ["-x", f"http://{testnet.http_proxy}"],
        ["--socks5-hostname", testnet.socks_proxy],
    )
    for url in (testnet.eepsite.whoami, testnet.eepsite2.whoami):
        for proxy in i2pd_proxies:
            result = curl(*proxy, url)
            assert result.returncode == 0, result.stderr
            assert B32_RE.match(result.stdout.strip()), result.stdout
            seen.add(result.stdout.strip())
    assert len(seen) == 1
    assert seen.isdisjoint({testnet.eepsite.b32, testnet.eepsite2.b32, testnet.outproxy.b32})
    if testnet.java_http_proxy is not None:  # the session network has one
        java = curl("-x", f"http://{testnet.java_http_proxy}", testnet.eepsite2.whoami, timeout=120)
        assert B32_RE.match(java.stdout.strip()), (java.stdout, java.stderr)
        assert java.stdout.strip() not in seen


async def test_whoami_is_each_sam_sessions_own_b32_and_differs_between_sessions(
    testnet: TestnetStatus,
):
    """Two SAM sessions on one client router and one on another (in the mixed network: 2.45.1
    and 2.58): the second eepsite
    (type = http on port 80) answers each with exactly its own b32 (SAM 3.1 has no TO_PORT, so
    the first eepsite's port-81 whoami is for proxies)."""
    clients = [
        r
        for r in testnet.routers_of_kind("i2pd", floodfill=False)
        if r.index != testnet.eepsite.router
    ]
    routers = [clients[0], clients[0], *clients[1:][-1:]]  # mixed network: r2, r2, r5 (2.58)
    results = await asyncio.gather(
        *(
            sam_get(router.sam_host_port, f"whoami{n}", testnet.eepsite2.b32, "/whoami")
            for n, router in enumerate(routers)
        )
    )
    answers = [body_of(response).strip() for _, response in results]
    assert answers == [ours for ours, _ in results]
    assert len(set(answers)) == len(routers)
    proxy = curl("-x", f"http://{testnet.http_proxy}", testnet.eepsite2.whoami).stdout.strip()
    assert proxy not in answers


def test_eepsite_port_80_stays_plain_and_eepsite2_serves_its_own_page(testnet: TestnetStatus):
    proxy = ["-x", f"http://{testnet.http_proxy}"]
    plain = curl(*proxy, f"http://{testnet.eepsite.b32}/headers")
    names = [name for name, _ in json.loads(plain.stdout)["headers"]]
    assert not [n for n in names if n.lower().startswith("x-i2p")], names
    refused = curl(
        *proxy, "-w", "\n%{http_code}", f"http://{testnet.eepsite.b32}/whoami", fail=False
    )
    assert refused.stdout.endswith("\n421"), refused.stdout
    page = curl(*proxy, f"http://{testnet.eepsite2.b32}/")
    assert "Hello from the second eepsite" in page.stdout
    assert f"http://{testnet.eepsite.b32}:81/whoami" in page.stdout  # it embeds site 1
    assert "private I2P network" not in page.stdout


# -- the outproxy -----------------------------------------------------------------------------


def _outproxy_stats(testnet: TestnetStatus) -> dict[str, int]:
    try:
        return json.loads(Path(testnet.outproxy.stats_file).read_text())
    except FileNotFoundError:
        return {"http_requests": 0, "http_connects": 0, "socks5_connects": 0, "refused": 0}


def i2pd_socks(testnet: TestnetStatus) -> Proxy:
    host, port = testnet.socks_proxy_host_port
    return Proxy(ProxyType.SOCKS5, host, port, rdns=True)


async def _over_i2p(testnet: TestnetStatus, port: int, request: bytes) -> bytes:
    """Open an I2P stream to the outproxy's ``port`` (via i2pd's SOCKS proxy), send, read."""
    stream = await i2pd_socks(testnet).connect(testnet.outproxy.b32, port, timeout=120)
    try:
        await stream.write(request)
        return await asyncio.wait_for(stream.reader.read(), 120)
    finally:
        await stream.close()


async def test_the_http_outproxy_serves_the_clearnet_name_by_absolute_uri_and_connect(
    testnet: TestnetStatus,
):
    before = _outproxy_stats(testnet)
    get = b"GET http://www.example.test/ HTTP/1.1\r\nHost: www.example.test\r\n\r\n"
    response = await _over_i2p(testnet, testnet.outproxy.http_port, get)
    assert "Hello from the clearnet (test)" in body_of(response)
    assert testnet.outproxy.marker in body_of(response)
    connect = (
        b"CONNECT www.example.test:80 HTTP/1.1\r\nHost: www.example.test:80\r\n\r\n"
        b"GET /headers HTTP/1.1\r\nHost: www.example.test\r\nConnection: close\r\n\r\n"
    )
    response = await _over_i2p(testnet, testnet.outproxy.http_port, connect)
    assert response.startswith(b"HTTP/1.1 200 Connection established\r\n\r\n")
    assert json.loads(body_of(response.split(b"\r\n\r\n", 1)[1]))["path"] == "/headers"
    unknown = b"GET http://elsewhere.test/ HTTP/1.1\r\nHost: elsewhere.test\r\n\r\n"
    response = await _over_i2p(testnet, testnet.outproxy.http_port, unknown)
    assert response.startswith(b"HTTP/1.1 502 ")
    after = _outproxy_stats(testnet)
    assert after["http_requests"] >= before["http_requests"] + 1
    assert after["http_connects"] >= before["http_connects"] + 1


async def test_the_socks5_outproxy_resolves_the_clearnet_name_itself(testnet: TestnetStatus):
    before = _outproxy_stats(testnet)
    outproxy = Proxy(
        ProxyType.SOCKS5,
        testnet.outproxy.b32,
        testnet.outproxy.socks5_port,
        rdns=True,
        forward=i2pd_socks(testnet),
    )
    stream = await outproxy.connect("www.example.test", 80, timeout=180)
    try:
        await stream.write(b"GET / HTTP/1.1\r\nHost: www.example.test\r\nConnection: close\r\n\r\n")
        response = await asyncio.wait_for(stream.reader.read(), 120)
    finally:
        await stream.close()
    assert "Hello from the clearnet (test)" in body_of(response)
    assert _outproxy_stats(testnet)["socks5_connects"] >= before["socks5_connects"] + 1
    with pytest.raises(ProxyError) as refused:
        await outproxy.connect("elsewhere.test", 80, timeout=180)
    assert refused.value.error_code == 4  # host unreachable


def test_status_lists_the_outproxy_urls(testnet: TestnetStatus):
    out = testnet.outproxy
    assert out.http == f"http://{out.b32}" and out.socks5 == f"socks5://{out.b32}:1080"
    assert B32_RE.match(out.b32) and out.b32 not in (testnet.eepsite.b32, testnet.eepsite2.b32)
