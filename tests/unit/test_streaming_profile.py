"""Per-peer control block (RFC 2140 "temporal sharing"): expiry, damping, a capped window."""

from __future__ import annotations

import pytest

from i2proxy.streaming.connection import (
    MAX_CACHED_WINDOW,
    PROFILE_EXPIRY,
    Connection,
    PeerProfile,
)
from i2proxy.streaming.options import StreamingOptions
from tests.unit.streaming_sim import keys


def learned(srtt: float, window: int) -> PeerProfile:
    return PeerProfile(srtt=srtt, window=window)


def test_a_finished_connection_moves_the_remembered_figures_by_a_quarter():
    profile = PeerProfile()
    profile.learn(learned(0.4, 40), now=0.0, final=True)
    assert (profile.srtt, profile.window) == (0.4, 40)  # first connection: taken as is
    profile.learn(learned(0.8, 120), now=10.0, final=True)
    assert profile.srtt == pytest.approx(0.75 * 0.4 + 0.25 * 0.8)
    assert profile.window == 60  # 0.75 * 40 + 0.25 * 120


def test_the_window_is_only_learned_from_a_finished_connection():
    profile = PeerProfile()
    profile.learn(learned(0.4, 40), now=0.0, final=True)
    profile.learn(learned(0.2, 6), now=1.0, final=False)  # just established: initial window
    assert profile.window == 40
    assert profile.srtt == pytest.approx(0.75 * 0.4 + 0.25 * 0.2)


def test_remembered_figures_expire_after_ten_minutes():
    profile = PeerProfile(syn_reply_empty=True)
    profile.learn(learned(0.4, 40), now=100.0, final=True)
    profile.expire(100.0 + PROFILE_EXPIRY)
    assert profile.window == 40  # not yet
    profile.expire(100.0 + PROFILE_EXPIRY + 1)
    assert (profile.srtt, profile.window) == (None, None)
    assert profile.syn_reply_empty is True  # what the peer's software does does not expire


def test_learning_after_expiry_starts_afresh_instead_of_damping_stale_figures():
    profile = PeerProfile()
    profile.learn(learned(2.0, 100), now=0.0, final=True)
    profile.learn(learned(0.2, 10), now=PROFILE_EXPIRY + 5, final=True)
    assert (profile.srtt, profile.window) == (0.2, 10)


def test_a_new_connection_starts_with_at_most_64_packets_from_a_huge_remembered_window():
    options = StreamingOptions(max_window_size=512)
    conn = Connection.outgoing(
        keys=keys(0),
        remote_destination=keys(1).destination,
        local_stream_id=7,
        now=0.0,
        options=options,
        profile=PeerProfile(srtt=0.3, window=400),
    )
    assert conn.congestion.window == MAX_CACHED_WINDOW
    assert conn.rtt.srtt == pytest.approx(0.3)  # the RTT seeds the estimator
    small = Connection.outgoing(
        keys=keys(0),
        remote_destination=keys(1).destination,
        local_stream_id=8,
        now=0.0,
        options=options,
        profile=PeerProfile(srtt=0.3, window=2),
    )
    assert small.congestion.window == options.initial_window_size  # never below the initial
