"""The kept fuzzer (bench/fuzz.py) in a short run: every target gets inputs, none errs.

The long run (10^6 inputs) and its result are in docs/BENCHMARKS.md; this is its CI guard.
"""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parents[2] / "bench" / "fuzz.py"


@pytest.fixture(scope="module")
def fuzz():
    spec = importlib.util.spec_from_file_location("i2proxy_bench_fuzz", FUZZ)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(120)
def test_a_time_boxed_run_drives_every_target_without_internal_errors(fuzz, capsys):
    status = fuzz.main(["--seconds", "15", "--seed", str(random.randrange(1 << 30))])
    out = capsys.readouterr().out
    assert status == 0, out
    for target in ("socks", "http", "session", "hosts", "packet"):
        line = next(line for line in out.splitlines() if line.startswith(target))
        assert int(line.split()[1]) > 50, out
        assert " 0 internal errors" in line, out


def test_an_internal_error_is_counted_and_reported(fuzz, monkeypatch):
    def broken(rng, data):
        if data[:1] == b"\x05":
            raise KeyError("a parser bug")

    monkeypatch.setitem(fuzz.SYNC_TARGETS, "socks", (broken, fuzz.socks_seeds))
    result = fuzz.run_sync("socks", random.Random(3), 500, deadline=float("inf"))
    assert result.inputs == 500 and result.internal_errors > 0
    assert result.examples and "a parser bug" in result.examples[0]
