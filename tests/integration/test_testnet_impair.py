"""The link impairment acts on a real network and clears: rate cap, loss, ``status --json``.

Driven through the exact command line outside scripts use (``python -m testnet impair …``);
measured through i2pd's own HTTP proxy (curl), every transfer checked byte for byte.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testnet.eepsite import expected_bytes
from testnet.network import Network
from testnet.status import TestnetStatus

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO_ROOT = Path(__file__).resolve().parents[2]
SIZE = 1_000_000


def run_testnet(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "testnet", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc


def impair(name: str, *options: str) -> dict:
    run_testnet("impair", "--name", name, *options)
    return json.loads(run_testnet("status", "--name", name, "--json").stdout)


def fetch_seconds(status: TestnetStatus, size: int = SIZE) -> float:
    """Fetch ``size`` bytes from the eepsite through i2pd's HTTP proxy; check them; time it."""
    start = time.monotonic()
    proc = subprocess.run(
        ["curl", "-sS", "--max-time", "120", "-x", f"http://{status.http_proxy}",
         f"http://{status.eepsite.b32}/bytes/{size}"],
        capture_output=True, check=False,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected_bytes(size)
    return elapsed


def fastest_of(status: TestnetStatus, goal: float, tries: int = 3) -> float:
    """The fastest of up to ``tries`` fetches, stopping at the first under ``goal`` seconds.

    i2pd 2.45.1's own sender is bimodal (docs/BENCHMARKS.md, "The bimodal 0 ms GET"): one 1 MB
    fetch on a clean network took 5.5 s in CI when the cap made it 9.6 s, so one fetch cannot
    tell them apart.
    """
    best = fetch_seconds(status)
    for _ in range(tries - 1):
        if best < goal:
            break
        best = min(best, fetch_seconds(status))
    return best


def losses(network: Network) -> int:
    """The relay's loss counter, once its helper has written the latest value (every second)."""
    time.sleep(1.5)
    return int(json.loads(network.relay_stats_path.read_text())["losses"])


def test_rate_cap_and_loss_act_and_clear(testnet: TestnetStatus, testnet_network: Network):
    name = testnet.name
    try:
        fetch_seconds(testnet)  # warm: tunnels and the stream's peer cache exist
        # 1 Mbit/s per link: 1 MB cannot cross one link in less than 8 s.
        status = impair(name, "--rate", "1mbit")
        assert status["impairment"]["rate_bytes_per_s"] == 125_000
        capped = fetch_seconds(testnet)
        assert capped >= 8.0

        status = impair(name, "--loss", "10", "--jitter", "5")
        assert status["impairment"]["loss_pct"] == 10
        assert status["impairment"]["rate"] is None
        before = losses(testnet_network)
        fetch_seconds(testnet, 200_000)
        assert losses(testnet_network) > before

        status = impair(name)  # no option: everything cleared
        assert status["impairment"] == {
            "loss_pct": 0, "reorder_pct": 0, "duplicate_pct": 0, "jitter_ms": 0,
            "rate": None, "rate_bytes_per_s": None,
        }  # fmt: skip
        before = losses(testnet_network)
        cleared = fastest_of(testnet, capped / 2)
        assert losses(testnet_network) == before
        assert cleared < capped / 2
    finally:
        run_testnet("impair", "--name", name)


def test_a_profile_sets_delay_and_impairment_and_is_reported(
    testnet: TestnetStatus, testnet_network: Network
):
    name = testnet.name
    try:
        status = impair(name, "--profile", "real", "--rate", "8mbit")
        assert status["profile"] == "real"
        assert status["link_delay_ms"] == 80
        assert status["impairment"]["jitter_ms"] == 30
        assert status["impairment"]["loss_pct"] == 1
        assert status["impairment"]["reorder_pct"] == 2
        assert status["impairment"]["rate"] == "8mbit"
        fetch_seconds(testnet, 20_000)  # still a working network
    finally:
        run_testnet("impair", "--name", name, "--profile", "ideal")
    status = json.loads(run_testnet("status", "--name", name, "--json").stdout)
    assert status["link_delay_ms"] == 0
    assert status["profile"] == "ideal"
