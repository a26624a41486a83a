"""Sans-IO bookkeeping of the destination pool: which isolation key has which destination.

The table decides, the asyncio adapter (``dialer/pool.py``) acts: it starts and closes the
dialers the table names. Time is a parameter (``now``), never read here.

Rules:

- Every slot counts against ``max_destinations``: those in use by a key, the spares and the ones
  still starting. Spares are only made while there is room.
- A new key takes a ready spare if there is one (no wait for tunnels), else a new slot.
- At the bound, the least recently used slot with no open stream is closed to make room: its key
  gets a fresh destination on its next request. Two keys never share a destination, so the
  bound costs tunnel set-up time, never isolation. When every slot has open streams the
  request is refused (``PoolFull``) until one is released.
- A slot unused for ``idle_timeout`` with no open stream is closed (spares never expire).
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable
from dataclasses import dataclass, field

#: An isolation key: any hashable value; the proxy uses tuples of strings (``proxy/isolation.py``).
IsolationKey = Hashable

_ids = itertools.count(1)


class PoolFull(Exception):
    """Every destination of the pool has open streams and the bound is reached."""


@dataclass(eq=False)
class Slot:
    """One destination of the pool (the adapter keeps its dialer beside it)."""

    #: The key it serves; None while it is a spare.
    key: IsolationKey | None
    last_used: float
    #: Tunnels built and LeaseSet handed over: usable at once.
    ready: bool = False
    #: Open streams, as last reported by the adapter (``set_streams``).
    streams: int = 0
    id: int = field(default_factory=lambda: next(_ids))


@dataclass
class Claim:
    """What :meth:`PoolTable.claim` decided for a key."""

    slot: Slot
    #: The adapter must start a dialer for ``slot`` (a new destination).
    create: bool
    #: Slots to close first (the least recently used idle one, at the bound).
    evicted: list[Slot] = field(default_factory=list)


class PoolTable:
    """Key → slot, spares and the bound."""

    def __init__(self, max_destinations: int, spares: int, idle_timeout: float) -> None:
        if max_destinations < 1 or spares < 0 or idle_timeout <= 0:
            raise ValueError("max_destinations >= 1, spares >= 0, idle_timeout > 0")
        self.max_destinations = max_destinations
        self.spares = min(spares, max_destinations)
        self.idle_timeout = idle_timeout
        self.by_key: dict[IsolationKey, Slot] = {}
        self.spare_slots: list[Slot] = []
        #: Counters for the health page and the tests.
        self.created = 0
        self.evicted = 0
        self.expired = 0
        self.refused = 0
        self.spares_taken = 0

    def __len__(self) -> int:
        return len(self.by_key) + len(self.spare_slots)

    def slots(self) -> list[Slot]:
        return [*self.by_key.values(), *self.spare_slots]

    def claim(self, key: IsolationKey, now: float) -> Claim:
        """The slot for ``key``: its own, a spare, or a new one; raises ``PoolFull``.

        A spare still building its tunnels is taken too (the oldest first): it started earlier,
        so it is ready sooner than a new one, and a second build beside it would slow both — the
        first request of a fresh i2proxy on i2pd 2.58 waited 14.5 s for a new destination while
        the spare it passed over was ready after 4.2 s.
        """
        slot = self.by_key.get(key)
        if slot is not None:
            slot.last_used = now
            return Claim(slot, create=False)
        spare = next((s for s in self.spare_slots if s.ready), None)
        if spare is None and self.spare_slots:
            spare = self.spare_slots[0]  # spares are appended as they start: the oldest
        if spare is not None:
            self.spare_slots.remove(spare)
            spare.key, spare.last_used = key, now
            self.by_key[key] = spare
            self.spares_taken += 1
            return Claim(spare, create=False)
        evicted: list[Slot] = []
        if len(self) >= self.max_destinations:
            victim = self._least_recently_used_idle()
            if victim is None:
                self.refused += 1
                raise PoolFull(
                    f"all {self.max_destinations} destinations have open streams (max_destinations)"
                )
            self.remove(victim)
            self.evicted += 1
            evicted.append(victim)
        slot = Slot(key=key, last_used=now)
        self.by_key[key] = slot
        self.created += 1
        return Claim(slot, create=True, evicted=evicted)

    def _least_recently_used_idle(self) -> Slot | None:
        idle = [s for s in self.by_key.values() if s.streams == 0 and s.ready]
        if not idle:
            # A spare still building its tunnels is the cheapest to give up.
            idle = [s for s in self.spare_slots if not s.ready]
        return min(idle, key=lambda s: s.last_used, default=None)

    def spares_to_make(self) -> int:
        """How many spares to start now: up to ``spares``, within the bound."""
        missing = self.spares - len(self.spare_slots)
        return max(0, min(missing, self.max_destinations - len(self)))

    def add_spare(self, now: float) -> Slot:
        slot = Slot(key=None, last_used=now)
        self.spare_slots.append(slot)
        self.created += 1
        return slot

    def mark_ready(self, slot: Slot) -> None:
        slot.ready = True

    def set_streams(self, slot: Slot, streams: int, now: float) -> None:
        """The adapter's count of open streams; a slot whose streams were open until now was
        used until now."""
        if streams or slot.streams:
            slot.last_used = now
        slot.streams = streams

    def expire(self, now: float) -> list[Slot]:
        """Remove and return the slots idle for ``idle_timeout`` (to be closed)."""
        old = [
            s
            for s in self.by_key.values()
            if s.streams == 0 and s.ready and now - s.last_used >= self.idle_timeout
        ]
        for slot in old:
            self.remove(slot)
        self.expired += len(old)
        return old

    def remove(self, slot: Slot) -> None:
        """Forget ``slot`` (closed, or its dialer failed to start)."""
        if slot.key is not None and self.by_key.get(slot.key) is slot:
            del self.by_key[slot.key]
        if slot in self.spare_slots:
            self.spare_slots.remove(slot)
