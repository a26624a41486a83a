"""Pooling the TTFB samples of several bulk-benchmark runs (``bench/ttfb_pool.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from ttfb_pool import row, samples_of


def run(http: list[float], socks: list[float], theirs: list[float]) -> dict:
    return {
        "ttfb_ms": [
            {"cell": "other", "i2proxy HTTP": [1.0]},
            {
                "cell": "real",
                "i2proxy HTTP": http,
                "i2pd HTTP": theirs,
                "i2proxy SOCKS": socks,
                "i2pd SOCKS": theirs,
                "i2proxy SOCKS failed": ["TimeoutError()"],
            },
        ]
    }


def test_a_run_gives_the_samples_of_its_cell_only_and_not_its_failures():
    samples = samples_of(run([900, 1000], [950], [2000]), "real")
    assert samples["i2proxy HTTP"] == [900.0, 1000.0]
    assert samples["i2proxy SOCKS"] == [950.0]
    assert set(samples) == {"i2proxy HTTP", "i2pd HTTP", "i2proxy SOCKS", "i2pd SOCKS"}


def test_a_run_without_the_cell_has_no_samples():
    assert all(v == [] for v in samples_of(run([1], [1], [1]), "50ms:none").values())


def test_the_row_is_median_with_count_and_the_ratio_per_kind():
    pooled = {
        "i2proxy HTTP": [900.0, 1000.0, 1100.0],
        "i2pd HTTP": [2000.0],
        "i2proxy SOCKS": [1200.0],
        "i2pd SOCKS": [],
    }
    assert row("pooled", pooled) == "| pooled | 1000 (3) | 2000 (1) | 0.50x | 1200 (1) | — | — |"
