"""When the destination pool starts: beside the main destination when the router is named (its
spare is then ready for the first visit), after detection otherwise (the router is not known)."""

from __future__ import annotations

import dataclasses

from i2proxy.config import Config
from i2proxy.proxy.cli import make_dialer, start_pool_early


class RecordingPool:
    def __init__(self) -> None:
        self.started = 0

    async def start(self) -> None:
        self.started += 1


async def test_a_named_router_starts_the_pool_before_the_main_destination_is_up():
    for router in ("i2cp://127.0.0.1:9", "sam://127.0.0.1:9"):
        pool = RecordingPool()
        dialer = make_dialer(dataclasses.replace(Config(), router=router))  # never started
        assert await start_pool_early(pool, dialer) is True
        assert pool.started == 1, router


async def test_with_auto_detection_the_pool_waits_for_the_detected_router():
    pool = RecordingPool()
    dialer = make_dialer(dataclasses.replace(Config(), router=None))
    assert await start_pool_early(pool, dialer) is False
    assert pool.started == 0
