"""Datagram endpoints over a SAM v3 bridge: one STYLE=DATAGRAM session per endpoint.

Datagrams travel over the session's own TCP control socket (``DATAGRAM SEND`` out,
``DATAGRAM RECEIVED`` in), which every SAM v3 bridge speaks and which needs nothing but the SAM
TCP port (the router's SAM UDP port is not used). Why one session (and so one destination) per
endpoint: i2pd 2.45.1's ``DATAGRAM RECEIVED`` carries no ports, so a session cannot tell its
endpoints apart, and it has no DATAGRAM subsessions to share the stream session's destination.

i2pd 2.45.1 details this relies on (measured on the test network):
- ``DATAGRAM SEND`` needs the full base64 destination (a b32 name is parsed as base64 and
  dropped), so b32 targets are resolved with ``NAMING LOOKUP`` on the session socket, which also
  makes the session's own destination know the target's LeaseSet: the datagram itself is not
  dropped for want of a route.
- The session drops *raw* datagrams ("no receiver for raw datagram"): i2pd's own UDP tunnels
  answer raw within 100 ms of a request, so fast UDP services behind them cannot answer a SAM
  client of i2pd 2.45.1. Repliable answers arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Mapping

from i2proxy.dialer.base import InvalidTarget, PeerUnreachable, RouterUnavailable
from i2proxy.dialer.datagrams import EPHEMERAL_PORTS, MAX_PAYLOAD, DatagramEndpoint
from i2proxy.i2p.destination import Destination
from i2proxy.i2p.errors import I2PFormatError
from i2proxy.log import get_logger
from i2proxy.sam import protocol

log = get_logger("i2proxy.dialer.sam")

#: A DATAGRAM RECEIVED larger than this is a protocol error (I2CP carries at most 64 KiB).
MAX_RECEIVED = 65536
SESSION_TIMEOUT = 120.0
LOOKUP_TIMEOUT = 30.0
#: Destinations kept per session for b32 → base64 (lookups are cached for the session's life).
MAX_CACHED_DESTINATIONS = 256


class SAMDatagramSession:
    """One SAM DATAGRAM session on its own control socket, feeding one ``DatagramEndpoint``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.endpoint: DatagramEndpoint | None = None
        self._lookups: asyncio.Queue[asyncio.Future[str]] = asyncio.Queue()
        self._destinations: dict[str, str] = {}
        self._lookup_lock = asyncio.Lock()
        self._reader_task: asyncio.Task[None] | None = None
        #: Lines or datagrams from the bridge we could not parse (skipped).
        self.malformed = 0

    @classmethod
    async def open(
        cls, host: str, port: int, options: Mapping[str, str] | None = None
    ) -> SAMDatagramSession:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
        except (OSError, TimeoutError) as exc:
            raise RouterUnavailable(f"SAM bridge {host}:{port}: {exc}") from exc
        session = cls(reader, writer)
        try:
            await session._create(options or {})
        except BaseException:
            writer.close()
            raise
        return session

    async def _create(self, options: Mapping[str, str]) -> None:
        # i2pd answers MIN=3.0 with 3.0 whatever MAX says; 3.1 is all DATAGRAM SEND needs.
        hello = await self._command(protocol.hello("3.1", "3.1"), 10)
        if not hello.ok:
            raise RouterUnavailable(f"SAM HELLO refused: {hello.params}")
        session_id = f"i2proxy-dg-{secrets.token_hex(4)}"
        create = protocol.session_create(
            session_id,
            style="DATAGRAM",
            signature_type="EdDSA_SHA512_Ed25519",
            options={k: v for k, v in options.items() if not k.startswith("i2p.streaming.")},
        )
        status = await self._command(create, SESSION_TIMEOUT)
        if not status.ok:
            raise RouterUnavailable(f"SAM DATAGRAM session refused: {status.params}")
        self._reader_task = asyncio.create_task(self._read_loop(), name="sam-datagrams")

    async def _command(self, line: bytes, timeout: float) -> protocol.Reply:
        self.writer.write(line)
        await self.writer.drain()
        try:
            raw = await asyncio.wait_for(self.reader.readline(), timeout)
        except TimeoutError as exc:
            raise RouterUnavailable("SAM bridge did not answer") from exc
        if not raw:
            raise RouterUnavailable("SAM bridge closed the connection")
        return protocol.parse_reply(raw)

    # ---------------------------------------------------------------- sending

    async def send(self, target: Destination | str, data: bytes, port: int, local_port: int) -> str:
        full, b32 = await self._resolve(target)
        head = protocol.build_command(
            ("DATAGRAM", "SEND"),
            {
                "DESTINATION": full,
                "SIZE": str(len(data)),
                "FROM_PORT": str(local_port),
                "TO_PORT": str(port),
            },
        )
        if self.writer.is_closing():
            raise RouterUnavailable("SAM datagram session closed")
        self.writer.write(head + data)
        await self.writer.drain()
        return b32

    async def _resolve(self, target: Destination | str) -> tuple[str, str]:
        if isinstance(target, Destination):
            return target.to_base64(), target.b32
        text = target.strip()
        if not text.lower().endswith(".b32.i2p"):
            try:
                destination = Destination.from_base64(text)
            except (I2PFormatError, ValueError) as exc:
                raise InvalidTarget(f"not a b32 name or base64 destination: {text[:60]!r}") from exc
            return destination.to_base64(), destination.b32
        name = text.lower()
        cached = self._destinations.get(name)
        if cached is not None:
            return cached, name
        async with self._lookup_lock:  # one lookup at a time: replies are not tagged
            future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            await self._lookups.put(future)
            self.writer.write(protocol.naming_lookup(name))
            await self.writer.drain()
            try:
                full = await asyncio.wait_for(future, LOOKUP_TIMEOUT)
            except TimeoutError as exc:
                raise PeerUnreachable(f"{name}: lookup timed out") from exc
        if len(self._destinations) >= MAX_CACHED_DESTINATIONS:
            self._destinations.pop(next(iter(self._destinations)))
        self._destinations[name] = full
        return full, name

    # ---------------------------------------------------------------- receiving

    async def _read_loop(self) -> None:
        try:
            while True:
                raw = await self.reader.readline()
                if not raw:
                    return
                try:
                    reply = protocol.parse_reply(raw)
                except protocol.SAMProtocolError:
                    self.malformed += 1
                    continue
                if reply.topic == "NAMING":
                    self._lookup_answered(reply)
                elif reply.topic == "DATAGRAM" and reply.kind == "RECEIVED":
                    await self._datagram(reply)
                elif reply.topic == "PING":
                    self.writer.write(protocol.pong(reply.text))
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            self._fail_lookups()
            if self.endpoint is not None:
                self.endpoint.close()

    def _lookup_answered(self, reply: protocol.Reply) -> None:
        with contextlib.suppress(asyncio.QueueEmpty):
            future = self._lookups.get_nowait()
            if future.done():
                return
            value = reply.params.get("VALUE")
            if reply.ok and value:
                future.set_result(value)
            else:
                future.set_exception(PeerUnreachable(f"lookup failed: {reply.params}"))

    async def _datagram(self, reply: protocol.Reply) -> None:
        try:
            size = int(reply.params.get("SIZE", ""))
        except ValueError:
            size = -1
        if not 0 <= size <= MAX_RECEIVED:
            raise ValueError(f"DATAGRAM RECEIVED with SIZE {reply.params.get('SIZE')!r}")
        payload = await self.reader.readexactly(size)
        try:
            sender = Destination.from_base64(reply.params.get("DESTINATION", ""))
        except (I2PFormatError, ValueError):
            self.malformed += 1
            return
        from_port = _port(reply.params.get("FROM_PORT"))
        if self.endpoint is not None and len(payload) <= MAX_PAYLOAD * 2:
            # The bridge verified the signature: a DATAGRAM session only gets repliable ones.
            self.endpoint.deliver(payload, sender.b32, from_port, True)

    def _fail_lookups(self) -> None:
        while not self._lookups.empty():
            future = self._lookups.get_nowait()
            if not future.done():
                future.set_exception(RouterUnavailable("SAM datagram session closed"))

    def close(self, _endpoint: DatagramEndpoint | None = None) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
        self.writer.close()


def _port(value: str | None) -> int | None:
    """A port the bridge reported, or None (i2pd 2.45.1 reports none)."""
    try:
        port = int(value) if value is not None else -1
    except ValueError:
        return None
    return port if 0 <= port <= 0xFFFF else None


async def open_sam_datagram_endpoint(
    host: str, port: int, options: Mapping[str, str] | None = None
) -> DatagramEndpoint:
    """A ``DatagramEndpoint`` backed by a new SAM DATAGRAM session (its own destination)."""
    session = await SAMDatagramSession.open(host, port, options)
    local_port = EPHEMERAL_PORTS[secrets.randbelow(len(EPHEMERAL_PORTS))]
    endpoint = DatagramEndpoint(local_port, session.send, session.close)
    session.endpoint = endpoint
    log.info("sam datagram session", bridge=f"{host}:{port}", local_port=local_port)
    return endpoint
