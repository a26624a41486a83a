"""``testnet down`` with real processes: everything is stopped at once, stubborn ones killed.

The processes are plain Python sleepers that ignore SIGTERM, as an i2pd 2.45.1 with SAM
sessions open does (docs/TESTNET.md); they carry the state directory on their command line,
as every process of a network does, so ``down`` may signal them.
"""

from __future__ import annotations

import asyncio
import sys
import time

from testnet import process
from testnet.network import DOWN_GRACE, Network
from testnet.status import STATE_BASE_ENV

IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"
)


def _stubborn(marker: str, log) -> int:
    return process.spawn([sys.executable, "-c", IGNORES_SIGTERM, marker], log)


def test_down_kills_every_process_after_one_short_grace_and_deletes_the_state(
    tmp_path, monkeypatch
):
    monkeypatch.setenv(STATE_BASE_ENV, str(tmp_path))
    network = Network("unitdown")
    network.state_dir.mkdir(parents=True)
    marker = str(network.state_dir)
    log = tmp_path / "sleepers.log"
    routers = {str(i): _stubborn(marker, log) for i in range(3)}
    pids = {"routers": routers, "eepsite": _stubborn(marker, log), "helper": _stubborn(marker, log)}
    network._save_pids(pids)
    time.sleep(0.5)  # the sleepers have set their SIGTERM handler
    everything = [*routers.values(), pids["eepsite"], pids["helper"]]
    assert all(process.is_running(pid) for pid in everything)

    started = time.monotonic()
    asyncio.run(network.down())
    took = time.monotonic() - started

    assert not any(process.is_running(pid) for pid in everything)
    # one grace for all (before: each router's stop timeout, then 10 s each for the eepsite
    # and the relay, one after the other)
    assert DOWN_GRACE <= took < DOWN_GRACE + 1.5, took
    assert not network.state_dir.exists()
