"""Shared pieces of the I2CP / native-dialer integration tests and benchmarks.

Router roles on the default 5-router test network: 0 and 1 are floodfills (a floodfill's own
netDb confuses its client lookups, so no client runs there), 2 runs i2pd's HTTP proxy, 4 the
demo eepsite. Our client uses router 3, our server and the SAM peers router 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from testnet.samprobe import public_destination

CLIENT_ROUTER = 3
SERVER_ROUTER = 2


def restartable_router(status: object) -> int:
    """The router a test may stop and restart (``TestnetStatus.restartable_router``, router 3
    on the default network): it carries no transit tunnels, so its restart breaks no tunnel of
    the eepsite or of another test's destination."""
    index = getattr(status, "restartable_router", None)
    assert index is not None, (
        "this test network has no restartable router (started before it had one?): "
        "take it down and start a new one"
    )
    return index


def tunnel_options(status: object, quantity: int = 2) -> dict[str, str]:
    """Tunnel options matching the test network's hop count (fewer tunnels: faster start)."""
    length = str(getattr(status, "tunnel_length", 1))
    return {
        "inbound.length": length,
        "outbound.length": length,
        "inbound.quantity": str(quantity),
        "outbound.quantity": str(quantity),
    }


def i2cp_address(status: object, router: int) -> tuple[str, int]:
    return status.routers[router].i2cp_host_port  # type: ignore[attr-defined]


def sam_address(status: object, router: int) -> tuple[str, int]:
    return status.routers[router].sam_host_port  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------------
# A minimal SAM v3 client: the i2pd peer our native stack must interoperate with.


class SamError(Exception):
    pass


def _parse(line: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in line.decode().strip().split(" ")[2:]:
        key, _, value = part.partition("=")
        fields[key] = value.strip('"')
    return fields


async def _sam_connect(
    address: tuple[str, int],
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(*address)
    writer.write(b"HELLO VERSION MIN=3.1 MAX=3.3\n")
    reply = _parse(await asyncio.wait_for(reader.readline(), 10))
    if reply.get("RESULT") != "OK":
        writer.close()
        raise SamError(f"HELLO failed: {reply}")
    return reader, writer


async def _command(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: str, timeout: float
) -> dict[str, str]:
    writer.write(line.encode() + b"\n")
    return _parse(await asyncio.wait_for(reader.readline(), timeout))


@dataclass
class PendingAccept:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def wait(self, timeout: float = 60) -> str:
        """The peer's destination (base64) once a stream arrived; then use reader/writer."""
        line = await asyncio.wait_for(self.reader.readline(), timeout)
        return line.decode().strip().split(" ")[0]


@dataclass
class SamSession:
    address: tuple[str, int]
    id: str
    destination: str  # public, base64
    control: asyncio.StreamWriter

    async def connect(
        self, destination: str, timeout: float = 60
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await _sam_connect(self.address)
        reply = await _command(
            reader,
            writer,
            f"STREAM CONNECT ID={self.id} DESTINATION={destination} SILENT=false",
            timeout,
        )
        if reply.get("RESULT") != "OK":
            writer.close()
            raise SamError(f"STREAM CONNECT failed: {reply}")
        return reader, writer

    async def start_accept(self) -> PendingAccept:
        """Issue STREAM ACCEPT; the returned object waits for the incoming stream."""
        reader, writer = await _sam_connect(self.address)
        reply = await _command(reader, writer, f"STREAM ACCEPT ID={self.id} SILENT=false", 10)
        if reply.get("RESULT") != "OK":
            writer.close()
            raise SamError(f"STREAM ACCEPT failed: {reply}")
        return PendingAccept(reader, writer)

    async def lookup(self, name: str, timeout: float = 30) -> str | None:
        reader, writer = await _sam_connect(self.address)
        try:
            reply = await _command(reader, writer, f"NAMING LOOKUP NAME={name}", timeout)
        finally:
            writer.close()
        return reply.get("VALUE") if reply.get("RESULT") == "OK" else None

    def close(self) -> None:
        self.control.close()


@contextlib.asynccontextmanager
async def sam_session(
    address: tuple[str, int],
    options: Mapping[str, str],
    *,
    verify_from: tuple[str, int] | None = None,
    attempts: int = 3,
) -> AsyncIterator[SamSession]:
    """A SAM STREAM session; with ``verify_from``, re-created until another router resolves it
    (i2pd sometimes never publishes a new destination's LeaseSet, see the testnet notes)."""
    last_error: Exception | None = None
    for _ in range(attempts):
        reader, writer = await _sam_connect(address)
        session_id = "t" + secrets.token_hex(6)
        opts = " ".join(f"{k}={v}" for k, v in options.items())
        reply = await _command(
            reader,
            writer,
            f"SESSION CREATE STYLE=STREAM ID={session_id} DESTINATION=TRANSIENT "
            f"SIGNATURE_TYPE=7 {opts}",
            120,
        )
        if reply.get("RESULT") != "OK":
            writer.close()
            raise SamError(f"SESSION CREATE failed: {reply}")
        # The session's own destination comes from the reply's private key blob. (NAMING LOOKUP
        # NAME=ME on a new socket names the router's shared destination instead, not this one.)
        session = SamSession(address, session_id, public_destination(reply["DESTINATION"]), writer)
        me = session.destination
        if verify_from is not None and not await resolvable(verify_from, me):
            last_error = SamError("SAM destination was not published")
            session.close()
            continue
        try:
            yield session
        finally:
            session.close()
        return
    raise last_error or SamError("no SAM session")


async def resolvable(address: tuple[str, int], destination_b64: str, timeout: float = 30) -> bool:
    from i2proxy.i2p.destination import Destination

    b32 = Destination.from_base64(destination_b64).b32
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    probe = SamSession(address, "", "", None)  # type: ignore[arg-type]
    while loop.time() < deadline:
        if await probe.lookup(b32, timeout=15) is not None:
            return True
        await asyncio.sleep(1)
    return False


# ------------------------------------------------------------------------------------------------
# Our own dialer on a router of the test network


@contextlib.asynccontextmanager
async def native_dialer(
    status: object,
    router: int,
    *,
    options: Mapping[str, str] | None = None,
    keys: object | None = None,
    published: bool = False,
) -> AsyncIterator[object]:
    """A started NativeDialer on ``router``; with ``published``, once peers can find us."""
    from i2proxy.dialer.native import NativeDialer
    from i2proxy.i2p.keys import PrivateKeys

    host, port = i2cp_address(status, router)
    dialer = NativeDialer(
        host,
        port,
        keys=keys or PrivateKeys.generate(),  # type: ignore[arg-type]
        options={**tunnel_options(status), **(options or {})},
    )
    await dialer.start()
    try:
        if published:
            await dialer.wait_published(timeout=90)
        yield dialer
    finally:
        await asyncio.wait_for(dialer.close(), 10)


#: i2pd 2.45.1 keeps a garlic session for this long (s) whatever happened to its first reply,
#: and answers our router's next new-session messages on it ("session with static key …
#: already exists" in its log; ``ECIESX25519_RESTART_TIMEOUT``, read in its source): if that
#: reply was lost, our router can decrypt none of the answers until then.
I2PD_245_SESSION_HOLD = 120


async def open_stream_retrying_once(
    dialer: object, target: object, port: int, data: bytes = b"", *, timeout: float = 60
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``dialer.open_stream``, dialled once more if the SYN got no answer within ``timeout``.

    For tests whose subject is not the dial itself. On the loaded test network a SYN to an
    i2pd 2.45.1 site, or its answer, is lost now and then (CI, stops 18 and 20: no answer in
    60 s; not traced, the logs went with the machine). If that was the first reply of a new
    garlic session, the site's router answers our router's next tries on that session for up
    to ``I2PD_245_SESSION_HOLD``: the second dial outlasts that.
    """
    from i2proxy.dialer.base import DialTimeout

    try:
        return await dialer.open_stream(target, port, data, timeout=timeout)  # type: ignore[attr-defined]
    except DialTimeout as exc:
        print(f"dial to {getattr(target, 'b32', target)} lost ({exc}); dialling once more")
        retry = max(timeout, I2PD_245_SESSION_HOLD - timeout + 40)
        return await dialer.open_stream(target, port, data, timeout=retry)  # type: ignore[attr-defined]


async def read_exactly_hashing(reader: asyncio.StreamReader, size: int) -> str:
    """Read ``size`` bytes in chunks; the SHA-256 hex of what arrived."""
    import hashlib

    digest = hashlib.sha256()
    remaining = size
    while remaining:
        chunk = await reader.read(min(remaining, 1 << 16))
        if not chunk:
            raise EOFError(f"stream ended {remaining} bytes early")
        digest.update(chunk)
        remaining -= len(chunk)
    return digest.hexdigest()


async def write_all(writer: asyncio.StreamWriter, data: bytes, chunk: int = 1 << 16) -> None:
    view = memoryview(data)
    for offset in range(0, len(data), chunk):
        writer.write(view[offset : offset + chunk])
        await writer.drain()
