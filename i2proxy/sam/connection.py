"""asyncio plumbing for SAM sockets: opening one, reading bounded reply lines, HELLO, the
bridge probe, and :class:`ControlConnection`, the adapter that drives the sans-IO
:class:`ControlChannel`.

Every socket to the bridge gets TCP_NODELAY and a TCP_QUICKACK after each read: i2pd leaves
Nagle on, so without a prompt ACK its second small write waits ~40 ms for our delayed ACK.
:class:`SAMClient` (``i2proxy.sam.client``) builds the session and per-stream sockets on top.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import time
from collections.abc import Callable

from i2proxy.log import get_logger
from i2proxy.sam import protocol
from i2proxy.sam.channel import ControlChannel, ReplyReceived, supports_ping
from i2proxy.sam.protocol import Reply, SAMProtocolError

log = get_logger("i2proxy.sam")

MIN_VERSION = "3.1"
MAX_VERSION = "3.3"
#: asyncio's own line limit on stream sockets; SAM lines are further bounded by the codec.
_READER_LIMIT = 64 * 1024


class SAMUnavailable(ConnectionError):
    """The SAM bridge cannot be reached or the session is (being) re-created."""


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


async def probe_bridge(
    host: str,
    port: int,
    *,
    timeout: float,
    ping: bool = False,
    min_version: str = MIN_VERSION,
    max_version: str = MAX_VERSION,
) -> float:
    """Is the bridge alive? HELLO (and ``PING``/``PONG`` when ``ping`` and SAM ≥ 3.2) on a
    socket of its own, closed afterwards; returns the round trip in seconds.

    This is the keepalive: the session's control socket is never pinged, because i2pd 2.58
    answers PONG and then closes the socket the PING came on, which ends the session (it was
    re-created every ~30 s). A probe socket may be closed by the router without harm, on every
    router kind. Raises SAMUnavailable (unreachable, closed, silent) or SAMProtocolError.
    """
    started = time.monotonic()
    reader, writer = await open_socket(host, port, timeout)
    try:
        async with asyncio.timeout(timeout):
            version = await handshake(reader, writer, min_version, max_version)
            if ping and supports_ping(version):
                token = f"i2proxy-{secrets.token_hex(4)}"
                writer.write(protocol.ping(token))
                reply = protocol.parse_reply(await read_line(reader))
                if reply.topic != "PONG" or reply.text != token:
                    raise SAMProtocolError(f"expected PONG {token}, got {reply.topic} {reply.text}")
    except TimeoutError as exc:
        raise SAMUnavailable(f"SAM bridge {host}:{port} did not answer within {timeout}s") from exc
    finally:
        writer.close()
    return time.monotonic() - started


async def answers_two_pings(
    host: str,
    port: int,
    *,
    timeout: float,
    min_version: str = MIN_VERSION,
    max_version: str = MAX_VERSION,
) -> bool:
    """Whether the bridge answers two PINGs on one probe socket: Java I2P does, i2pd 2.58 closes
    the socket after the first PONG and i2pd 2.46 to 2.57 on the first PING. SAM 3.3's HELLO is the
    same on both, so this is how a SAM client tells them apart (without risking a session)."""
    try:
        reader, writer = await open_socket(host, port, timeout)
    except SAMUnavailable:
        return False
    try:
        async with asyncio.timeout(timeout):
            if not supports_ping(await handshake(reader, writer, min_version, max_version)):
                return False
            for token in ("i2proxy-1", "i2proxy-2"):
                writer.write(protocol.ping(token))
                reply = protocol.parse_reply(await read_line(reader))
                if reply.topic != "PONG" or reply.text != token:
                    return False
            return True
    except (TimeoutError, SAMUnavailable, SAMProtocolError, protocol.SAMError):
        return False
    finally:
        writer.close()


def _consume_outcome(future: asyncio.Future[Reply]) -> None:
    if not future.cancelled():
        future.exception()


class ControlConnection:
    """asyncio adapter for :class:`ControlChannel`: one socket and its reader task."""

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
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._tasks = [asyncio.create_task(self._read_loop(), name="sam-control-read")]

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        timeout: float = 10.0,
        min_version: str = MIN_VERSION,
        max_version: str = MAX_VERSION,
    ) -> ControlConnection:
        reader, writer = await open_socket(host, port, timeout)
        with contextlib.suppress(OSError):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        conn = cls(reader, writer, ControlChannel())
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

    def _flush(self) -> None:
        data = self.channel.data_to_send()
        if data and not self._writer.is_closing():
            self._writer.write(data)

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
            if isinstance(event, ReplyReceived) and self._waiters:
                waiter = self._waiters.pop(0)
                if not waiter.done():
                    waiter.set_result(event.reply)

    def fail(self, reason: str) -> None:
        """Give up on this socket (the supervisor then re-creates the session)."""
        self._fail(reason)

    def _fail(self, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result(reason)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(SAMUnavailable(f"SAM control socket lost: {reason}"))
        self._waiters.clear()
        self._writer.close()

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
