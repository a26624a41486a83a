"""Our destination code agrees with i2pd itself, on the private network of real routers.

- Keys that i2pd generates (SAM ``DEST GENERATE``, the eepsite's ``.dat`` key file, read by
  ``read_key_file``) parse,
  re-serialise byte-identically, and our b32 equals the one i2pd logs for them
  ("Destination: Local address <b32> created", computed by i2pd's own ``ToBase32``).
- Keys that WE generate are accepted by i2pd as a SAM session destination, i2pd logs our b32,
  and another router resolves our b32 to exactly our destination bytes.

A tiny SAM client is written out here on purpose: ``i2proxy.sam`` is another package's product.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from pathlib import Path

import pytest

from i2proxy.i2p.destination import Destination, SigType
from i2proxy.i2p.keyfile import read_key_file
from i2proxy.i2p.keys import PrivateKeys

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# The `testnet` fixture arrives with the test-network package; skip cleanly until then.
pytest.importorskip("testnet.status")

LOCAL_ADDRESS = re.compile(rb"Local address ([a-z2-7]{52}) created")
NEW_KEYS_FILE = re.compile(rb"New private keys file (\S+) for ([a-z2-7]{52})\.b32\.i2p created")


def _fields(line: bytes) -> dict[str, str]:
    out = {}
    for token in line.decode().split()[2:]:
        key, sep, value = token.partition("=")
        if sep:
            out[key] = value
    return out


class Sam:
    """One SAM v3 control connection (enough for DEST GENERATE, SESSION CREATE, NAMING LOOKUP)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, address: str) -> Sam:
        host, _, port = address.rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(port), limit=1 << 16)
        sam = cls(reader, writer)
        reply = await sam.command("HELLO VERSION MIN=3.1 MAX=3.1")
        assert reply["RESULT"] == "OK", reply
        return sam

    async def command(self, line: str, timeout: float = 120.0) -> dict[str, str]:
        self.writer.write(line.encode() + b"\n")
        async with asyncio.timeout(timeout):
            return _fields(await self.reader.readline())

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def lookup(address: str, name: str) -> str | None:
    sam = await Sam.connect(address)
    try:
        reply = await sam.command(f"NAMING LOOKUP NAME={name}", timeout=30)
    finally:
        await sam.close()
    return reply.get("VALUE") if reply.get("RESULT") == "OK" else None


async def wait_lookup(address: str, name: str, expected: str, timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        with contextlib.suppress(OSError, TimeoutError):
            if await lookup(address, name) == expected:
                return True
        await asyncio.sleep(2)
    return False


def router_log(testnet, index: int) -> Path:
    return Path(testnet.state_dir) / f"r{index}" / "i2pd.log"


def log_addresses(path: Path) -> set[bytes]:
    return set(LOCAL_ADDRESS.findall(path.read_bytes())) if path.exists() else set()


async def open_session(sam_address: str, priv: str) -> tuple[Sam, dict[str, str]]:
    sam = await Sam.connect(sam_address)
    reply = await sam.command(
        f"SESSION CREATE STYLE=STREAM ID=core-{uuid.uuid4().hex[:8]} DESTINATION={priv} "
        "inbound.length=1 outbound.length=1"
    )
    return sam, reply


async def prove_session(testnet, keys: PrivateKeys, *, host: int, lookup_from: int) -> None:
    """SESSION CREATE with our key on router ``host``; i2pd's log and another router agree."""
    priv = keys.to_sam_base64()
    b32 = keys.destination.b32
    for _attempt in range(2):  # i2pd's publish race can leave a first LeaseSet unpublished
        sam, reply = await open_session(testnet.routers[host].sam, priv)
        try:
            assert reply["RESULT"] == "OK", reply
            assert reply["DESTINATION"] == priv  # i2pd echoes the key it parsed, unchanged
            assert b32.removesuffix(".b32.i2p").encode() in log_addresses(router_log(testnet, host))
            if await wait_lookup(
                testnet.routers[lookup_from].sam, b32, keys.destination.to_base64(), 90
            ):
                return
        finally:
            await sam.close()
    pytest.fail(f"router {lookup_from} never resolved {b32}")


async def test_our_generated_destination_is_accepted_and_hashed_alike_by_i2pd(testnet):
    keys = PrivateKeys.generate()
    await prove_session(testnet, keys, host=1, lookup_from=testnet.eepsite.router)


SIG_TYPES = [SigType.DSA_SHA1, SigType.ECDSA_P256, SigType.ED25519, SigType.ECDSA_P521]


async def _generate_parse_and_prove(testnet, sig_type: SigType) -> None:
    sam = await Sam.connect(testnet.routers[0].sam)
    try:
        reply = await sam.command(f"DEST GENERATE SIGNATURE_TYPE={int(sig_type)}")
    finally:
        await sam.close()
    pub, priv = reply["PUB"], reply["PRIV"]
    keys = PrivateKeys.from_sam_base64(priv)
    assert keys.destination.sig_type == sig_type
    assert keys.destination == Destination.from_base64(pub)
    assert keys.destination.to_base64() == pub
    assert keys.to_sam_base64() == priv  # byte-identical, incl. i2pd's random key slot
    assert keys.destination.verify(b"proof", keys.sign(b"proof"))
    # Not from a floodfill: it asks only the other floodfill, which i2pd 2.58 can mark
    # unreachable for 480 s (docs/TESTNET.md); in stop 19's CI all four lookups from floodfill
    # router 0 failed for 180 s each (the cause inferred: the logs went with the network).
    lookup_from = testnet.client_router("i2pd").index  # not router 2: that is the proxy router
    await prove_session(testnet, keys, host=2, lookup_from=lookup_from)


@pytest.fixture(scope="module")
def i2pd_generated(testnet) -> dict[SigType, BaseException | None]:
    """Every signature type's keys generated, checked and proven at the same time, each with its
    own session and lookups: the proofs (a published LeaseSet each, ~20 s of waiting) overlap
    instead of adding up. Each type's outcome (None or what it raised) for its own test."""

    async def all_types() -> list[BaseException | None]:
        return await asyncio.gather(
            *(_generate_parse_and_prove(testnet, t) for t in SIG_TYPES), return_exceptions=True
        )

    return dict(zip(SIG_TYPES, asyncio.run(all_types()), strict=True))


@pytest.mark.parametrize("sig_type", SIG_TYPES)
def test_keys_generated_by_i2pd_sam_parse_reserialise_and_hash_alike(i2pd_generated, sig_type):
    failure = i2pd_generated[sig_type]
    if failure is not None:
        raise failure


def test_the_eepsite_key_file_written_by_i2pd_gives_the_b32_i2pd_logged(testnet):
    router_dir = Path(testnet.state_dir) / f"r{testnet.eepsite.router}"
    key_files = sorted(router_dir.rglob("*.dat"))
    logged = dict(
        (Path(path.decode()).name, b32.decode())
        for path, b32 in NEW_KEYS_FILE.findall(
            router_log(testnet, testnet.eepsite.router).read_bytes()
        )
    )
    candidates = [p for p in key_files if p.name in logged]
    assert candidates, f"no key file of {router_dir} appears in i2pd's log ({logged})"
    for path in candidates:
        keys = read_key_file(path)
        assert keys.destination.b32 == logged[path.name] + ".b32.i2p"
        assert keys.to_binary() == path.read_bytes()
    eepsite_keys = [read_key_file(p) for p in candidates]
    assert testnet.eepsite.b32 in {k.destination.b32 for k in eepsite_keys}
    assert testnet.eepsite.destination in {k.destination.to_base64() for k in eepsite_keys}
