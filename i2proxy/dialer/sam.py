"""The SAM v3 backend of the Dialer interface: works with any router that has SAM on.

Slower than the native I2CP stack by one round trip per connection on i2pd: its SAM bridge sends
the SYN empty at STREAM CONNECT and only sends our first bytes after the SYN-ACK (and data in the
same write as STREAM CONNECT is corrupted, so we must wait for STREAM STATUS anyway). On Java I2P
the session option ``i2p.streaming.connectDelay`` makes its streaming library hold the SYN until
our first write, so there the request can ride in the SYN.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from i2proxy.dialer.base import (
    DialError,
    DialTimeout,
    InvalidTarget,
    PeerUnreachable,
    RouterUnavailable,
    StreamStats,
)
from i2proxy.dialer.datagrams import DatagramEndpoint
from i2proxy.dialer.sam_datagrams import open_sam_datagram_endpoint
from i2proxy.dialer.young import YOUNG_RETRY
from i2proxy.i2p.keyfile import keys_from
from i2proxy.i2p.keys import PrivateKeys
from i2proxy.i2p.names import b32_kind
from i2proxy.log import get_logger
from i2proxy.sam import protocol
from i2proxy.sam.client import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    RouterFlavour,
    SAMClient,
    SAMUnavailable,
    SessionInfo,
)

if TYPE_CHECKING:
    from i2proxy.i2p.destination import Destination

log = get_logger("i2proxy.dialer.sam")

#: Session options sent unless the caller overrides them.
DEFAULT_OPTIONS: dict[str, str] = {
    # Publish an ECIES-X25519 LeaseSet with ElGamal as fallback, like the native stack.
    "i2cp.leaseSetEncType": "4,0",
    # Java I2P: hold the SYN up to 100 ms for the first write so the request rides in it.
    # i2pd ignores the option.
    "i2p.streaming.connectDelay": "100",
}

#: Default time for a whole dial (HELLO, LeaseSet lookup, STREAM STATUS).
DEFAULT_DIAL_TIMEOUT = 60.0

_BASE64_DEST = re.compile(r"^[A-Za-z0-9~-]{516,}={0,2}$")
#: Longest base64 destination we pass on (a destination with a big certificate is < 1 KiB).
_MAX_DEST_B64 = 4096


def sam_destination(target: Destination | str) -> str:
    """The DESTINATION= value for ``target``; InvalidTarget for what is neither b32 nor base64.

    Non-b32 ``.i2p`` names are refused: name resolution belongs to i2proxy's address book, and
    the router's own book must not learn what the user looks up.
    """
    if not isinstance(target, str):
        to_base64 = getattr(target, "to_base64", None)
        if to_base64 is None:
            raise InvalidTarget(f"not a destination: {type(target).__name__}")
        return str(to_base64())
    text = target.strip()
    lowered = text.lower().rstrip(".")
    if lowered.endswith(".i2p"):
        if b32_kind(lowered) is not None:
            return lowered
        raise InvalidTarget(f"not a .b32.i2p name: {target[:80]!r}")
    if len(text) <= _MAX_DEST_B64 and _BASE64_DEST.match(text):
        return text
    raise InvalidTarget(f"not a b32 name or a base64 destination: {target[:80]!r}")


def lease_set_not_found(exc: protocol.InvalidKey, target: str = "") -> bool:
    """Whether an INVALID_KEY really says "no LeaseSet": Java I2P's SAM answers a failed lookup
    with ``INVALID_KEY MESSAGE="Lease set not found: …"``, and for a ``.b32.i2p`` name, which
    passed our syntax check, INVALID_KEY can mean nothing else (i2pd says it for NAMING LOOKUP)."""
    return "not found" in (exc.message or "").lower() or b32_kind(target) is not None


def lease_set_not_found_reply(exc: protocol.SAMError, target: str = "") -> bool:
    """Whether a STREAM CONNECT reply means "the router found no LeaseSet": i2pd's
    CANT_REACH_PEER, Java's INVALID_KEY "Lease set not found" (``lease_set_not_found``)."""
    if isinstance(exc, protocol.CantReachPeer):
        return True
    return isinstance(exc, protocol.InvalidKey) and lease_set_not_found(exc, target)


def dial_error(exc: BaseException, target: str = "") -> DialError:
    """The DialError a SAM-level failure means for the frontends; ``target`` as sent."""
    if isinstance(exc, DialError):
        return exc
    if isinstance(exc, protocol.CantReachPeer | protocol.PeerNotFound | protocol.LeaseSetNotFound):
        return PeerUnreachable(str(exc))
    if isinstance(exc, protocol.InvalidKey) and lease_set_not_found(exc, target):
        return PeerUnreachable(str(exc))
    if isinstance(exc, protocol.SAMTimeout | TimeoutError):
        return DialTimeout(str(exc) or "SAM dial timed out")
    if isinstance(exc, protocol.InvalidKey):
        return InvalidTarget(str(exc))
    if isinstance(exc, protocol.InvalidId):
        return RouterUnavailable(f"router lost our SAM session, re-creating it: {exc}")
    if isinstance(exc, SAMUnavailable):
        return RouterUnavailable(str(exc))
    return DialError(f"{type(exc).__name__}: {exc}")


class SAMDialer:
    """Dialer over a SAM v3 bridge (i2pd or Java I2P)."""

    backend = "sam"

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        keys: PrivateKeys | str | os.PathLike[str] | None = None,
        options: Mapping[str, str] | None = None,
        flavour: RouterFlavour | None = None,
        **client_kwargs: Any,
    ) -> None:
        """``keys``: PrivateKeys, a key file path (any format; created if absent), or None for
        a TRANSIENT destination of this session only."""
        keys = keys_from(keys)
        merged = dict(DEFAULT_OPTIONS)
        # i2proxy.* options tune our own native stack; the router has no use for them.
        merged.update({k: v for k, v in (options or {}).items() if not k.startswith("i2proxy.")})
        self.client = SAMClient(
            host,
            port,
            private_key=None if keys is None else keys.to_sam_base64(),
            options=merged,
            flavour=flavour,
            **client_kwargs,
        )

    def __repr__(self) -> str:
        return f"SAMDialer(sam://{self.client.host}:{self.client.port})"

    @property
    def session(self) -> SessionInfo | None:
        return self.client.session

    @property
    def destination(self) -> str | None:
        """Our own destination (I2P base64) once the session is up."""
        session = self.client.session
        return session.destination if session else None

    async def start(self) -> None:
        try:
            await self.client.start()
        except (SAMUnavailable, protocol.SAMError, protocol.SAMProtocolError, TimeoutError) as exc:
            raise RouterUnavailable(
                f"SAM session on {self.client.host}:{self.client.port} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    async def close(self) -> None:
        await self.client.close()

    async def open_datagram_endpoint(self) -> DatagramEndpoint:
        """A datagram endpoint on a new SAM DATAGRAM session (see ``dialer/sam_datagrams.py``)."""
        return await open_sam_datagram_endpoint(
            self.client.host, self.client.port, options=self.client.options
        )

    async def open_stream(
        self,
        target: Destination | str,
        port: int = 0,
        initial_data: bytes = b"",
        *,
        timeout: float | None = None,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        destination = sam_destination(target)
        try:
            reader, writer, session = await self._connect(
                destination, port, timeout if timeout is not None else DEFAULT_DIAL_TIMEOUT
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise dial_error(exc, destination) from exc
        in_syn = bool(initial_data) and self._first_write_in_syn(session)
        writer.extra["stream_stats"] = StreamStats(
            initial_data_in_syn=in_syn, syn_payload_bytes=len(initial_data) if in_syn else 0
        )
        if initial_data:
            # After STREAM STATUS, never with STREAM CONNECT: i2pd corrupts follow-on bytes.
            writer.write(initial_data)
            try:
                await writer.drain()
            except (OSError, ConnectionError) as exc:
                writer.close()
                raise PeerUnreachable(f"stream closed before the first write: {exc}") from exc
        return reader, writer

    async def _connect(
        self, destination: str, port: int, timeout: float
    ) -> tuple[asyncio.StreamReader, Any, SessionInfo]:
        """STREAM CONNECT; a "not found" while the session is young is tried again
        (``dialer/young.py``)."""
        started = time.monotonic()
        deadline = started + timeout
        attempt = 0
        while True:
            began = time.monotonic()
            try:
                return await self.client.connect_stream(
                    destination,
                    to_port=port or None,
                    timeout=max(deadline - began, 0.001),
                )
            except (protocol.CantReachPeer, protocol.InvalidKey) as exc:
                if not lease_set_not_found_reply(exc, destination):
                    raise
                now = time.monotonic()
                session = self.client.session  # made by the first connect if there was none
                age = max(0.0, session.age(began)) if session is not None else None
                delay = YOUNG_RETRY.retry_delay(
                    age=age, attempt=attempt, elapsed=now - started, remaining=deadline - now
                )
                if delay is None:
                    raise
                log.info(
                    "sam_young_session_retry",
                    session_age=round(age, 1) if age is not None else None,
                    attempt=attempt + 1,
                    delay=delay,
                    result=exc.code,
                )
                attempt += 1
                await asyncio.sleep(delay)

    def _first_write_in_syn(self, session: SessionInfo) -> bool:
        """Only Java I2P with connectDelay > 0 bundles our first write into the SYN."""
        if session.flavour is not RouterFlavour.JAVA:
            return False
        delay = self.client.options.get("i2p.streaming.connectDelay", "0")
        return delay.lstrip("-").isdigit() and int(delay) > 0

    async def lookup(self, name: str, *, timeout: float = DEFAULT_DIAL_TIMEOUT) -> str:
        """The router's NAMING LOOKUP (a b32 name → full base64 destination via its LeaseSet)."""
        try:
            return await self.client.lookup(name, timeout=timeout)
        except asyncio.CancelledError:
            raise
        except protocol.KeyNotFound as exc:
            raise PeerUnreachable(str(exc)) from exc
        except Exception as exc:
            raise dial_error(exc, name) from exc
