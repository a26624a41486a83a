"""A pool of client destinations, one per isolation key, with a spare ready for the next key.

Anything that needs a destination of its own asks the pool for a stream "for key K"::

    pool = DestinationPool(factory)          # factory() -> a new, unstarted Dialer
    await pool.start()                       # makes the spare; closes idle destinations
    reader, writer = await pool.open_stream(key, target, port, initial_data, timeout=60)
    dialer = await pool.dialer_for(key)      # the Dialer itself (datagrams, lookups)
    await pool.close()

A key is any hashable value; keys that are equal share a destination, keys that differ never
do. The proxy builds its keys in ``proxy/isolation.py`` (tuples whose first item names the
kind: ``("site", …)``, ``("token", …)``, ``("user", …)``); other users of the pool take a kind
of their own, e.g. :data:`OUTPROXY_KEY` for traffic to outproxies, which then never shares a
destination with any ``.i2p`` browsing. ``factory`` is ``dialer.select.sibling_factory(dialer,
options)``: each destination gets its own router connection (one I2CP connection, or one SAM
session), because neither router gives a separate destination on a shared I2CP connection what
isolation needs (docs/PROXY.md "Isolation": i2pd refuses a second CreateSession; Java's
subsessions share the primary session's tunnels and encryption keys).

The decisions (bound, spares, idle expiry) are made by the sans-IO ``PoolTable``; this module
starts and closes the dialers it names and counts each destination's open streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from i2proxy.dialer.base import (
    Dialer,
    DialError,
    DialTimeout,
    LocalLimitReached,
    RouterUnavailable,
)
from i2proxy.dialer.pool_table import IsolationKey, PoolFull, PoolTable, Slot
from i2proxy.log import get_logger

log = get_logger("i2proxy.dialer.pool")

#: The key for traffic to outproxies: one destination of its own, apart from all ``.i2p`` keys.
OUTPROXY_KEY: IsolationKey = ("outproxy",)

DEFAULT_MAX_DESTINATIONS = 16
DEFAULT_SPARES = 1
DEFAULT_IDLE_TIMEOUT = 600.0
#: How long a new destination may take to build its tunnels and hand over its LeaseSet.
DEFAULT_START_TIMEOUT = 120.0
#: Housekeeping period (spare refill after a failure, idle expiry).
HOUSEKEEPING_INTERVAL = 5.0
#: After a spare failed to start (router away), wait this long before the next attempt.
SPARE_RETRY_DELAY = 10.0

StreamPair = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass(eq=False)
class _Entry:
    dialer: Dialer
    ready: asyncio.Future[None]
    writers: set[asyncio.StreamWriter] = field(default_factory=set)
    task: asyncio.Task[None] | None = None

    def open_streams(self) -> int:
        self.writers = {w for w in self.writers if not w.is_closing()}
        return len(self.writers)


def destination_b32(dialer: Any) -> str | None:
    """The b32 address of a started dialer (native: a Destination; SAM: base64 text)."""
    destination = getattr(dialer, "destination", None)
    if destination is None:
        return None
    if isinstance(destination, str):
        from i2proxy.i2p.destination import Destination

        try:
            return Destination.from_base64(destination).b32
        except ValueError:
            return None
    return getattr(destination, "b32", None)


class DestinationPool:
    """Destinations by isolation key, created on demand, with spares and a bound."""

    def __init__(
        self,
        factory: Callable[[], Dialer],
        *,
        max_destinations: int = DEFAULT_MAX_DESTINATIONS,
        spares: int = DEFAULT_SPARES,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.factory = factory
        self.table = PoolTable(max_destinations, spares, idle_timeout)
        self.start_timeout = start_timeout
        self.clock = clock
        self._entries: dict[int, _Entry] = {}
        self._housekeeping: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._spare_retry_at = 0.0
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Begin making spares and closing idle destinations (call once the router answers)."""
        if self._housekeeping is None and not self._closed:
            self._housekeeping = asyncio.create_task(self._keep_house())

    async def close(self) -> None:
        self._closed = True
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
        entries = list(self._entries.values())
        self._entries.clear()
        for slot in self.table.slots():
            self.table.remove(slot)
        for entry in entries:
            if entry.task is not None and not entry.task.done():
                entry.task.cancel()
            if not entry.ready.done():
                entry.ready.set_exception(RouterUnavailable("destination pool closed"))
                entry.ready.exception()  # retrieved: nobody may be waiting
        await asyncio.gather(*(self._close_dialer(e) for e in entries), return_exceptions=True)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    # -- the API ---------------------------------------------------------------------------------

    async def dialer_for(self, key: IsolationKey, *, timeout: float | None = None) -> Dialer:
        """The started dialer of ``key``'s destination (waits for its tunnels if it is new).

        Raises ``LocalLimitReached`` at the bound, ``DialTimeout`` when the destination is not
        ready within ``timeout``, ``RouterUnavailable`` when it could not be created.
        """
        if self._closed:
            raise RouterUnavailable("destination pool closed")
        now = self.clock()
        if len(self.table) >= self.table.max_destinations:
            self._count_streams(now)  # which destinations are idle enough to give up
        new_key = key not in self.table.by_key
        try:
            claim = self.table.claim(key, now)
        except PoolFull as exc:
            raise LocalLimitReached(str(exc)) from None
        for victim in claim.evicted:
            self._retire(victim, "bound")
        entry = self._entries.get(claim.slot.id)
        if claim.create or entry is None:
            entry = self._launch(claim.slot)
            log.info("pool.destination_new", kind=_kind(key), size=len(self.table))
        elif new_key:
            log.info("pool.spare_taken", kind=_kind(key), ready=claim.slot.ready)
        self._wake.set()  # a spare may have been taken: make the next one
        if entry.ready.done() and not entry.ready.exception():
            return entry.dialer  # every request after the first: no shield, no timeout task
        try:
            await asyncio.wait_for(asyncio.shield(entry.ready), timeout)
        except TimeoutError:
            raise DialTimeout(
                f"a new destination's tunnels were not ready within {timeout:.0f} s"
            ) from None
        return entry.dialer

    async def open_stream(
        self,
        key: IsolationKey,
        target: Any,
        port: int = 0,
        initial_data: bytes = b"",
        *,
        timeout: float | None = None,
    ) -> StreamPair:
        """A stream to ``target`` from ``key``'s destination; raises ``DialError``."""
        started = self.clock()
        dialer = await self.dialer_for(key, timeout=timeout)
        if timeout is not None:
            timeout = max(timeout - (self.clock() - started), 1.0)
        reader, writer = await dialer.open_stream(target, port, initial_data, timeout=timeout)
        slot = self.table.by_key.get(key)
        entry = self._entries.get(slot.id) if slot is not None else None
        if entry is not None and entry.dialer is dialer:
            entry.writers.add(writer)
            self.table.set_streams(slot, entry.open_streams(), self.clock())
        return reader, writer

    def destinations(self) -> list[dict[str, Any]]:
        """One line per destination for the health page: kind of key, b32, state, streams."""
        rows = []
        for slot in self.table.slots():
            entry = self._entries.get(slot.id)
            rows.append(
                {
                    "kind": "spare" if slot.key is None else _kind(slot.key),
                    "b32": destination_b32(entry.dialer) if entry and slot.ready else None,
                    "ready": slot.ready,
                    "streams": entry.open_streams() if entry else 0,
                }
            )
        return rows

    def stats(self) -> dict[str, int]:
        table = self.table
        return {
            "destinations": len(table),
            "spares_ready": sum(1 for s in table.spare_slots if s.ready),
            "created": table.created,
            "spares_taken": table.spares_taken,
            "evicted": table.evicted,
            "expired": table.expired,
            "refused": table.refused,
        }

    # -- internals -------------------------------------------------------------------------------

    def _launch(self, slot: Slot) -> _Entry:
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = _Entry(self.factory(), ready)
        self._entries[slot.id] = entry
        entry.task = asyncio.create_task(self._start_dialer(slot, entry))
        return entry

    async def _start_dialer(self, slot: Slot, entry: _Entry) -> None:
        try:
            await asyncio.wait_for(entry.dialer.start(), self.start_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = exc if isinstance(exc, DialError) else RouterUnavailable(f"{exc!r}")
            log.warning("pool.destination_failed", error=str(error)[:200])
            self.table.remove(slot)
            self._entries.pop(slot.id, None)
            if slot.key is None:
                self._spare_retry_at = self.clock() + SPARE_RETRY_DELAY
            if not entry.ready.done():
                entry.ready.set_exception(error)
                entry.ready.exception()  # a spare has no waiter
            await self._close_dialer(entry)
            return
        self.table.mark_ready(slot)
        if not entry.ready.done():
            entry.ready.set_result(None)
        log.info("pool.destination_ready", spare=slot.key is None)

    def _retire(self, slot: Slot, why: str) -> None:
        entry = self._entries.pop(slot.id, None)
        log.info("pool.destination_closed", reason=why, size=len(self.table))
        if entry is None:
            return
        if entry.task is not None and not entry.task.done():
            entry.task.cancel()
        task = asyncio.create_task(self._close_dialer(entry))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _close_dialer(entry: _Entry) -> None:
        with contextlib.suppress(Exception):
            await entry.dialer.close()

    def _count_streams(self, now: float) -> None:
        for slot in list(self.table.by_key.values()):
            entry = self._entries.get(slot.id)
            if entry is not None:
                self.table.set_streams(slot, entry.open_streams(), now)

    async def _keep_house(self) -> None:
        while not self._closed:
            now = self.clock()
            self._count_streams(now)
            for slot in self.table.expire(now):
                self._retire(slot, "idle")
            if now >= self._spare_retry_at:
                for _ in range(self.table.spares_to_make()):
                    self._launch(self.table.add_spare(now))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HOUSEKEEPING_INTERVAL):
                    await self._wake.wait()


def _kind(key: IsolationKey) -> str:
    """What may be logged of a key: its kind, never the site or the credentials."""
    if isinstance(key, tuple) and key and isinstance(key[0], str):
        return key[0]
    return type(key).__name__


__all__ = ["OUTPROXY_KEY", "DestinationPool", "IsolationKey", "destination_b32"]
