"""i2proxy on every router kind: `i2proxy run` over I2CP and over SAM on a Java I2P 2.7.0 router,
an i2pd 2.58.0 router and an i2pd 2.45.1 router of one mixed test network, each fetching the
i2pd eepsite and the Java eepsite over HTTP and SOCKS5 (issue #11's must-show).

One proxy per (router kind, backend) runs for the module's tests in turn, and each also gets
keep-alive, CONNECT and a bulk transfer with sha256 against the other kind's eepsite. Tunnel
options come from ``--hops`` and ``--option``: Java routers in this network can only build 0-hop
inbound tunnels (its i2pd peers publish no "R" capability), so sessions on Java get
``inbound.length=0``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import subprocess

import pytest

from tests.integration.proxy_support import ProxyProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
pytest.importorskip("testnet.network", reason="the private test network is not built")

#: (router kind, version) as `status --json` names them.
ROUTER_KINDS = {
    "i2pd-2.45": ("i2pd", "2.45"),
    "i2pd-2.58": ("i2pd", "2.58"),
    "java": ("java", None),
}
MB = 1 << 20


def curl(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", str(int(timeout)), *args],
        capture_output=True,
        timeout=timeout + 10,
        check=False,
    )


def fetch(flag: list[str], url: str) -> subprocess.CompletedProcess[bytes]:
    """GET ``url`` through the proxy (``flag``); stdout ends with "\\n<status> <seconds>"."""
    return curl(*flag, "-o", "-", "-w", "\n%{http_code} %{time_total}", url)


def offline_answer(done: subprocess.CompletedProcess[bytes]) -> bool:
    """The proxy said "offline": the 504 page, or SOCKS5 reply 4 (host unreachable), which
    curl reports as "Can't complete SOCKS5 connection … (4)"."""
    return b"appears to be offline" in done.stdout or (
        done.returncode != 0 and b"SOCKS5" in done.stderr and done.stderr.rstrip().endswith(b"(4)")
    )


def young_retries(proxy: ProxyProcess) -> int:
    """How often the proxy's dialers looked a name up again for a young destination."""
    names = ("native.young_lookup_retry", "sam_young_session_retry")
    return sum(1 for e in proxy.log_events() if e.get("event") in names)


def proxy_flags(testnet, kind: str) -> list[str]:
    flags = ["--hops", str(testnet.tunnel_length)]
    if kind == "java":
        flags += ["--option", "inbound.length=0"]
    return flags


def eepsites(testnet) -> dict[str, str]:
    if testnet.java_eepsite is None:
        pytest.fail("the test network has no Java eepsite (python -m testnet up --java 1)")
    return {"i2pd": testnet.eepsite.b32, "java": testnet.java_eepsite.b32}


@pytest.fixture(
    scope="module",
    params=[(kind, backend) for kind in ROUTER_KINDS for backend in ("i2cp", "sam")],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def proxy_on(request, testnet, tmp_path_factory):
    kind, backend = request.param
    router = testnet.client_router(*ROUTER_KINDS[kind])
    url = f"i2cp://{router.i2cp}" if backend == "i2cp" else f"sam://{router.sam}"
    data_dir = tmp_path_factory.mktemp(f"proxy-{kind}-{backend}")
    proxy = ProxyProcess(url, data_dir, *proxy_flags(testnet, kind))
    proxy.start()
    yield kind, backend, proxy
    assert proxy.stop() == 0, proxy.log_path.read_text()[-3000:]


def test_http_and_socks5_reach_the_i2pd_and_the_java_eepsite(proxy_on, testnet):
    """The must-show: 200 for both eepsites through both proxy protocols."""
    kind, backend, proxy = proxy_on
    results = {}
    for site, b32 in eepsites(testnet).items():
        url = f"http://{b32}/"
        for via, flag in (
            ("http", ["-x", f"http://{proxy.http}"]),
            ("socks5", ["--socks5-hostname", proxy.socks]),
        ):
            done = fetch(flag, url)
            body, _, tail = done.stdout.rpartition(b"\n")
            if offline_answer(done) and young_retries(proxy):
                # A fresh destination's lookups that find nothing are asked again by the
                # dialer itself (dialer/young.py), for up to 7 s on i2pd. In the CI run of
                # f77c014 a per-site destination whose tunnels took 10 s to build still got
                # "not found" four times from i2pd 2.58 and the offline page. What this test
                # shows is each router kind's answer, so the page is fetched once more, by
                # then from an older destination; an offline page without the young-lookup
                # retries having run fails at once.
                print(f"{kind}/{backend} → {site} via {via}: offline page after young retries")
                done = fetch(flag, url)
                body, _, tail = done.stdout.rpartition(b"\n")
            results[(site, via)] = tail.decode(errors="replace")
            assert done.returncode == 0 and tail.startswith(b"200 "), (
                f"{kind}/{backend} → {site} eepsite via {via}: {done.stderr.decode()} {tail!r}"
            )
            assert b"<html" in body.lower()
    print(f"{kind}/{backend}: {results}")
    if backend == "sam":
        (ready,) = [e for e in proxy.log_events() if e.get("event") == "sam_session_ready"][:1]
        assert ready["flavour"] == ROUTER_KINDS[kind][0]  # only Java answers two PINGs


async def test_auto_detection_finds_each_router_kind(testnet):
    """Without --router: I2CP when it answers GetDate, else SAM when it answers HELLO."""
    from i2proxy.dialer.select import RouterURL, detect_router

    closed = RouterURL("i2cp", "127.0.0.1", 1)
    for kind, version in ROUTER_KINDS.values():
        router = testnet.client_router(kind, version)
        i2cp = RouterURL("i2cp", *router.i2cp_host_port)
        sam = RouterURL("sam", *router.sam_host_port)
        assert await detect_router((i2cp, sam), timeout=10) == i2cp, router.name
        assert await detect_router((closed, sam), timeout=10) == sam, router.name


def test_keep_alive_connect_and_bulk_with_sha256_to_the_other_kind(proxy_on, testnet):
    """Against the eepsite of the other router kind (i2pd routers → the Java eepsite, Java →
    the i2pd eepsite): two requests on one kept-alive client connection, a CONNECT tunnel, and
    a bulk download through SOCKS5 with its sha256 checked: 4 MB on I2CP (our streaming against
    each server kind; ~2 900 packets), 1 MB on SAM (the router's streaming; Java's SAM took 76 s
    for 10 MB). With 10 MB on I2CP this test took 5-6 s per kind in most runs, but 167 s once
    on the Java router (the CI run of stop 17; not traced), too much of CI's budget."""
    from testnet.eepsite import expected_bytes

    kind, backend, proxy = proxy_on
    b32 = eepsites(testnet)["i2pd" if kind == "java" else "java"]
    http = ["-x", f"http://{proxy.http}"]
    done = curl(
        *http,
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{num_connects}\n",
        f"http://{b32}/",
        f"http://{b32}/bytes/1000",
    )
    assert done.stdout.decode().split("\n")[:2] == ["200 1", "200 0"], done  # reused
    done = curl(*http, "-p", "-o", "-", "-w", "\n%{http_code}", f"http://{b32}/bytes/5000")
    body, _, status = done.stdout.rpartition(b"\n")
    assert status == b"200" and body == expected_bytes(5000), done.stderr
    size = 4 * MB if backend == "i2cp" else MB
    done = curl(
        "--socks5-hostname",
        proxy.socks,
        "-o",
        "-",
        "-w",
        "\n%{http_code} %{time_total}",
        f"http://{b32}/bytes/{size}",
        timeout=300,
    )
    body, _, tail = done.stdout.rpartition(b"\n")
    assert tail.startswith(b"200 "), done.stderr
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(expected_bytes(size)).hexdigest()
    print(f"{kind}/{backend} → {b32[:8]}: {size // MB} MB in {tail.decode().split()[1]} s")


def b33_name(destination) -> str:
    """Proposal 149's b33 address of an Ed25519 destination (blinded as RedDSA, no secret, no
    per-client auth): flags ‖ sig type 7 ‖ blinded sig type 11 ‖ public key, the first three
    bytes XORed with the CRC-32 of the key, base32."""
    key = destination.signing_public_key
    assert int(destination.sig_type) == 7 and len(key) == 32
    check = binascii.crc32(key)
    head = bytes([check & 0xFF, 7 ^ (check >> 8) & 0xFF, 11 ^ (check >> 16) & 0xFF])
    return base64.b32encode(head + key).decode().lower().rstrip("=") + ".b32.i2p"


async def test_b33_names_resolve_through_hostlookup_on_java_and_fail_clearly_on_i2pd(testnet):
    """A SAM session with an encrypted LeaseSet (i2cp.leaseSetType=5) on the Java router; our
    native dialer on Java's I2CP resolves its b33 name by HostLookup and exchanges bytes with
    it; on i2pd (2.58 and 2.45.1), whose I2CP cannot resolve b33, the error says so."""
    from i2proxy.dialer.base import PeerUnreachable
    from i2proxy.dialer.native import NativeDialer
    from i2proxy.i2p.destination import Destination
    from i2proxy.i2p.keys import PrivateKeys

    java = testnet.client_router("java")
    host, port = java.sam_host_port

    async def sam_line(reader, writer, line: str) -> str:
        writer.write(line.encode() + b"\n")
        return (await asyncio.wait_for(reader.readline(), 120)).decode().strip()

    control = await asyncio.open_connection(host, port)
    accept = await asyncio.open_connection(host, port)
    dialers = []
    try:
        assert "RESULT=OK" in await sam_line(*control, "HELLO VERSION MIN=3.1 MAX=3.3")
        created = await sam_line(
            *control,
            "SESSION CREATE STYLE=STREAM ID=b33site DESTINATION=TRANSIENT SIGNATURE_TYPE=7 "
            f"inbound.length=0 outbound.length={testnet.tunnel_length} "
            "i2cp.leaseSetEncType=4,0 i2cp.leaseSetType=5",
        )
        assert "RESULT=OK" in created, created
        me = await sam_line(*control, "NAMING LOOKUP NAME=ME")
        site = Destination.from_base64(me.split("VALUE=", 1)[1])
        b33 = b33_name(site)
        assert "RESULT=OK" in await sam_line(*accept, "HELLO VERSION MIN=3.1 MAX=3.3")
        assert "RESULT=OK" in await sam_line(*accept, "STREAM ACCEPT ID=b33site SILENT=false")

        on_java = NativeDialer(
            *java.i2cp_host_port, keys=PrivateKeys.generate(), options={"inbound.length": "0"}
        )
        dialers.append(on_java)
        await on_java.start()
        assert (await on_java.resolve(b33)).hash == site.hash
        reader, writer = await on_java.open_stream(b33, 0, b"over-b33", timeout=60)
        await asyncio.wait_for(accept[0].readline(), 60)  # the peer's destination line
        assert await asyncio.wait_for(accept[0].readexactly(8), 60) == b"over-b33"
        accept[1].write(b"answer")
        assert await asyncio.wait_for(reader.readexactly(6), 60) == b"answer"
        writer.close()

        for version in ("2.58", "2.45"):
            router = testnet.client_router("i2pd", version)
            on_i2pd = NativeDialer(*router.i2cp_host_port, keys=PrivateKeys.generate())
            dialers.append(on_i2pd)
            await on_i2pd.start()
            with pytest.raises(PeerUnreachable, match="i2pd cannot resolve b33"):
                await on_i2pd.resolve(b33)
    finally:
        for dialer in dialers:
            await dialer.close()
        for _, writer in (control, accept):
            writer.close()
