"""The young-destination rule (dialer/young.py): when a "not found" is looked up again."""

from __future__ import annotations

import pytest

from i2proxy.dialer.young import (
    MIN_LOOKUP_TIME,
    RETRY_DELAYS,
    RETRY_WINDOW,
    VERDICT_TIME,
    YOUNG_RETRY,
    YOUNG_SECONDS,
    YoungDestinationRetry,
)

#: The rule with neither window nor verdict time: bounded only by the caller's timeout.
UNBOUNDED = YoungDestinationRetry(retry_window=None, verdict_time=None)


def schedule(
    rule: YoungDestinationRetry, *, age: float, lookup_time: float, timeout: float = 60.0
) -> list[float]:
    """When each lookup starts for a site that is truly not found, each lookup taking
    ``lookup_time`` s (cut at the rule's time left, as the native dialer cuts a retry's lookup)
    within a caller's ``timeout``; the last item is when the "not found" is believed."""
    starts, now, attempt = [0.0], lookup_time, 0
    while (
        delay := rule.retry_delay(age=age, attempt=attempt, elapsed=now, remaining=timeout - now)
    ) is not None:
        now += delay
        starts.append(now)
        left = rule.time_left(now, timeout - now)
        now += lookup_time if left is None else min(lookup_time, left)
        attempt += 1
    return [*starts, now]


def test_a_young_destination_looks_again_after_growing_pauses() -> None:
    delays = [UNBOUNDED.retry_delay(age=5.0, attempt=n, elapsed=0.0) for n in range(5)]
    assert delays[:3] == list(RETRY_DELAYS)
    assert delays[3:] == [RETRY_DELAYS[-1]] * 2


def test_an_old_destination_believes_the_first_not_found() -> None:
    for rule in (YOUNG_RETRY, UNBOUNDED):
        assert rule.retry_delay(age=YOUNG_SECONDS, attempt=0, elapsed=0.0) is None
        assert rule.retry_delay(age=YOUNG_SECONDS + 100, attempt=0, elapsed=0.0) is None
        assert rule.retry_delay(age=YOUNG_SECONDS - 0.1, attempt=0, elapsed=0.0) == 1.0


def test_no_session_means_no_retry() -> None:
    assert not YOUNG_RETRY.is_young(None)
    assert YOUNG_RETRY.retry_delay(age=None, attempt=0, elapsed=0.0) is None


def test_no_retry_without_room_for_a_lookup_in_the_callers_timeout() -> None:
    first = RETRY_DELAYS[0]
    room = first + MIN_LOOKUP_TIME
    assert UNBOUNDED.retry_delay(age=1.0, attempt=0, elapsed=0.0, remaining=room) == first
    assert UNBOUNDED.retry_delay(age=1.0, attempt=0, elapsed=0.0, remaining=room - 0.01) is None


def test_without_bounds_retries_go_on_until_the_callers_timeout_runs_short() -> None:
    starts = schedule(UNBOUNDED, age=1.0, lookup_time=0.1)
    assert starts[:5] == pytest.approx([0.0, 1.1, 3.2, 7.3, 11.4])
    assert 60.0 - MIN_LOOKUP_TIME - 4.2 < starts[-2] <= 60.0 - MIN_LOOKUP_TIME


def test_a_truly_absent_site_costs_a_young_destination_about_seven_seconds() -> None:
    """Floodfills that answer "not found" at once (i2pd on the test network: ~0.05 s): four
    lookups, the last one starting ~7 s after the first."""
    *starts, verdict = schedule(YOUNG_RETRY, age=2.0, lookup_time=0.05)
    assert starts == pytest.approx([0.0, 1.05, 3.1, 7.15])
    assert starts[-1] <= RETRY_WINDOW
    assert verdict == pytest.approx(7.2)


def test_a_router_that_answers_at_our_lookup_timeout_gets_one_short_retry() -> None:
    """Java answers "not found" when our 10 s lookup timeout ends: one retry at 11 s whose
    lookup is cut at the verdict time, so the answer still comes within 15 s."""
    *starts, verdict = schedule(YOUNG_RETRY, age=3.0, lookup_time=10.0)
    assert starts == pytest.approx([0.0, 11.0])
    assert verdict == pytest.approx(VERDICT_TIME)
    assert verdict < 15.0


def test_a_first_lookup_that_timed_out_on_every_floodfill_still_gets_a_retry() -> None:
    """i2pd 2.45.1 gives each of two floodfills 5 s: "not found" after 10 s, then one retry
    (through tunnels that work by now it finds the site in well under its 2 s)."""
    assert YOUNG_RETRY.retry_delay(age=3.0, attempt=0, elapsed=10.0) == 1.0
    assert YOUNG_RETRY.time_left(11.0) == pytest.approx(VERDICT_TIME - 11.0)


def test_no_retry_once_the_verdict_time_leaves_no_room() -> None:
    late = VERDICT_TIME - RETRY_DELAYS[0] - MIN_LOOKUP_TIME + 0.01
    assert YOUNG_RETRY.retry_delay(age=3.0, attempt=0, elapsed=late) is None


def test_the_retry_is_judged_by_the_age_when_the_lookup_began() -> None:
    """A destination 85 s old whose lookup took 10 s was young when it asked."""
    assert YOUNG_RETRY.retry_delay(age=85.0, attempt=0, elapsed=10.0) == 1.0


def test_delays_must_be_given() -> None:
    with pytest.raises(ValueError):
        YoungDestinationRetry(delays=())
    with pytest.raises(ValueError):
        YoungDestinationRetry(delays=(-1.0,))
