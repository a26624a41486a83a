"""The link impairment model (pure): what an impaired TCP link delivers, and when."""

from __future__ import annotations

import argparse
import random

import pytest

from testnet.cli import add_impairment_options, describe_impairment, impairment_from_args
from testnet.impair import (
    MSS,
    RTO_MIN,
    Bottleneck,
    Impairment,
    ImpairmentError,
    LinkCounters,
    LinkModel,
    LinkSettings,
    max_read,
    parse_rate,
    profile,
    retransmission_wait,
)


def model(seed: int = 1) -> LinkModel:
    return LinkModel(Bottleneck(), LinkCounters(), random.Random(seed))


def settings(delay_ms: float = 0.0, **impairment) -> LinkSettings:
    return LinkSettings(delay_ms, Impairment(**impairment))


@pytest.mark.parametrize(
    "text, rate",
    [("4mbit", 500_000), ("8kbit", 1000), ("1gbit", 125e6), ("500KB", 500_000),
     ("2MiB", 2 * 1024**2), ("123456", 123456), ("1.5 MB", 1.5e6)],
)  # fmt: skip
def test_rates_parse_with_tc_style_units(text, rate):
    assert parse_rate(text) == pytest.approx(rate)


@pytest.mark.parametrize("text", ["fast", "10 furlongs", "-5mbit", "1bit", "", "100gbit"])
def test_bad_or_absurd_rates_are_refused(text):
    with pytest.raises(ImpairmentError):
        parse_rate(text)


@pytest.mark.parametrize(
    "impairment",
    [Impairment(loss_pct=51), Impairment(reorder_pct=-1), Impairment(jitter_ms=6000),
     Impairment(rate="lots")],
)  # fmt: skip
def test_out_of_range_impairments_are_refused(impairment):
    with pytest.raises(ImpairmentError):
        impairment.validate()


def test_an_unimpaired_link_only_delays_each_chunk_by_the_link_delay():
    link = model()
    assert link.schedule(settings(50), now=10.0, size=65536, in_flight=65536) == 10.05
    assert link.schedule(settings(0), now=11.0, size=100, in_flight=100) == 11.0
    assert link.counters.losses == link.counters.reorders == 0


def test_jitter_varies_the_delay_within_bounds_but_never_reorders_the_stream():
    link = model()
    dues = [link.schedule(settings(80, jitter_ms=30), i * 0.001, 1000, 1000) for i in range(500)]
    assert dues == sorted(dues)
    one_way = [due - i * 0.001 for i, due in enumerate(dues)]
    assert min(one_way) >= 0.05 - 1e-9
    assert max(one_way) <= 0.11 + 0.03  # plus what an earlier late chunk holds back
    assert max(one_way) - min(one_way) > 0.04  # it does vary


def test_a_lost_segment_holds_its_chunk_and_everything_after_for_the_retransmission():
    link = model()
    link.rng.random = lambda: 0.0  # every chunk loses a segment
    due = link.schedule(settings(50, loss_pct=1), now=0.0, size=10 * MSS, in_flight=10 * MSS)
    assert due == pytest.approx(0.05 + 1.25 * 0.1)  # RACK: a quarter RTT after the next ACK
    link.rng.random = lambda: 0.99  # no more losses
    behind = link.schedule(settings(50, loss_pct=1), now=0.001, size=MSS, in_flight=11 * MSS)
    assert behind == due  # head-of-line blocked, as TCP delivers
    assert link.counters.losses == 1


def test_a_lone_lost_segment_waits_for_a_tail_loss_probe_with_the_minimum_rto():
    assert retransmission_wait(0.0, 1) == pytest.approx(0.002 + RTO_MIN)
    assert retransmission_wait(0.1, 2) == pytest.approx(0.2 + 0.002)
    assert retransmission_wait(0.1, 40) == pytest.approx(0.125)


@pytest.mark.parametrize("pct", [1.0, 5.0])
def test_loss_hits_chunks_as_often_as_their_segments_say(pct):
    link = model(seed=7)
    chunks = 20_000
    for i in range(chunks):
        link.schedule(settings(0, loss_pct=pct), i * 1.0, 4 * MSS, 4 * MSS)
    expected = 1 - (1 - pct / 100) ** 4
    assert link.counters.losses / chunks == pytest.approx(expected, rel=0.1)


def test_reordering_delays_some_chunks_by_at_most_the_displacement():
    link = model(seed=3)
    imp = settings(80, reorder_pct=5, jitter_ms=0)
    dues = [link.schedule(imp, i * 1.0, MSS, MSS) for i in range(2000)]
    late = [due - i * 1.0 - 0.08 for i, due in enumerate(dues)]
    assert 0.03 < link.counters.reorders / 2000 < 0.07
    assert max(late) <= 0.04 + 1e-9  # a quarter of the 160 ms RTT
    assert sum(1 for x in late if x > 1e-9) == link.counters.reorders


def test_a_rate_cap_serialises_the_directed_link_shared_by_its_connections():
    shared = Bottleneck()
    first = LinkModel(shared, LinkCounters(), random.Random(1))
    second = LinkModel(shared, LinkCounters(), random.Random(2))
    capped = settings(10, rate="1MB")
    assert first.schedule(capped, 0.0, 100_000, 100_000) == pytest.approx(0.1 + 0.01)
    # The other connection's chunk queues behind the first on the same link.
    assert second.schedule(capped, 0.0, 100_000, 100_000) == pytest.approx(0.2 + 0.01)
    assert shared.backlog(0.05) == pytest.approx(0.15)


def test_duplicates_take_link_capacity():
    link = model()
    due = link.schedule(settings(0, rate="1MB", duplicate_pct=10), 0.0, 100_000, 100_000)
    assert due == pytest.approx(0.11)


def test_a_capped_link_is_read_in_small_slices():
    assert max_read(settings(0, rate="4mbit"), 65536) == 5000
    assert max_read(settings(0, rate="8kbit"), 65536) == MSS
    assert max_read(settings(0), 65536) == 65536


def test_settings_round_trip_through_their_file_and_a_missing_file_means_unimpaired(tmp_path):
    path = tmp_path / "impairment.json"
    assert LinkSettings.load(path) == LinkSettings()
    wanted = settings(80, loss_pct=1, reorder_pct=2, jitter_ms=30, rate="4mbit")
    wanted.save(path)
    assert LinkSettings.load(path) == wanted
    path.write_text("{not json")
    assert LinkSettings.load(path) == LinkSettings()


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_impairment_options(parser)
    return parser.parse_args(argv)


def test_the_real_profile_is_what_the_issue_asks_for():
    real = profile("real")
    assert real.tunnel_length == 3
    assert real.link_delay_ms == 80
    assert real.impairment.jitter_ms == 30
    assert real.impairment.loss_pct == 1
    assert real.impairment.reorder_pct == 2
    assert real.impairment.rate_bytes_per_s
    assert not profile("ideal").impairment.active


def test_options_override_the_profile_and_no_option_clears():
    impairment, delay, length = impairment_from_args(parse(["--profile", "real", "--loss", "5"]))
    assert impairment.loss_pct == 5
    assert impairment.reorder_pct == 2
    assert (delay, length) == (80, 3)
    assert impairment_from_args(parse([])) == (Impairment(), None, None)
    with pytest.raises(ImpairmentError):
        profile("perfect")


def test_the_impairment_is_described_in_one_line():
    text = describe_impairment(profile("real").impairment.to_dict())
    assert text == "loss 1 %, reorder 2 %, jitter ± 30 ms, rate 4mbit"
    assert describe_impairment(Impairment().to_dict()) == "unimpaired"
    assert describe_impairment({}) == "unimpaired"
