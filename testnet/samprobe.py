"""Minimal SAM v3 probes the test network needs: is a router up, is a name resolvable.

Deliberately tiny and independent of ``i2proxy.sam`` (which is the product under test).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from i2proxy.log import get_logger

log = get_logger(__name__)


class SAMError(Exception):
    """The SAM bridge answered with something other than RESULT=OK."""


def parse_reply(line: bytes) -> dict[str, str]:
    """``NAMING REPLY RESULT=OK NAME=x VALUE=y`` -> ``{"RESULT": "OK", "NAME": "x", ...}``."""
    fields: dict[str, str] = {}
    for token in line.decode("utf-8", "replace").split()[2:]:
        key, sep, value = token.partition("=")
        if sep:
            fields[key] = value.strip('"')
    return fields


async def _hello(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"HELLO VERSION MIN=3.0 MAX=3.1\n")
    reply = parse_reply(await reader.readline())
    if reply.get("RESULT") != "OK":
        writer.close()
        raise SAMError(f"HELLO failed: {reply}")
    return reader, writer


async def sam_alive(host: str, port: int, timeout: float = 5.0) -> bool:
    """True when a SAM bridge answers HELLO at ``host:port``."""
    try:
        async with asyncio.timeout(timeout):
            _, writer = await _hello(host, port)
    except (OSError, TimeoutError, SAMError, asyncio.IncompleteReadError):
        return False
    writer.close()
    return True


async def naming_lookup(host: str, port: int, name: str, timeout: float = 20.0) -> str | None:
    """The full base64 destination for ``name`` as the router at ``host:port`` resolves it.

    None when the router cannot find it (yet). Uses the router's shared local destination, so
    success also proves that router has client tunnels and can reach a floodfill.
    """
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await _hello(host, port)
            try:
                writer.write(f"NAMING LOOKUP NAME={name}\n".encode())
                reply = parse_reply(await reader.readline())
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError, SAMError, asyncio.IncompleteReadError):
        return None
    if reply.get("RESULT") != "OK":
        return None
    return reply.get("VALUE")


async def wait_resolvable(
    sam: tuple[str, int], name: str, *, timeout: float = 60.0, expected: str | None = None
) -> float:
    """Wait until ``name`` (a b32 name or full destination) resolves on the router at ``sam``.

    A new destination's first LeaseSet may not get published (i2pd's publish race), so callers
    should confirm this before using a destination another router must reach. Returns the
    seconds waited; raises TimeoutError after ``timeout``.
    """
    start = time.monotonic()
    deadline = start + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{name} not resolvable via SAM {sam[0]}:{sam[1]} in {timeout}s")
        value = await naming_lookup(sam[0], sam[1], name, timeout=min(remaining, 20.0))
        if value is not None and (expected is None or value == expected):
            return time.monotonic() - start
        await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def public_destination(private_b64: str) -> str:
    """The public Destination (base64) inside a SAM private-key blob (387 bytes + certificate)."""
    import base64

    raw = base64.b64decode(private_b64.translate(str.maketrans("-~", "+/")))
    end = 387 + int.from_bytes(raw[385:387], "big")
    return base64.b64encode(raw[:end]).decode().translate(str.maketrans("+/", "-~"))


class PublishedSession:
    """A SAM session whose LeaseSet another router has been seen to resolve.

    Keep it open while you use it; :meth:`close` (or closing ``writer``) ends the session.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        nickname: str,
        private: str,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.nickname = nickname
        self.private_key = private
        self.destination = public_destination(private)

    def close(self) -> None:
        self.writer.close()


async def create_published_session(
    sam: tuple[str, int],
    nickname: str,
    *,
    check_via: tuple[str, int],
    style: str = "STREAM",
    options: str = "inbound.length=1 outbound.length=0 inbound.quantity=2 outbound.quantity=2",
    attempts: int = 4,
    resolve_timeout: float = 20.0,
) -> PublishedSession:
    """Create a SAM session on ``sam`` and confirm the router at ``check_via`` resolves it.

    i2pd (2.45.1 ``LeaseSetDestination::Publish``) publishes the LeaseSet when an inbound tunnel
    is built, and gives up for good ("Destination is not ready") if no outbound tunnel exists
    yet; nothing retries it until the tunnels change, minutes later. On a loaded machine the
    inbound builds often won that race (the CI of stop 17: three sessions in a row, 240 s). A
    0-hop outbound tunnel is made at once, before the inbound ones are built, so by default the
    outbound side has no hops (a test site needs no sender anonymity). The check stays: create,
    look up from another router, and on failure close the session and create it again (same
    nickname).
    """
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        reader, writer = await _hello(*sam)
        try:
            writer.write(
                f"SESSION CREATE STYLE={style} ID={nickname} DESTINATION=TRANSIENT "
                f"SIGNATURE_TYPE=7 {options}\n".encode()
            )
            reply = parse_reply(await reader.readline())
            if reply.get("RESULT") != "OK":
                raise SAMError(f"SESSION CREATE failed: {reply}")
            session = PublishedSession(reader, writer, nickname, reply["DESTINATION"])
            await wait_resolvable(check_via, session.destination, timeout=resolve_timeout)
            return session
        except (TimeoutError, SAMError, OSError) as exc:
            last = exc
            log.info("SAM session not resolvable; recreating", nickname=nickname, attempt=attempt)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            await asyncio.sleep(1.0)  # let the router forget the old session's nickname
    raise TimeoutError(f"SAM session {nickname} never became resolvable: {last}")
