"""Key files that real routers wrote load through the one key loader, and give the same b32 on
the native (I2CP) and the SAM backend.

- Java I2PTunnel's private key file of the Java eepsite (``eepsite-keys.dat``, written by Java
  I2P 2.7.0) loads and gives exactly the destination the network knows for that site.
- For an i2pd 2.45.1 and a Java router: keys the router made (SAM ``DEST GENERATE``), kept as
  SAM base64 and as a binary file, start a native session and a SAM session on that router; the
  native one is resolved by another router to exactly the router-made destination, and the SAM
  bridge reports exactly that destination for its session.
(i2pd's own ``.dat`` files: tests/integration/test_i2p_core_interop.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from i2proxy.dialer.select import make_dialer
from i2proxy.i2p import base64 as i2b64
from i2proxy.i2p.destination import Destination
from i2proxy.i2p.keyfile import KeyFormat, detect_format, read_key_file
from tests.integration.i2cp_support import tunnel_options

pytestmark = pytest.mark.integration
pytest.importorskip("testnet.status")

JAVA_EEPSITE_KEYS = "eepsite-keys.dat"  # testnet/javarouter.py: the I2PTunnel server's privKeyFile


def test_java_i2ptunnel_key_file_gives_the_java_eepsite_destination(testnet):
    site = testnet.java_eepsite
    assert site is not None, "the session network has a Java router with its eepsite"
    path = Path(testnet.state_dir) / testnet.routers[site.router].name / JAVA_EEPSITE_KEYS
    raw = path.read_bytes()
    assert detect_format(raw) is KeyFormat.BINARY
    keys = read_key_file(path)
    assert keys.destination.b32 == site.b32
    assert keys.destination.to_base64() == site.destination
    assert keys.to_binary() == raw  # nothing lost or reordered
    assert keys.destination.verify(b"proof", keys.sign(b"proof"))


def _router(testnet, kind: str):
    return testnet.client_router("java") if kind == "java" else testnet.client_router(kind, "2.45")


def _options(testnet, kind: str) -> dict[str, str]:
    options = tunnel_options(testnet)
    if kind == "java":
        options["inbound.length"] = "0"  # Java accepts no inbound gateway here (java-i2p notes)
    return options


@pytest.mark.parametrize("kind", ["i2pd", "java"])
async def test_router_made_keys_give_one_b32_on_native_and_sam(testnet, tmp_path, kind):
    from testnet.samprobe import wait_resolvable

    router = _router(testnet, kind)
    generator = make_dialer(f"sam://{router.sam}")
    public, private = await generator.client.generate_destination()  # type: ignore[attr-defined]
    expected = Destination.from_base64(public)
    sam_file = tmp_path / "dest.priv"
    sam_file.write_text(private + "\n")
    binary_file = tmp_path / "dest.dat"
    binary_file.write_bytes(i2b64.b64decode(private))
    for path in (sam_file, binary_file):
        assert read_key_file(path).destination == expected

    native = make_dialer(f"i2cp://{router.i2cp}", keys=sam_file, options=_options(testnet, kind))
    await native.start()
    try:
        assert native.destination.b32 == expected.b32
        other = testnet.routers[testnet.eepsite.router].sam_host_port
        await wait_resolvable(other, expected.b32, timeout=180, expected=public)
    finally:
        await native.close()

    sam = make_dialer(f"sam://{router.sam}", keys=binary_file, options=_options(testnet, kind))
    await sam.start()
    try:
        assert sam.destination == public  # what the bridge says its session is
        assert Destination.from_base64(sam.destination).b32 == expected.b32
    finally:
        await sam.close()
