"""asyncio adapter for the sans-IO ``I2CPSession``: one socket, one session, reconnects.

The client keeps one session per TCP connection. When the router goes away it fails every
waiter with ``RouterDisconnected``, tells its owner (``on_down``), and reconnects with
exponential backoff, re-creating the session with the same destination; ``on_up`` fires when
the new LeaseSet has been handed over.

Socket options: TCP_NODELAY on our side, and TCP_QUICKACK after every read, because i2pd never
sets TCP_NODELAY on its I2CP socket: its second small write would otherwise wait ~40 ms for our
delayed ACK.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import time
from collections.abc import Callable, Mapping

from i2proxy.i2cp import events as ev
from i2proxy.i2cp.errors import I2CPError, RouterDisconnected, SessionError
from i2proxy.i2cp.messages import SessionStatusCode
from i2proxy.i2cp.payload import Payload, Protocol
from i2proxy.i2cp.session import I2CPSession, SessionIdentity, State
from i2proxy.log import get_logger

log = get_logger("i2proxy.i2cp")

#: When (seconds after the session became ready) the client re-sends its LeaseSet so i2pd
#: publishes it even if its first attempt met unbuilt outbound tunnels ("not ready").
PUBLISH_NUDGES = (2.0, 5.0, 10.0, 20.0, 40.0, 80.0)
#: The first nudges happen even if a lookup already finds us: after a router restart the
#: floodfills may still hold our previous LeaseSet, whose tunnels are gone.
UNCONDITIONAL_NUDGES = 3
#: How often the client looks itself up until the network first returns its LeaseSet.
PUBLISH_POLL = 0.5

#: Callbacks waiting for a final MessageStatus; the oldest are dropped beyond this.
MAX_STATUS_CALLBACKS = 4096

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7654
_TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


class _Connection(asyncio.Protocol):
    """Moves bytes between one socket and one ``I2CPSession``."""

    def __init__(self, client: I2CPClient, session: I2CPSession) -> None:
        self.client = client
        self.session = session
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        #: Set when this connection's session got its first LeaseSet.
        self.became_ready = False
        self._sock: socket.socket | None = None
        self._flush_scheduled = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
        self.session.connect(time.time())
        self.flush()

    def data_received(self, data: bytes) -> None:
        self.session.receive_data(data, time.time())
        self.client._process_events(self)
        self.flush()
        if self._sock is not None and _TCP_QUICKACK is not None:
            with contextlib.suppress(OSError):
                self._sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        # Waiters learn the router is gone (not "lookup failed") before the session's own
        # end-of-connection events are processed.
        self.client._fail_waiters(RouterDisconnected("I2CP connection to the router lost"))
        self.session.connection_lost()
        self.client._process_events(self)
        if not self.closed.done():
            self.closed.set_result(exc)

    def flush(self) -> None:
        """Write what the session queued and re-arm its timer."""
        data = self.session.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
        deadline = self.session.get_timer()
        if deadline == self._deadline:
            return  # the common case on the data path: no lookup pending, nothing to re-arm
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadline = deadline
        if deadline is not None:
            delay = max(0.0, deadline - time.time())
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def flush_soon(self) -> None:
        """Write what the session queued once the current callback is done: the packets and
        ACKs produced for one batch of incoming messages leave in one socket write (one
        syscall here, one read in the router) instead of one each."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self.flush()

    def _on_timer(self) -> None:
        self._timer = None
        self._deadline = None
        self.session.handle_timer(time.time())
        self.client._process_events(self)
        self.flush()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class I2CPClient:
    """A persistent I2CP session to one router, with reconnects.

    ``on_payload(payload)`` receives every incoming message (unframed); ``on_down(exc)`` is
    called when the router connection is lost (``exc`` is a ``RouterDisconnected``); ``on_up()``
    when a session is ready again after a reconnect.
    """

    def __init__(
        self,
        identity: SessionIdentity,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        options: Mapping[str, str] | None = None,
        on_payload: Callable[[Payload], None] | None = None,
        on_down: Callable[[Exception], None] | None = None,
        on_up: Callable[[], None] | None = None,
        reconnect: bool = True,
        backoff_initial: float = 0.25,
        backoff_max: float = 4.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.identity = identity
        self.host = host
        self.port = port
        self.options = dict(options or {})
        self.on_payload = on_payload
        self.on_down = on_down
        self.on_up = on_up
        self.reconnect = reconnect
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.connect_timeout = connect_timeout
        #: How many sessions this client has had made ready (1 + successful reconnects).
        self.sessions_created = 0
        self.router_version: str | None = None
        self._conn: _Connection | None = None
        self._ready = asyncio.Event()
        self._first_result: asyncio.Future[None] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._closing = False
        self._lookups: dict[int, asyncio.Future[bytes | None]] = {}
        self._statuses: dict[int, asyncio.Future[int]] = {}
        #: nonce → callback for the final MessageStatus of a message sent with ``on_status``.
        self._status_callbacks: dict[int, Callable[[int], None]] = {}
        self._bandwidth: list[asyncio.Future[tuple[int, ...]]] = []
        self._reconfigure: list[asyncio.Future[bool]] = []
        self._publish_watch: asyncio.Task[None] | None = None
        #: Set once a lookup of our own hash through the network found our LeaseSet.
        self.published = asyncio.Event()
        #: LeaseSets re-sent to make the router publish (see ``PUBLISH_NUDGES``).
        self.republished = 0
        #: ``time.monotonic()`` when the current session became ready (None while there is none):
        #: how young its tunnels are (``dialer/young.py``).
        self.ready_at: float | None = None

    # ---------------------------------------------------------------- lifecycle

    @property
    def ready(self) -> bool:
        """True while a session exists and its LeaseSet has been handed to the router."""
        return self._ready.is_set()

    @property
    def session_id(self) -> int | None:
        return self._conn.session.session_id if self._conn else None

    async def start(self, timeout: float | None = 120.0) -> None:
        """Connect and create the session; returns once the first LeaseSet was handed over.

        Raises ``SessionError`` if the router rejects the session (e.g. a bad signature) and
        ``RouterDisconnected`` if the router cannot be reached within ``timeout``.
        """
        if self._runner is not None:
            raise I2CPError("client already started")
        loop = asyncio.get_running_loop()
        self._first_result = loop.create_future()
        self._runner = asyncio.create_task(self._run(), name="i2cp-client")
        try:
            await asyncio.wait_for(asyncio.shield(self._first_result), timeout)
        except TimeoutError:
            await self.close()
            raise RouterDisconnected(
                f"no I2CP session with {self.host}:{self.port} within {timeout} s"
            ) from None
        except BaseException:
            await self.close()
            raise

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until a session is ready (after a reconnect); ``RouterDisconnected`` on timeout."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            raise RouterDisconnected("I2CP session not ready") from None

    async def close(self) -> None:
        """Destroy the session politely and stop reconnecting."""
        self._closing = True
        conn = self._conn
        if conn is not None and conn.transport is not None and not conn.transport.is_closing():
            conn.session.destroy()
            conn.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(conn.closed), 1.0)
            conn.close()
        if self._publish_watch is not None:
            self._publish_watch.cancel()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner
        self._fail_waiters(RouterDisconnected("I2CP client closed"))

    async def _run(self) -> None:
        delay = self.backoff_initial
        while not self._closing:
            was_ready = await self._one_connection()
            if self._closing or not self.reconnect:
                break
            if was_ready:
                delay = self.backoff_initial
            log.info("i2cp.reconnecting", router=f"{self.host}:{self.port}", delay=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)

    async def _one_connection(self) -> bool:
        """Run one connection to its end. Returns whether its session became ready."""
        loop = asyncio.get_running_loop()
        session = I2CPSession(self.identity, self.options)
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(self, session), self.host, self.port),
                self.connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            log.debug("i2cp.connect_failed", router=f"{self.host}:{self.port}", error=str(exc))
            return False
        self._conn = conn
        try:
            await conn.closed
        finally:
            self._conn = None
            conn.close()
            self._connection_down()
        return conn.became_ready

    def _connection_down(self) -> None:
        had_session = self._ready.is_set()
        self._ready.clear()
        self.ready_at = None
        self.published.clear()
        if self._publish_watch is not None:
            self._publish_watch.cancel()
            self._publish_watch = None
        error = RouterDisconnected(f"I2CP connection to {self.host}:{self.port} lost")
        self._fail_waiters(error)
        if had_session and not self._closing:
            log.warning("i2cp.router_lost", router=f"{self.host}:{self.port}")
            if self.on_down is not None:
                try:
                    self.on_down(error)
                except Exception:
                    log.exception("i2cp.on_down_failed")

    def _fail_waiters(self, error: Exception) -> None:
        self._status_callbacks.clear()  # their streams are aborted by on_down
        for futures in (self._lookups, self._statuses):
            for future in futures.values():
                if not future.done():
                    future.set_exception(error)
            futures.clear()
        for pending in (self._bandwidth, self._reconfigure):
            for future in pending:
                if not future.done():
                    future.set_exception(error)
            pending.clear()

    # ---------------------------------------------------------------- events

    def _process_events(self, conn: _Connection) -> None:
        session = conn.session
        while (event := session.next_event()) is not None:
            try:
                self._on_event(conn, event)
            except Exception:
                log.exception("i2cp.event_handler_failed", kind=type(event).__name__)

    def _on_event(self, conn: _Connection, event: ev.Event) -> None:
        if isinstance(event, ev.PayloadReceived):
            if self.on_payload is not None:
                self.on_payload(event.payload)
        elif isinstance(event, ev.LookupCompleted):
            future = self._lookups.pop(event.request_id, None)
            if future is not None and not future.done():
                future.set_result(event.destination)
        elif isinstance(event, ev.MessageStatusReceived):
            if event.final:
                status_future = self._statuses.pop(event.nonce, None)
                if status_future is not None and not status_future.done():
                    status_future.set_result(event.status)
                callback = self._status_callbacks.pop(event.nonce, None)
                if callback is not None:
                    callback(event.status)
        elif isinstance(event, ev.LeaseSetCreated):
            if event.first:
                self._session_ready(conn)
        elif isinstance(event, ev.SessionCreated):
            log.info("i2cp.session_created", session_id=event.session_id)
        elif isinstance(event, ev.RouterDateReceived):
            self.router_version = event.version
        elif isinstance(event, ev.SessionRejected):
            name = SessionStatusCode(event.status).name.lower()
            error = SessionError(f"router rejected the session: {name}", status=event.status)
            log.warning("i2cp.session_rejected", status=event.status)
            if self._first_result is not None and not self._first_result.done():
                self._closing = True
                self._first_result.set_exception(error)
            conn.close()
        elif isinstance(event, ev.BandwidthLimitsReceived):
            for future in self._bandwidth:
                if not future.done():
                    future.set_result(event.limits)
            self._bandwidth.clear()
        elif isinstance(event, ev.SessionReconfigured):
            if self._reconfigure:
                future = self._reconfigure.pop(0)
                if not future.done():
                    future.set_result(event.accepted)
        elif isinstance(event, ev.SessionDestroyed | ev.ConnectionTerminated):
            log.info("i2cp.session_ended", kind=type(event).__name__)
            conn.close()
        elif isinstance(event, ev.LeaseSetFailed):
            log.error("i2cp.leaseset_failed", error=str(event.error))
        elif isinstance(event, ev.MessageDropped):
            log.warning("i2cp.message_dropped", type=event.message_type, error=str(event.error))

    def _session_ready(self, conn: _Connection) -> None:
        conn.became_ready = True
        self.sessions_created += 1
        self.ready_at = time.monotonic()
        self._ready.set()
        log.info(
            "i2cp.session_ready",
            session_id=conn.session.session_id,
            leases=len(conn.session.leases),
            sessions=self.sessions_created,
        )
        self._publish_watch = asyncio.create_task(
            self._watch_publication(conn), name="i2cp-publish-watch"
        )
        if self._first_result is not None and not self._first_result.done():
            self._first_result.set_result(None)
        elif self.on_up is not None:
            try:
                self.on_up()
            except Exception:
                log.exception("i2cp.on_up_failed")

    async def _watch_publication(self, conn: _Connection) -> None:
        """Look ourselves up through the network and re-send the LeaseSet until it is found.

        A found lookup also proves our outbound tunnels work (the lookup left through one), so
        ``published`` doubles as "sending works now": i2pd asks for the LeaseSet as soon as an
        inbound tunnel exists and drops messages sent before an outbound tunnel does.
        Lookups run every ``PUBLISH_POLL`` s until the first success, then only at the nudges.
        """
        own_hash = hashlib.sha256(self.identity.destination_bytes).digest()
        loop = asyncio.get_running_loop()
        started = loop.time()
        nudges = list(PUBLISH_NUDGES)
        done_nudges = 0
        while nudges and self._conn is conn:
            elapsed = loop.time() - started
            until_nudge = max(0.0, nudges[0] - elapsed)
            await asyncio.sleep(
                until_nudge if self.published.is_set() else min(PUBLISH_POLL, until_nudge)
            )
            if self._conn is not conn:
                return
            try:
                found = await self.lookup(hash=own_hash, timeout=5.0) is not None
            except RouterDisconnected:
                return
            if found and not self.published.is_set():
                self.published.set()
                log.info("i2cp.published", after=round(loop.time() - started, 2))
            if loop.time() - started < nudges[0]:
                continue
            at = nudges.pop(0)
            done_nudges += 1
            if found and done_nudges > UNCONDITIONAL_NUDGES:
                return
            if conn.session.republish_lease_set(time.time()):
                self.republished += 1
                log.debug("i2cp.leaseset_republished", found=found, after=at)
                conn.flush()
        if not self.published.is_set():
            log.warning("i2cp.leaseset_not_published", after=PUBLISH_NUDGES[-1])

    async def wait_published(self, timeout: float | None = None) -> None:
        """Wait until the network returns our LeaseSet (and so our outbound tunnels work)."""
        try:
            await asyncio.wait_for(self.published.wait(), timeout)
        except TimeoutError:
            raise RouterDisconnected("our LeaseSet is not visible in the network yet") from None

    # ---------------------------------------------------------------- operations

    def _live(self) -> _Connection:
        conn = self._conn
        if conn is None or conn.session.state in (State.IDLE, State.CLOSED, State.HANDSHAKE):
            raise RouterDisconnected(f"no I2CP connection to {self.host}:{self.port}")
        return conn

    def send(
        self,
        destination: bytes,
        data: bytes,
        *,
        protocol: int = Protocol.STREAMING,
        src_port: int = 0,
        dst_port: int = 0,
        on_status: Callable[[int], None] | None = None,
    ) -> None:
        """Send one message. Raises ``RouterDisconnected`` when down.

        Without ``on_status`` the nonce is 0 and the router reports nothing (the data path:
        one router write less per packet). With it, ``on_status(code)`` is called with the
        final MessageStatus (4 handed to a tunnel, 21 no LeaseSet, …; see
        ``messages.MessageStatusCode``); it is never called if the connection drops first.
        """
        conn = self._live()
        if conn.session.session_id is None:
            raise RouterDisconnected("I2CP session not created yet")
        nonce = conn.session.send_payload(
            destination,
            data,
            time.time(),
            protocol=protocol,
            src_port=src_port,
            dst_port=dst_port,
            track=on_status is not None,
        )
        if on_status is not None:
            self._status_callbacks[nonce] = on_status
            if len(self._status_callbacks) > MAX_STATUS_CALLBACKS:
                del self._status_callbacks[next(iter(self._status_callbacks))]
        conn.flush_soon()

    async def send_tracked(
        self,
        destination: bytes,
        data: bytes,
        *,
        protocol: int = Protocol.STREAMING,
        src_port: int = 0,
        dst_port: int = 0,
        timeout: float = 30.0,
    ) -> int:
        """Send and wait for the final MessageStatus code (4 = handed to a tunnel, 21 = no LS)."""
        conn = self._live()
        nonce = conn.session.send_payload(
            destination,
            data,
            time.time(),
            protocol=protocol,
            src_port=src_port,
            dst_port=dst_port,
            track=True,
        )
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._statuses[nonce] = future
        conn.flush()
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._statuses.pop(nonce, None)

    async def lookup(
        self, *, hash: bytes | None = None, name: str | None = None, timeout: float = 10.0
    ) -> bytes | None:
        """HostLookup by hash or name: the destination's bytes, or None when not found."""
        conn = self._live()
        request_id = conn.session.lookup(time.time(), hash=hash, name=name, timeout=timeout)
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._lookups[request_id] = future
        conn.flush()
        try:
            return await future
        finally:
            self._lookups.pop(request_id, None)

    async def bandwidth_limits(self, timeout: float = 10.0) -> tuple[int, ...]:
        conn = self._live()
        future: asyncio.Future[tuple[int, ...]] = asyncio.get_running_loop().create_future()
        self._bandwidth.append(future)
        conn.session.request_bandwidth_limits()
        conn.flush()
        return await asyncio.wait_for(future, timeout)

    async def reconfigure(self, options: Mapping[str, str], timeout: float = 10.0) -> bool:
        """ReconfigureSession; True when the router answered "updated"."""
        conn = self._live()
        self.options.update(options)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._reconfigure.append(future)
        conn.session.reconfigure(options, time.time())
        conn.flush()
        return await asyncio.wait_for(future, timeout)
