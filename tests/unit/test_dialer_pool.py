"""The destination pool: the sans-IO table (bound, spares, idle expiry) with a fake clock, and
the asyncio adapter over fake dialers (real routers: tests/integration/test_isolation_live.py)."""

from __future__ import annotations

import asyncio

import pytest

from i2proxy.dialer.base import DialTimeout, LocalLimitReached, RouterUnavailable
from i2proxy.dialer.pool import DestinationPool
from i2proxy.dialer.pool_table import PoolFull, PoolTable


def table(max_destinations=3, spares=1, idle=60.0) -> PoolTable:
    return PoolTable(max_destinations, spares, idle)


def test_a_key_keeps_its_destination_and_two_keys_never_share_one():
    t = table(spares=0)
    a = t.claim("a", 0.0)
    b = t.claim("b", 1.0)
    assert a.create and b.create and a.slot is not b.slot
    again = t.claim("a", 2.0)
    assert again.slot is a.slot and not again.create


def test_a_new_key_takes_the_ready_spare_without_creating():
    t = table(max_destinations=4, spares=2)
    building = t.add_spare(0.0)
    ready = t.add_spare(1.0)
    assert t.spares_to_make() == 0
    t.mark_ready(ready)
    claim = t.claim("b", 2.0)
    assert claim.slot is ready and not claim.create and ready.key == "b"
    assert t.spares_taken == 1 and t.spare_slots == [building]
    assert t.spares_to_make() == 1  # refill


def test_with_no_spare_ready_a_new_key_takes_the_oldest_building_one():
    """It is ready sooner than a destination started now, and no second build competes."""
    t = table(max_destinations=4, spares=2)
    oldest = t.add_spare(0.0)
    younger = t.add_spare(1.0)
    claim = t.claim("a", 2.0)
    assert claim.slot is oldest and not claim.create and not oldest.ready
    assert t.spare_slots == [younger] and t.created == 2
    t.mark_ready(oldest)
    assert t.by_key["a"].ready


def test_spares_stay_within_the_bound():
    t = table(max_destinations=2, spares=1)
    t.claim("a", 0.0)
    t.claim("b", 0.0)
    assert t.spares_to_make() == 0


def test_at_the_bound_the_least_recently_used_idle_destination_is_closed():
    t = table(max_destinations=2, spares=0)
    a = t.claim("a", 0.0).slot
    b = t.claim("b", 1.0).slot
    t.mark_ready(a)
    t.mark_ready(b)
    t.claim("a", 2.0)  # a used again: b is now the least recently used
    claim = t.claim("c", 3.0)
    assert claim.create and claim.evicted == [b]
    assert set(t.by_key) == {"a", "c"} and t.evicted == 1


def test_at_the_bound_with_every_destination_streaming_the_request_is_refused():
    t = table(max_destinations=2, spares=0)
    for key in ("a", "b"):
        slot = t.claim(key, 0.0).slot
        t.mark_ready(slot)
        t.set_streams(slot, 1, 0.0)
    with pytest.raises(PoolFull):
        t.claim("c", 1.0)
    assert t.refused == 1 and set(t.by_key) == {"a", "b"}


def test_idle_destinations_expire_but_busy_ones_and_spares_do_not():
    t = table(max_destinations=4, spares=1, idle=60.0)
    idle = t.claim("idle", 0.0).slot
    busy = t.claim("busy", 0.0).slot
    spare = t.add_spare(0.0)
    for slot in (idle, busy, spare):
        t.mark_ready(slot)
    t.set_streams(busy, 2, 0.0)
    assert t.expire(59.0) == []
    assert t.expire(60.0) == [idle]
    assert set(t.by_key) == {"busy"} and t.spare_slots == [spare]
    t.set_streams(busy, 0, 70.0)
    assert t.expire(129.0) == []
    assert t.expire(130.0) == [busy]


class FakeDialer:
    """Starts after ``delay``; counts its streams (open ones are StreamWriter stand-ins)."""

    made: list[FakeDialer] = []

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.delay = delay
        self.fail = fail
        self.started = False
        self.closed = False
        self.destination = None
        FakeDialer.made.append(self)

    async def start(self) -> None:
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RouterUnavailable("no router")
        self.started = True

    async def close(self) -> None:
        self.closed = True

    async def open_stream(self, target, port=0, initial_data=b"", *, timeout=None):
        return self, FakeWriter()


class FakeWriter:
    def __init__(self) -> None:
        self.closing = False

    def is_closing(self) -> bool:
        return self.closing


@pytest.fixture(autouse=True)
def _fresh():
    FakeDialer.made = []


async def test_the_pool_gives_each_key_its_own_dialer_and_keeps_a_spare_ready():
    pool = DestinationPool(FakeDialer, max_destinations=4, spares=1, idle_timeout=60)
    await pool.start()
    a1 = await pool.dialer_for(("site", "a"))
    a2 = await pool.dialer_for(("site", "a"))
    b = await pool.dialer_for(("site", "b"))
    assert a1 is a2 and a1 is not b and a1.started and b.started
    for _ in range(50):
        if pool.stats()["spares_ready"] == 1:
            break
        await asyncio.sleep(0.01)
    assert pool.stats()["spares_ready"] == 1
    spare = pool.table.spare_slots[0]
    c = await pool.dialer_for(("site", "c"))
    assert pool.table.by_key[("site", "c")] is spare and c.started
    await pool.close()
    assert all(d.closed for d in FakeDialer.made)


async def test_the_pool_refuses_at_the_bound_when_every_destination_streams():
    pool = DestinationPool(FakeDialer, max_destinations=1, spares=0)
    _reader, writer = await pool.open_stream("a", "x.b32.i2p", 80)
    with pytest.raises(LocalLimitReached, match="max_destinations"):
        await pool.dialer_for("b")
    writer.closing = True  # the stream was released
    assert await pool.dialer_for("b") is not None
    assert pool.stats()["evicted"] == 1
    await pool.close()


async def test_a_destination_that_cannot_start_fails_its_request_and_is_forgotten():
    made = iter([FakeDialer(fail=True), FakeDialer()])
    pool = DestinationPool(lambda: next(made), spares=0)
    with pytest.raises(RouterUnavailable):
        await pool.dialer_for("a")
    assert len(pool.table) == 0
    assert (await pool.dialer_for("a")).started
    await pool.close()


async def test_a_slow_destination_times_out_as_a_dial_timeout():
    pool = DestinationPool(lambda: FakeDialer(delay=5.0), spares=0)
    with pytest.raises(DialTimeout):
        await pool.dialer_for("a", timeout=0.05)
    await pool.close()
