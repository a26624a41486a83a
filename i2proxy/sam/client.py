"""asyncio SAM v3 client: one supervised control session, one TCP socket per stream.

The control socket holds the SAM session (SESSION CREATE STYLE=STREAM); the router closes the
session when that socket closes, so a supervisor task watches it and, when it drops (router
restart), reconnects with exponential backoff and re-creates the session: with the caller's
private key when one was given, else with a new TRANSIENT destination. (Re-using the key i2pd
made for a transient session keeps the address but not the ECIES key i2pd generates per session
for the LeaseSet, so peers that cached the old LeaseSet answer into the void: streams failed
for ~100 s; with a fresh destination the first stream after SESSION CREATE works.) While down,
:meth:`SAMClient.connect_stream` raises :class:`SAMUnavailable` at once instead of hanging.

Every stream is its own socket: ``HELLO`` → ``STREAM CONNECT`` → ``STREAM STATUS``, after which the
socket carries the stream's bytes. Never send stream data in the same write as STREAM CONNECT:
i2pd (2.45.1 … 2.58 at least) moves the bytes that follow the command line from the wrong buffer
offset and the peer receives garbage. Waiting for STREAM STATUS costs nothing on i2pd itself,
because i2pd sends the SYN empty at STREAM CONNECT anyway and holds further data until the
SYN-ACK: through i2pd's SAM a request always needs one round trip more than through I2CP with
the request inside the SYN.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from i2proxy.log import get_logger
from i2proxy.sam import protocol
from i2proxy.sam.connection import (
    MAX_VERSION,
    MIN_VERSION,
    ControlConnection,
    SAMUnavailable,
    StatsStreamWriter,
    answers_two_pings,
    handshake,
    open_socket,
    probe_bridge,
    read_line,
)
from i2proxy.sam.protocol import SAMProtocolError

log = get_logger("i2proxy.sam")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7656
#: Ed25519 for transient destinations: i2pd's default is still DSA_SHA1.
DEFAULT_SIGNATURE_TYPE = "EdDSA_SHA512_Ed25519"


class RouterFlavour(enum.Enum):
    """Which router implements the bridge; decides whether the first write rides in the SYN."""

    I2PD = "i2pd"
    JAVA = "java"
    UNKNOWN = "unknown"


def guess_flavour(version: tuple[int, int]) -> RouterFlavour:
    """Best guess from HELLO alone. Java I2P has answered ``MAX=3.3`` with 3.3 since 0.9.24
    (2016); a router that offers at most 3.1 is an i2pd before 2.46. Newer routers of both kinds
    answer the same HELLO REPLY, so beyond that the flavour stays unknown (see
    :func:`detect_flavour`)."""
    if version < (3, 2):
        return RouterFlavour.I2PD
    return RouterFlavour.UNKNOWN


async def detect_flavour(
    host: str, port: int, version: tuple[int, int], *, timeout: float = 5.0
) -> RouterFlavour:
    """HELLO's guess, refined on SAM ≥ 3.2 by a probe socket: only Java I2P answers two PINGs
    on one socket (i2pd closes it after at most one PONG)."""
    flavour = guess_flavour(version)
    if flavour is RouterFlavour.UNKNOWN:
        java = await answers_two_pings(host, port, timeout=timeout)
        flavour = RouterFlavour.JAVA if java else RouterFlavour.I2PD
    return flavour


class Backoff:
    """Reconnect delays: initial, times factor after each failure, capped; reset on success."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0, factor: float = 2.0):
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self._next = initial

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * self.factor, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial


@dataclass
class SessionInfo:
    """What the router told us about the live session."""

    session_id: str
    version: tuple[int, int]
    flavour: RouterFlavour
    #: Our public destination, I2P base64.
    destination: str
    #: The SAM private-key base64 the session runs with (reused after a reconnect).
    private_key: str
    #: time.monotonic() when SESSION STATUS OK came: young sessions get CANT_REACH_PEER retries.
    created_at: float = 0.0

    def age(self, now: float) -> float:
        """Seconds since the router said the session was ready."""
        return now - self.created_at


class SAMClient:
    """A supervised SAM STREAM session plus per-stream sockets."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        private_key: str | None = None,
        options: Mapping[str, str] | None = None,
        signature_type: str = DEFAULT_SIGNATURE_TYPE,
        session_prefix: str = "i2proxy",
        connect_timeout: float = 10.0,
        session_timeout: float = 180.0,
        keepalive_interval: float = 30.0,
        keepalive_timeout: float = 15.0,
        backoff: Backoff | None = None,
        min_version: str = MIN_VERSION,
        max_version: str = MAX_VERSION,
        flavour: RouterFlavour | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._private_key = private_key
        self.options = dict(options or {})
        self.signature_type = signature_type
        self.session_prefix = session_prefix
        self.connect_timeout = connect_timeout
        self.session_timeout = session_timeout
        #: Seconds between bridge probes (0 = none), and how long a probe may take.
        self.keepalive_interval = keepalive_interval
        self.keepalive_timeout = keepalive_timeout
        #: Bridge probes that failed (a session is re-created after two in a row).
        self.probe_failures = 0
        self.backoff = backoff or Backoff()
        self.min_version = min_version
        self.max_version = max_version
        self._forced_flavour = flavour
        self._control: ControlConnection | None = None
        self._session: SessionInfo | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self._ready = asyncio.Event()
        #: Number of sessions created (1 after start, +1 per successful reconnect).
        self.sessions_created = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def session(self) -> SessionInfo | None:
        """The live session, or None while the control socket is down."""
        return self._session if self._ready.is_set() else None

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def start(self) -> SessionInfo:
        """Create the session; raises SAMUnavailable / SAMError when the router refuses."""
        if self._supervisor is not None:
            raise RuntimeError("SAMClient already started")
        info = await self._establish()
        self._supervisor = asyncio.create_task(self._supervise(), name="sam-supervisor")
        return info

    async def wait_ready(self, timeout: float | None = None) -> SessionInfo:
        async with asyncio.timeout(timeout):
            await self._ready.wait()
        assert self._session is not None
        return self._session

    async def close(self) -> None:
        self._closing = True
        self._ready.clear()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        if self._control is not None:
            await self._control.close()
            self._control = None

    async def _establish(self) -> SessionInfo:
        control = await ControlConnection.open(
            self.host,
            self.port,
            timeout=self.connect_timeout,
            min_version=self.min_version,
            max_version=self.max_version,
        )
        try:
            # A fresh ID per attempt: after a drop the router may still hold the old session.
            session_id = f"{self.session_prefix}-{secrets.token_hex(4)}"
            reply = await control.request(
                protocol.session_create(
                    session_id,
                    self._private_key or "TRANSIENT",
                    signature_type=None if self._private_key else self.signature_type,
                    options=self.options,
                ),
                timeout=self.session_timeout,
            )
            private_key = reply.params.get("DESTINATION", "")
            if not private_key:
                raise SAMProtocolError("SESSION STATUS OK without DESTINATION")
            me = await control.request(protocol.naming_lookup("ME"), timeout=self.connect_timeout)
        except BaseException:
            await control.close()
            raise
        flavour = self._forced_flavour or await detect_flavour(
            self.host, self.port, control.version, timeout=self.connect_timeout
        )
        info = SessionInfo(
            session_id=session_id,
            version=control.version,
            flavour=flavour,
            destination=me.params.get("VALUE", ""),
            private_key=private_key,
            created_at=time.monotonic(),
        )
        self._control = control
        self._session = info
        self.sessions_created += 1
        self._ready.set()
        log.info(
            "sam_session_ready",
            bridge=f"{self.host}:{self.port}",
            session_id=session_id,
            version=f"{info.version[0]}.{info.version[1]}",
            flavour=flavour.value,
        )
        return info

    async def _supervise(self) -> None:
        while not self._closing:
            control = self._control
            assert control is not None
            reason = await self._watch(control)
            self._ready.clear()
            await control.close()
            if self._closing:
                return
            log.warning("sam_control_lost", bridge=f"{self.host}:{self.port}", reason=reason)
            self.backoff.reset()
            while not self._closing:
                delay = self.backoff.next_delay()
                await asyncio.sleep(delay)
                try:
                    await self._establish()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # keep supervising whatever the router did
                    log.info("sam_reconnect_failed", error=f"{type(exc).__name__}: {exc}")
                    continue
                break

    async def _watch(self, control: ControlConnection) -> str:
        """Wait for the control socket to close, probing the bridge on a separate socket every
        ``keepalive_interval``: two failed probes in a row (a wedged router answers nothing
        while the socket stays open) count as a lost session. Returns why it ended."""
        failed_in_a_row = 0
        while True:
            if self.keepalive_interval <= 0:
                return await asyncio.shield(control.closed)
            done, _ = await asyncio.wait({control.closed}, timeout=self.keepalive_interval)
            if done:
                return control.closed.result()
            try:
                await probe_bridge(
                    self.host,
                    self.port,
                    timeout=self.keepalive_timeout,
                    min_version=self.min_version,
                    max_version=self.max_version,
                )
                failed_in_a_row = 0
            except (SAMUnavailable, protocol.SAMError, SAMProtocolError) as exc:
                self.probe_failures += 1
                failed_in_a_row += 1
                log.info("sam_probe_failed", bridge=f"{self.host}:{self.port}", error=str(exc))
                if failed_in_a_row >= 2:
                    control.fail(f"bridge probe failed twice: {exc}")

    def _require_session(self) -> SessionInfo:
        if self._closing:
            raise SAMUnavailable("SAM client closed")
        session = self.session
        if session is None:
            raise SAMUnavailable(
                f"SAM bridge {self.host}:{self.port} is down; the session is being re-created"
            )
        return session

    def report_session_lost(self) -> None:
        """A stream socket said INVALID_ID: the router forgot our session; reconnect now."""
        if self._control is not None:
            self._control._fail("router reports the session ID unknown")

    # ------------------------------------------------------------------ commands

    async def connect_stream(
        self,
        destination: str,
        *,
        to_port: int | None = None,
        timeout: float = 60.0,
    ) -> tuple[asyncio.StreamReader, StatsStreamWriter, SessionInfo]:
        """A new socket with HELLO + STREAM CONNECT; returns it after STREAM STATUS OK.

        Raises SAMUnavailable, a SAMError subclass (CantReachPeer, InvalidKey, …) or TimeoutError.
        """
        session = self._require_session()
        reader, writer = await open_socket(self.host, self.port, min(timeout, self.connect_timeout))
        try:
            async with asyncio.timeout(timeout):
                version = await handshake(reader, writer, self.min_version, self.max_version)
                writer.write(
                    protocol.stream_connect(
                        session.session_id,
                        destination,
                        to_port=to_port if to_port and version >= (3, 2) else None,
                    )
                )
                reply = protocol.parse_reply(await read_line(reader))
                if reply.topic not in ("STREAM", "SESSION"):
                    raise SAMProtocolError(f"expected STREAM STATUS, got {reply.topic}")
                reply.raise_for_result()
        except protocol.InvalidId:
            writer.close()
            self.report_session_lost()
            raise
        except BaseException:
            writer.close()
            raise
        return reader, writer, session

    async def lookup(self, name: str, *, timeout: float = 60.0) -> str:
        """NAMING LOOKUP on the session socket (so b32 lookups use our tunnels)."""
        self._require_session()
        assert self._control is not None
        reply = await self._control.request(protocol.naming_lookup(name), timeout=timeout)
        value = reply.params.get("VALUE")
        if not value:
            raise SAMProtocolError(f"NAMING REPLY OK without VALUE for {name!r}")
        return value

    async def generate_destination(
        self, signature_type: str | None = DEFAULT_SIGNATURE_TYPE, *, timeout: float = 30.0
    ) -> tuple[str, str]:
        """DEST GENERATE on its own socket (needs no session): ``(public, private)`` base64."""
        reader, writer = await open_socket(self.host, self.port, self.connect_timeout)
        try:
            async with asyncio.timeout(timeout):
                await handshake(reader, writer, self.min_version, self.max_version)
                writer.write(protocol.dest_generate(signature_type))
                reply = protocol.parse_reply(await read_line(reader)).raise_for_result()
        finally:
            writer.close()
        pub, priv = reply.params.get("PUB"), reply.params.get("PRIV")
        if reply.topic != "DEST" or not pub or not priv:
            raise SAMProtocolError(f"bad DEST REPLY: {reply}")
        return pub, priv

    async def ping(self, timeout: float = 10.0) -> float:
        """HELLO and, on SAM 3.2+, PING/PONG on a probe socket of its own: the bridge's round
        trip in seconds. Never on the control socket (i2pd 2.58 closes it after the PONG)."""
        return await probe_bridge(
            self.host,
            self.port,
            timeout=timeout,
            ping=True,
            min_version=self.min_version,
            max_version=self.max_version,
        )


__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DEFAULT_SIGNATURE_TYPE",
    "MAX_VERSION",
    "MIN_VERSION",
    "Backoff",
    "ControlConnection",
    "RouterFlavour",
    "SAMClient",
    "SAMUnavailable",
    "SessionInfo",
    "StatsStreamWriter",
    "detect_flavour",
    "guess_flavour",
    "handshake",
    "open_socket",
    "probe_bridge",
    "read_line",
]
