"""Isolation against real routers: which client b32 the test network's eepsites see.

One ``i2proxy run --isolation site`` per router kind and backend (i2pd 2.58.0 and Java 2.7.0,
native I2CP and SAM), reused by every test of the module. The second eepsite answers /whoami
on I2P port 80; the first one on port 81, which i2pd's SAM bridge cannot reach (it opens
every stream to port 0, TO_PORT or not), so the i2pd-SAM run checks site 1's own view
through the subresource alone. The eepsites' ``/whoami`` answers
the b32 their i2pd ``type = http`` server tunnel saw (``X-I2P-DestB32``); clients are curl.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.integration.proxy_support import ProxyProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
pytest.importorskip("testnet.network", reason="the private test network is not built")

B32 = re.compile(rb"^[a-z2-7]{52}\.b32\.i2p$")
ROUTER_KINDS = {"i2pd": ("i2pd", "2.58"), "java": ("java", None)}


def curl(*args: str, timeout: float = 150) -> str:
    """The b32 a ``/whoami`` answered (the test fails on anything else)."""
    result = subprocess.run(
        ["curl", "-sS", "--max-time", str(int(timeout)), *args],
        capture_output=True,
        timeout=timeout + 10,
        check=False,
    )
    body = result.stdout.strip()
    assert result.returncode == 0 and B32.match(body), (result.returncode, body, result.stderr)
    return body.decode()


@pytest.fixture(
    scope="module",
    params=[(kind, backend) for kind in ROUTER_KINDS for backend in ("i2cp", "sam")],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def isolated(request, testnet, tmp_path_factory):
    kind, backend = request.param
    if testnet.eepsite2 is None or not testnet.eepsite.whoami:
        pytest.fail("the test network has no /whoami or eepsite2 (testnet services too old)")
    router = testnet.client_router(*ROUTER_KINDS[kind])
    url = f"i2cp://{router.i2cp}" if backend == "i2cp" else f"sam://{router.sam}"
    flags = [
        "--isolation",
        "site",
        "--spare-destinations",
        "2",
        "--hops",
        str(testnet.tunnel_length),
    ]
    if kind == "java":
        flags += ["--option", "inbound.length=0"]  # Java's inbound gateways (notes/java-i2p.md)
    proxy = ProxyProcess(url, tmp_path_factory.mktemp(f"iso-{kind}-{backend}"), *flags)
    proxy.kind = kind
    proxy.start()
    yield proxy
    assert proxy.stop() == 0, proxy.log_path.read_text()[-3000:]


def test_two_socks5_usernames_are_two_destinations_and_one_username_keeps_its_own(
    isolated, testnet
):
    whoami = testnet.eepsite2.whoami
    alice = curl("-x", f"socks5h://alice:pw@{isolated.socks}", whoami)
    bob = curl("-x", f"socks5h://bob:pw@{isolated.socks}", whoami)
    assert alice != bob
    assert curl("-x", f"socks5h://alice:pw@{isolated.socks}", whoami) == alice


def test_each_first_party_site_is_its_own_destination_and_subresources_follow_their_page(
    isolated, testnet
):
    proxy = f"http://{isolated.http}"
    site1 = f"http://{testnet.eepsite.b32}/"
    top2 = curl("-x", proxy, "-H", "Sec-Fetch-Dest: document", testnet.eepsite2.whoami)
    # Site 2's /whoami embedded in site 1's page: it belongs to site 1's first party.
    embedded = curl(
        "-x",
        proxy,
        "-H",
        "Sec-Fetch-Dest: image",
        "-H",
        f"Referer: {site1}",
        testnet.eepsite2.whoami,
    )
    assert embedded != top2
    if isolated.router_url.startswith("sam://") and isolated.kind == "i2pd":
        return  # port 81 is out of reach (module docstring)
    top1 = curl("-x", proxy, "-H", "Sec-Fetch-Dest: document", testnet.eepsite.whoami)
    assert top1 != top2
    assert embedded == top1  # site 2 sees site 1's visitor as site 1's own destination
