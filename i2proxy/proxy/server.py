"""asyncio listeners for the HTTP, SOCKS and mixed ports: the thin layer around the codecs.

Each accepted connection runs in its own task under :meth:`ProxyServer._serve`, which owns the
limits (allow-list, client count) and guarantees that no exception escapes and the socket is
always closed. Everything protocol-shaped is decided in ``socks.py``, ``http.py``,
``headers.py`` and ``routing.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import struct
import termios
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from i2proxy.config import Config, parse_listen
from i2proxy.dialer.base import DialError, LocalLimitReached, RouterUnavailable
from i2proxy.dialer.pool import OUTPROXY_KEY
from i2proxy.log import get_logger
from i2proxy.proxy import memory, pages, socks
from i2proxy.proxy.context import ClientSlot, SessionContext, Stats
from i2proxy.proxy.http import HelperTokens
from i2proxy.proxy.http_session import HttpSession
from i2proxy.proxy.listener import Listener, raise_open_files_limit, serve
from i2proxy.proxy.outproxy import OutproxyChooser, parse_outproxy
from i2proxy.proxy.outproxy_dial import OutproxyDialer
from i2proxy.proxy.routing import Resolver
from i2proxy.proxy.socks_session import SocksSession
from i2proxy.proxy.streams import READ_SIZE, Closed, linger

if TYPE_CHECKING:
    from i2proxy.dialer.base import Dialer
    from i2proxy.dialer.datagrams import DatagramEndpoint
    from i2proxy.dialer.pool import DestinationPool
    from i2proxy.dialer.pool_table import IsolationKey
    from i2proxy.i2p.destination import Destination
    from i2proxy.proxy.routing import NameBook

log = get_logger("i2proxy.proxy")

_RETRY_AFTER = (b"retry-after", b"5")
#: Open files besides the clients and the pending budget: the router connection, listeners,
#: log, address book, outproxy and site connections of the loopback pages.
SPARE_FILES = 256
#: A timer this late (seconds) means the event loop was stalled, not the client slow.
STALL = 1.0
#: How soon to look again at a full pre-auth budget whose old connections have unread requests.
UNREAD_RECHECK = 0.1

__all__ = ["ProxyServer", "Stats"]


@dataclass
class _Pending:
    task: asyncio.Task[None]
    writer: asyncio.StreamWriter
    #: The ``auth_timeout`` eviction, armed when its task first runs.
    timer: asyncio.TimerHandle | None = None
    #: Loop time its task first ran (None before): it cannot be closed to make room before
    #: ``pending_grace`` after that. Counted from the first run, not from the accept: with the
    #: event loop busy (1000 streams at once) a connection could wait a second to be read at
    #: all, and was closed with its request unread in the socket.
    since: float | None = None
    #: Its StreamReader: bytes asyncio already read from the socket wait here for the task.
    reader: asyncio.StreamReader | None = None
    #: The client runs on this machine (:func:`_same_host`): never closed to make room.
    same_host: bool = False


@dataclass
class _Client:
    task: asyncio.Task[None]
    writer: asyncio.StreamWriter


class RateLimitedLog:
    """A warning logged at most once per ``every`` seconds, with how often it happened since."""

    def __init__(self, message: str, every: float) -> None:
        self.message = message
        self.every = every
        self._last = -float("inf")
        self._count = 0

    def event(self, **fields: Any) -> None:
        self._count += 1
        now = time.monotonic()
        if now - self._last >= self.every:
            log.warning(self.message, times=self._count, **fields)
            self._last = now
            self._count = 0


def _unread_bytes(writer: asyncio.StreamWriter) -> int:
    """Bytes the client sent that are still in the kernel's receive queue (FIONREAD)."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0" * 4))[0])
    except (OSError, ValueError):
        return 0


def _buffered_bytes(reader: asyncio.StreamReader | None) -> int:
    """Bytes asyncio has read from the socket that the connection's task has not consumed yet
    (StreamReader keeps them in ``_buffer``; no public accessor)."""
    return len(getattr(reader, "_buffer", b"")) if reader is not None else 0


def _address_of(peer: Any) -> str:
    try:
        return str(peer[0])
    except (TypeError, IndexError):
        return ""


def _same_host(writer: asyncio.StreamWriter) -> bool:
    """The client connected from the address it connected to: it runs on this machine (a
    local app on 127.0.0.1 or ::1, or one using this host's LAN address). Such clients all
    share one address, so a per-address cap cannot tell them apart, and a slow one is this
    machine being busy, not a LAN host holding connections open (docs/PROXY.md "Pre-auth
    budget")."""
    peer = _address_of(writer.get_extra_info("peername"))
    return bool(peer) and peer == _address_of(writer.get_extra_info("sockname"))


class ProxyServer:
    """The HTTP, SOCKS and mixed listeners of one i2proxy instance."""

    def __init__(
        self,
        config: Config,
        dialer: Dialer,
        book: NameBook | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        pool: DestinationPool | None = None,
    ) -> None:
        self.config = config
        self.dialer = dialer
        #: Isolated destinations by key; without a pool every key uses ``dialer``.
        self.pool = pool
        self.book = book
        self.resolver = Resolver(book)
        self.tokens = HelperTokens()
        self.stats = Stats()
        self.clock = clock
        #: Actual bound addresses by listener name ("http", "socks", "mixed").
        self.addresses: dict[str, tuple[str, int]] = {}
        self._listeners: list[Listener] = []
        #: Re-runs the pending budget once its oldest over-limit connection is old enough.
        self._room_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._allow = [ipaddress.ip_network(c, strict=False) for c in config.allow]
        self._closing = False
        self._memory_task: asyncio.Task[None] | None = None
        self._burst_watch = memory.BurstWatch()
        #: Connections not yet authenticated, oldest first.
        self._pending: dict[ClientSlot, _Pending] = {}
        #: Admitted connections (one of ``max_clients`` each).
        self._clients: dict[ClientSlot, _Client] = {}
        #: I2P streams handed to sessions and not released yet.
        self._streams: set[asyncio.StreamWriter] = set()
        self._evict_log = RateLimitedLog("pending connection closed", every=10.0)
        self._busy_log = RateLimitedLog("max_clients reached: client refused", every=10.0)
        self._idle_log = RateLimitedLog(
            "limit reached: idle connection closed for a fresh request", every=10.0
        )
        self.context = SessionContext(
            config=config,
            resolver=self.resolver,
            tokens=self.tokens,
            stats=self.stats,
            clock=clock,
            open_stream=self.open_stream,
            release_stream=self.release_stream,
            addresses=self.addresses,
            closing=lambda: self._closing,
            open_datagram_endpoint=self.open_datagram_endpoint,
            pool_stats=pool.stats if pool is not None else dict,
        )
        if config.outproxy:
            chooser = OutproxyChooser([parse_outproxy(url) for url in config.outproxy])
            self.context.outproxies = OutproxyDialer(self.context, chooser, clock)

    @property
    def closing(self) -> bool:
        """True once shutdown began: sessions finish their exchange and do not take another."""
        return self._closing

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self.config.check_exposure()
        needed = self.config.max_clients + self.config.max_pending + SPARE_FILES
        limit = raise_open_files_limit(needed)
        if 0 <= limit < needed:
            log.warning(
                "open files limit below max_clients",
                limit=limit,
                needed=needed,
                fix="raise the hard limit (ulimit -Hn, LimitNOFILE=) or lower max_clients",
            )
        for name, value, handler in (
            ("http", self.config.http_listen, self._handle_http),
            ("socks", self.config.socks_listen, self._handle_socks),
            ("mixed", self.config.mixed_listen, self._handle_mixed),
        ):
            if not value:
                continue
            host, port = parse_listen(value, f"{name}_listen")

            def client_connected(r: asyncio.StreamReader, w: asyncio.StreamWriter, h=handler):
                self._spawn(r, w, h)

            listener = await serve(
                host, port, client_connected, self._has_room, self._room_in, limit=READ_SIZE
            )
            self._listeners.append(listener)
            sockname = listener.sockets[0].getsockname()
            self.addresses[name] = (sockname[0], sockname[1])
            log.info("listening", listener=name, address=f"{sockname[0]}:{sockname[1]}")
        if self.config.release_memory:
            self._memory_task = asyncio.create_task(self._release_memory_after_bursts())

    async def _release_memory_after_bursts(self) -> None:
        """Give the memory of a burst of connections back once it is over (``memory.py``)."""
        watch = self._burst_watch
        while True:
            await asyncio.sleep(memory.CHECK_EVERY)
            peak, count = watch.peak, len(self._tasks)
            if watch.observe(count, self.clock()):
                released = memory.release_memory()
                log.info("memory released after a burst", peak=peak, connections=count, **released)

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting, let running exchanges finish for ``grace`` seconds, then close all."""
        self._closing = True
        if self._room_timer is not None:
            self._room_timer.cancel()
        if self._memory_task is not None:
            self._memory_task.cancel()
        for listener in self._listeners:
            with contextlib.suppress(Exception):
                await listener.close()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2.0)
        for writer in list(self._writers):
            writer.close()

    def _spawn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler) -> None:
        slot = ClientSlot(_address_of(writer.get_extra_info("peername")), self._admit, self.clock)
        task = asyncio.create_task(self._serve(reader, writer, handler, slot))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._burst_watch.note(len(self._tasks))
        self._pending[slot] = _Pending(task, writer, reader=reader, same_host=_same_host(writer))
        self.stats.pending = len(self._pending)
        self._make_room()

    def _start_pending_clock(self, slot: ClientSlot) -> None:
        """The connection's task runs: from now on it has ``pending_grace`` before it may be
        closed to make room, and ``auth_timeout`` to authenticate."""
        pending = self._pending.get(slot)
        if pending is None or pending.since is not None:
            return
        loop = asyncio.get_running_loop()
        pending.since = loop.time()
        pending.timer = self._auth_timer(slot)
        self._make_room()
        self._wake_listeners()  # their wait for room can now end at since + pending_grace

    # -- the pre-auth budget (docs/PROXY.md "Pre-auth budget") ----------------------------------

    def _has_room(self) -> bool:
        """May the listeners accept another connection? Below the budget, or when a pending
        connection can be closed for the new one (:meth:`_evictable`)."""
        if len(self._pending) < self.config.max_pending:
            return True
        now = asyncio.get_running_loop().time()
        return any(self._evictable(p, now) for p in self._pending.values())

    def _room_in(self) -> float | None:
        """Seconds until the listeners should look for room again."""
        started = [
            p.since for p in self._pending.values() if p.since is not None and not p.same_host
        ]
        if not started:
            return None  # none may be closed by age: a wake follows when one runs or leaves
        wait = self.config.pending_grace - (asyncio.get_running_loop().time() - min(started))
        return wait if wait > 0 else UNREAD_RECHECK

    def _evictable(self, pending: _Pending, now: float) -> bool:
        """From another host, pending for ``pending_grace`` since its task first ran, and
        silent. A client on this machine is never closed to make room (only ``auth_timeout``
        closes it): a burst of local clients in one slow process (1000 at once, requests
        written up to 2.5 s after connecting on a loaded machine) lost 64-128 so. A request that
        waits unread in the socket, or read by asyncio into the connection's StreamReader but
        not yet taken by its task, means we were slow, not the client (1000 simultaneous
        requests on a loaded machine: 6-9 % were closed so, their request unread; 64 of 1000
        later, with only the socket checked). The sessions take whatever is buffered at once,
        so a client sending a partial head is not spared past its task's next turn."""
        return (
            not pending.same_host
            and pending.since is not None
            and now - pending.since >= self.config.pending_grace
            and not _unread_bytes(pending.writer)
            and not _buffered_bytes(pending.reader)
        )

    def _make_room(self) -> None:
        """Keep the budget: close the oldest pending connections of another host over
        ``max_pending_per_address``, and the oldest of all while over ``max_pending`` — only
        evictable ones (:meth:`_evictable`): a connection of a burst gets ``pending_grace`` to
        send its request (until then the kernel's accept queue holds the rest), one from this
        machine ``auth_timeout``."""
        now = asyncio.get_running_loop().time()
        per_address = Counter(slot.address for slot, p in self._pending.items() if not p.same_host)
        excess = len(self._pending) - self.config.max_pending
        for slot, pending in list(self._pending.items()):  # oldest first
            if pending.same_host:
                continue
            crowded = per_address[slot.address] > self.config.max_pending_per_address
            if not crowded and excess <= 0:
                continue
            if pending.since is None:
                return  # not read yet; every later one neither (tasks run in order)
            wait = self.config.pending_grace - (now - pending.since)
            if wait > 0:  # every later one is younger still: look again then
                self._arm_room_timer(wait)
                return
            if not self._evictable(pending, now):
                self._arm_room_timer(UNREAD_RECHECK)  # its request is being read soon
                continue
            reason = "too many pending connections" + (" from this address" if crowded else "")
            self._evict(slot, reason)
            per_address[slot.address] -= 1
            excess -= 1

    def _arm_room_timer(self, delay: float) -> None:
        if self._room_timer is not None:
            self._room_timer.cancel()
        self._room_timer = asyncio.get_running_loop().call_later(delay, self._on_room_timer)

    def _on_room_timer(self) -> None:
        self._room_timer = None
        self._make_room()
        self._wake_listeners()

    def _wake_listeners(self) -> None:
        for listener in self._listeners:
            listener.wake()

    def _auth_timer(self, slot: ClientSlot) -> asyncio.TimerHandle:
        loop = asyncio.get_running_loop()
        due = loop.time() + self.config.auth_timeout
        return loop.call_at(due, self._auth_expired, slot, due)

    def _auth_expired(self, slot: ClientSlot, due: float) -> None:
        """``auth_timeout`` is over, unless the proxy itself was stalled meanwhile (the timer
        fires late, e.g. while thousands of streams close at once: the client's request may be
        sitting unread): then it gets the time again, as the pending budget still bounds it."""
        pending = self._pending.get(slot)
        if pending is None:
            return
        if asyncio.get_running_loop().time() - due > STALL:
            pending.timer = self._auth_timer(slot)
            return
        self._evict(slot, "did not authenticate in time")

    def _evict(self, slot: ClientSlot, reason: str) -> None:
        pending = self._pending.pop(slot, None)
        if pending is None:
            return
        self._wake_listeners()
        self.stats.pending = len(self._pending)
        self.stats.pending_evicted += 1
        self._evict_log.event(reason=reason)
        if pending.timer is not None:
            pending.timer.cancel()
        pending.writer.transport.abort()
        pending.task.cancel()

    def _admit(self, slot: ClientSlot) -> bool:
        pending = self._pending.pop(slot, None)
        self.stats.pending = len(self._pending)
        if pending is None:  # evicted meanwhile
            return False
        self._wake_listeners()
        if pending.timer is not None:
            pending.timer.cancel()
        if self._closing:
            self.stats.refused += 1
            return False
        if self.stats.clients >= self.config.max_clients and not self._evict_idle("max_clients"):
            self.stats.refused += 1
            self._busy_log.event(max_clients=self.config.max_clients)
            return False
        self.stats.clients += 1
        self._clients[slot] = _Client(pending.task, pending.writer)
        return True

    def _evict_idle(self, limit: str, *, holding_stream: bool = False) -> bool:
        """Close the longest-idle admitted connection (idle at least ``evict_idle_after``
        seconds; holding an I2P stream if ``holding_stream``) so a fresh request gets its
        place; False when none qualifies. Its streams are aborted, which frees their place
        in the stream table at once (a graceful close would hold it until the peer answers).
        """
        latest = self.clock() - self.config.evict_idle_after
        candidates = [
            slot
            for slot in self._clients
            if slot.idle_since is not None
            and slot.idle_since <= latest
            and (slot.streams or not holding_stream)
        ]
        if not candidates:
            return False
        slot = min(candidates, key=lambda s: s.idle_since or 0.0)
        client = self._clients.pop(slot)
        slot.admitted = False
        self.stats.clients -= 1
        self.stats.idle_evicted += 1
        self._idle_log.event(limit=limit, idle_s=round(self.clock() - (slot.idle_since or 0), 1))
        for stream in list(slot.streams):
            with contextlib.suppress(Exception):
                stream.transport.abort()
            self.release_stream(stream)
        slot.streams.clear()
        client.writer.transport.abort()
        client.task.cancel()
        return True

    async def _serve(self, reader, writer, handler, slot: ClientSlot) -> None:
        """Run one client connection; nothing raised by a client ever leaves this function."""
        self._start_pending_clock(slot)
        self.stats.connections += 1
        self._writers.add(writer)
        peer = writer.get_extra_info("peername")
        try:
            if not self._peer_allowed(peer):
                self.stats.refused += 1
                log.warning("client refused by allow-list")
                log.debug("client refused by allow-list", peer=str(peer))
                await linger(reader, writer)
                return
            if self._closing:
                self.stats.refused += 1
                await self._refuse_busy(reader, writer, handler)
                await linger(reader, writer)
                return
            await handler(reader, writer, slot)
        except (Closed, ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except DialError as exc:
            # An I2P stream failed under the exchange (the router restarted): expected, no bug.
            log.info("connection ended: the I2P stream failed", error=type(exc).__name__)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.stats.internal_errors += 1
            log.exception("connection task failed")
            log.debug("connection task failed", peer=str(peer))
        finally:
            if slot.admitted:
                self.stats.clients -= 1
                self._clients.pop(slot, None)
            pending = self._pending.pop(slot, None)
            if pending is not None:
                if pending.timer is not None:
                    pending.timer.cancel()
                self.stats.pending = len(self._pending)
                self._wake_listeners()
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2.0)

    def _peer_allowed(self, peer: Any) -> bool:
        if not self._allow:
            return True
        try:
            address = ipaddress.ip_address(peer[0].split("%", 1)[0])
        except (TypeError, ValueError, IndexError):
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in net for net in self._allow)

    async def _refuse_busy(self, reader, writer, handler) -> None:
        """Too many clients: answer in the client's protocol, then close."""
        first = b"H"
        if handler != self._handle_http:
            first = await asyncio.wait_for(reader.read(1), 2.0)
        if first[:1] in (b"\x04", b"\x05"):
            writer.write(socks.refuse_client(first[0]))
        else:
            body = pages.error_page(503, "Service Unavailable", "too many clients; retry later")
            writer.write(pages.response_bytes(503, body, [*pages.PAGE_HEADERS, _RETRY_AFTER]))
        await writer.drain()

    async def _handle_mixed(self, reader, writer, slot: ClientSlot) -> None:
        first = await asyncio.wait_for(reader.read(READ_SIZE), self.config.handshake_timeout)
        if not first:
            return
        if first[0] in (4, 5):
            await self._handle_socks(reader, writer, slot, first, listener="mixed")
        elif 0x41 <= first[0] <= 0x5A:
            await self._handle_http(reader, writer, slot, first, listener="mixed")
        # Anything else is neither protocol: close without a word.

    async def _handle_http(
        self, reader, writer, slot: ClientSlot, initial: bytes = b"", listener="http"
    ) -> None:
        await HttpSession(self.context, reader, writer, slot, listener).run(initial)

    async def _handle_socks(
        self, reader, writer, slot: ClientSlot, initial: bytes = b"", listener="socks"
    ) -> None:
        await SocksSession(self.context, reader, writer, slot, listener).run(initial)

    # -- shared helpers ------------------------------------------------------------------------

    async def open_stream(
        self,
        target: Destination | str,
        port: int,
        initial_data: bytes,
        key: IsolationKey | None = None,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A stream from ``key``'s destination (the pool's), or from the shared one."""
        try:
            reader, writer = await self._dial(target, port, initial_data, key)
        except LocalLimitReached:
            # The stream table (or the destination pool) is full: an idle connection's stream
            # makes room, once.
            if not self._evict_idle("max_streams", holding_stream=True):
                raise
            reader, writer = await self._dial(target, port, initial_data, key)
        self.stats.streams_opened += 1
        self._streams.add(writer)
        self.stats.streams_open = len(self._streams)
        stream_stats = writer.get_extra_info("stream_stats")
        if initial_data and getattr(stream_stats, "initial_data_in_syn", False):
            self.stats.first_bytes_in_syn += 1
        self._writers.add(writer)
        return reader, writer

    async def _dial(
        self, target: Destination | str, port: int, initial_data: bytes, key: IsolationKey | None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        timeout = self.config.connect_timeout
        if key == OUTPROXY_KEY and self.pool is None:
            # Outproxy traffic never leaves from the destination used for .i2p sites.
            raise RouterUnavailable("outproxy traffic needs its own destination (no pool)")
        if key is not None and self.pool is not None:
            return await self.pool.open_stream(key, target, port, initial_data, timeout=timeout)
        return await self.dialer.open_stream(target, port, initial_data, timeout=timeout)

    async def open_datagram_endpoint(self) -> DatagramEndpoint:
        opener = getattr(self.dialer, "open_datagram_endpoint", None)
        if opener is None:
            raise DialError("this router backend carries no datagrams")
        return await opener()

    def release_stream(self, writer: asyncio.StreamWriter) -> None:
        self._writers.discard(writer)
        self._streams.discard(writer)
        self.stats.streams_open = len(self._streams)
        with contextlib.suppress(Exception):
            writer.close()
