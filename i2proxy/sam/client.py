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
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from i2proxy.log import get_logger
from i2proxy.sam import protocol
from i2proxy.sam.channel import ControlChannel, KeepaliveTimeout, PongReceived, ReplyReceived
from i2proxy.sam.protocol import Reply, SAMProtocolError

log = get_logger("i2proxy.sam")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7656
MIN_VERSION = "3.1"
MAX_VERSION = "3.3"
#: Ed25519 for transient destinations: i2pd's default is still DSA_SHA1.
DEFAULT_SIGNATURE_TYPE = "EdDSA_SHA512_Ed25519"
#: asyncio's own line limit on stream sockets; SAM lines are further bounded by the codec.
_READER_LIMIT = 64 * 1024


class SAMUnavailable(ConnectionError):
    """The SAM bridge cannot be reached or the session is (being) re-created."""


class RouterFlavour(enum.Enum):
    """Which router implements the bridge; decides whether the first write rides in the SYN."""

    I2PD = "i2pd"
    JAVA = "java"
    UNKNOWN = "unknown"


def guess_flavour(version: tuple[int, int]) -> RouterFlavour:
    """Best guess from HELLO alone. Java I2P has answered ``MAX=3.3`` with 3.3 since 0.9.24
    (2016); a router that offers at most 3.1 is an i2pd before 2.46. Newer routers of both kinds
    answer the same HELLO REPLY, so beyond that the flavour stays unknown."""
    if version < (3, 2):
        return RouterFlavour.I2PD
    return RouterFlavour.UNKNOWN


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


class _QuickAckProtocol(asyncio.StreamReaderProtocol):
    """Sets TCP_QUICKACK after every read: i2pd leaves Nagle on, so its second small write waits
    for our delayed ACK (~40 ms) unless we ACK at once (Linux resets QUICKACK after each ACK)."""

    _sock: socket.socket | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if hasattr(socket, "TCP_QUICKACK"):
                self._sock = sock
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        super().data_received(data)


class StatsStreamWriter(asyncio.StreamWriter):
    """A StreamWriter that answers ``get_extra_info(name)`` from ``extra`` first."""

    def __init__(self, *args: object, extra: dict[str, object] | None = None) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.extra: dict[str, object] = dict(extra or {})

    def get_extra_info(self, name: str, default: object = None) -> object:
        if name in self.extra:
            return self.extra[name]
        return super().get_extra_info(name, default)


async def open_socket(
    host: str, port: int, timeout: float
) -> tuple[asyncio.StreamReader, StatsStreamWriter]:
    """TCP to the bridge, TCP_NODELAY and per-read QUICKACK; OSError/timeout → SAMUnavailable."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=_READER_LIMIT, loop=loop)
    proto = _QuickAckProtocol(reader, loop=loop)
    try:
        async with asyncio.timeout(timeout):
            transport, _ = await loop.create_connection(lambda: proto, host, port)
    except (OSError, TimeoutError) as exc:
        raise SAMUnavailable(f"SAM bridge {host}:{port} not reachable: {exc!r}") from exc
    return reader, StatsStreamWriter(transport, proto, reader, loop)


async def read_line(reader: asyncio.StreamReader) -> bytes:
    """One reply line from a stream socket, bounded; EOF → SAMUnavailable."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        raise SAMUnavailable(f"SAM bridge closed the socket (got {exc.partial[:80]!r})") from exc
    except asyncio.LimitOverrunError as exc:
        raise protocol.LineTooLong("SAM reply line too long") from exc
    except OSError as exc:
        raise SAMUnavailable(f"SAM socket error: {exc!r}") from exc
    if len(line) > protocol.MAX_REPLY_LENGTH:
        raise protocol.LineTooLong(f"SAM reply line of {len(line)} bytes")
    return line


async def handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    min_version: str = MIN_VERSION,
    max_version: str = MAX_VERSION,
) -> tuple[int, int]:
    """HELLO VERSION on a fresh socket; returns the negotiated version."""
    writer.write(protocol.hello(min_version, max_version))
    reply = protocol.parse_reply(await read_line(reader))
    if reply.topic != "HELLO":
        raise SAMProtocolError(f"expected HELLO REPLY, got {reply.topic} {reply.kind}")
    reply.raise_for_result()
    return protocol.parse_version(reply.params.get("VERSION", ""))


def _consume_outcome(future: asyncio.Future[Reply]) -> None:
    if not future.cancelled():
        future.exception()


class ControlConnection:
    """asyncio adapter for :class:`ControlChannel`: one socket, a reader task, a timer."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        channel: ControlChannel,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.channel = channel
        self._clock = clock
        self._waiters: list[asyncio.Future[Reply]] = []
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.last_ping_rtt: float | None = None
        self._tasks = [
            asyncio.create_task(self._read_loop(), name="sam-control-read"),
            asyncio.create_task(self._timer_loop(), name="sam-control-timer"),
        ]

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        timeout: float = 10.0,
        keepalive_interval: float = 30.0,
        keepalive_timeout: float = 15.0,
        min_version: str = MIN_VERSION,
        max_version: str = MAX_VERSION,
    ) -> ControlConnection:
        reader, writer = await open_socket(host, port, timeout)
        with contextlib.suppress(OSError):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        conn = cls(
            reader,
            writer,
            ControlChannel(
                keepalive_interval=keepalive_interval, keepalive_timeout=keepalive_timeout
            ),
        )
        try:
            reply = await conn.request(protocol.hello(min_version, max_version), timeout=timeout)
        except BaseException:
            await conn.close()
            raise
        if conn.channel.version is None:  # pragma: no cover - channel sets it on an OK HELLO
            await conn.close()
            raise SAMProtocolError(f"HELLO REPLY without VERSION: {reply}")
        return conn

    @property
    def version(self) -> tuple[int, int]:
        assert self.channel.version is not None
        return self.channel.version

    @property
    def is_closed(self) -> bool:
        return self.closed.done()

    async def request(self, line: bytes, *, timeout: float) -> Reply:
        """Send one command and wait for its reply; raises the SAMError for a non-OK RESULT.

        Commands are serialized: i2pd drops whatever follows the first line of a read.
        """
        async with self._lock:
            if self.is_closed:
                raise SAMUnavailable(f"SAM control socket closed: {self.closed.result()}")
            waiter: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
            # If our caller is cancelled, nobody awaits the waiter: mark its outcome as seen.
            waiter.add_done_callback(_consume_outcome)
            self._waiters.append(waiter)
            self.channel.send_command(line, self._clock())
            self._flush()
            try:
                async with asyncio.timeout(timeout):
                    reply = await asyncio.shield(waiter)
            except TimeoutError:
                # The reply may still come and would be matched to the next command: the socket
                # can no longer be trusted.
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                waiter.cancel()
                self._fail(f"no reply to {line.split(b' ', 2)[:2]!r} within {timeout}s")
                raise
        return reply.raise_for_result()

    async def ping(self, timeout: float = 10.0) -> float:
        """PING (SAM 3.2+) and wait for the matching PONG; returns the round trip in seconds."""
        if not self.channel.supports_ping:
            raise SAMProtocolError(f"SAM {self.version} has no PING")
        token = self.channel.send_ping(self._clock())
        self._flush()
        async with asyncio.timeout(timeout):
            while True:
                self._pong = asyncio.get_running_loop().create_future()
                text, rtt = await self._pong
                if text == token and rtt is not None:
                    return rtt

    _pong: asyncio.Future[tuple[str, float | None]] | None = None

    def _flush(self) -> None:
        data = self.channel.data_to_send()
        if data and not self._writer.is_closing():
            self._writer.write(data)
        self._wake.set()

    async def _read_loop(self) -> None:
        reason = "closed by router"
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    break
                self.channel.receive_data(data, self._clock())
                self._dispatch()
                self._flush()
        except (OSError, SAMProtocolError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        except asyncio.CancelledError:
            reason = "closed by client"
        except Exception as exc:  # never leave the session half-dead behind a crashed reader
            log.exception("sam_control_reader_failed")
            reason = f"{type(exc).__name__}: {exc}"
        self._fail(reason)

    def _dispatch(self) -> None:
        while (event := self.channel.next_event()) is not None:
            if isinstance(event, ReplyReceived):
                if self._waiters:
                    waiter = self._waiters.pop(0)
                    if not waiter.done():
                        waiter.set_result(event.reply)
            elif isinstance(event, PongReceived):
                if event.rtt is not None:
                    self.last_ping_rtt = event.rtt
                if self._pong is not None and not self._pong.done():
                    self._pong.set_result((event.text, event.rtt))
            elif isinstance(event, KeepaliveTimeout):
                self._fail(f"no PONG for {event.waited:.1f}s")

    async def _timer_loop(self) -> None:
        while not self.is_closed:
            deadline = self.channel.get_timer()
            self._wake.clear()
            delay = None if deadline is None else max(0.0, deadline - self._clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
                continue
            self.channel.handle_timer(self._clock())
            self._dispatch()
            self._flush()

    def _fail(self, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result(reason)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(SAMUnavailable(f"SAM control socket lost: {reason}"))
        self._waiters.clear()
        if self._pong is not None and not self._pong.done():
            self._pong.set_exception(SAMUnavailable(f"SAM control socket lost: {reason}"))
        self._writer.close()
        self._wake.set()

    async def close(self) -> None:
        self._fail("closed by client")
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        for task in self._tasks:
            if task is not current:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        with contextlib.suppress(OSError, ConnectionError):
            await self._writer.wait_closed()


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
        self.keepalive_interval = keepalive_interval
        self.keepalive_timeout = keepalive_timeout
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
            keepalive_interval=self.keepalive_interval,
            keepalive_timeout=self.keepalive_timeout,
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
        flavour = self._forced_flavour or guess_flavour(control.version)
        info = SessionInfo(
            session_id=session_id,
            version=control.version,
            flavour=flavour,
            destination=me.params.get("VALUE", ""),
            private_key=private_key,
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
            reason = await control.closed
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
        """PING/PONG round trip on the control socket (SAM 3.2+)."""
        self._require_session()
        assert self._control is not None
        return await self._control.ping(timeout)
