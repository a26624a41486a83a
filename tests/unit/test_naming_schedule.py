"""The subscription schedule is a pure function of stored state and the clock."""

import itertools
import random

from i2proxy.naming.subscriptions import ScheduleConfig, next_due

CFG = ScheduleConfig(interval=12 * 3600, first_delay=180, backoff_base=300)
START = 1_000_000.0


def _due(state, now=START):
    return next_due(state, now=now, started_at=START, config=CFG, rng=random.Random(1))


def test_first_run_is_a_few_minutes_after_start():
    due = _due({})
    assert START + 180 <= due <= START + 240


def test_success_waits_twelve_hours_with_jitter():
    last = START + 1000
    dues = {
        next_due(
            {"last_success": last},
            now=last,
            started_at=START,
            config=CFG,
            rng=random.Random(seed),
        )
        for seed in range(20)
    }
    assert all(last + 0.9 * CFG.interval <= d <= last + 1.1 * CFG.interval for d in dues)
    assert len(dues) > 1  # jittered


def test_recent_success_before_a_restart_is_not_refetched_at_start():
    due = _due({"last_success": START - 3600})
    assert due >= START - 3600 + 0.9 * CFG.interval


def test_failures_back_off_exponentially_up_to_the_interval():
    delays = []
    for failures in range(1, 12):
        state = {"failures": failures, "last_attempt": START + 10_000}
        delays.append(_due(state, now=START + 10_000) - (START + 10_000))
    assert 270 <= delays[0] <= 330
    assert 540 <= delays[1] <= 660
    assert all(b >= a * 0.8 for a, b in itertools.pairwise(delays))
    assert max(delays) <= CFG.interval * 1.1
