"""The bulk benchmark's cell syntax (``bench/bench_bulk.py --cells``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from bench_bulk import (
    DEFAULT_CELLS,
    Cell,
    check_tunnel_length,
    network_line,
    parse_cell,
    sample_kinds,
)


def test_cells_become_the_testnet_impair_command_line():
    assert parse_cell("0ms:none") == Cell("0ms:none", 0.0, ())
    assert parse_cell("0ms:2loss").impair_args == ("--loss", "2.0")
    assert parse_cell("50ms:1loss+5reorder") == Cell(
        "50ms:1loss+5reorder", 50.0, ("--loss", "1.0", "--reorder", "5.0")
    )
    assert parse_cell("0ms:rate=4mbit+30jitter+1dup").impair_args == (
        "--rate", "4mbit", "--jitter", "30.0", "--duplicate", "1.0",
    )  # fmt: skip
    assert parse_cell("real") == Cell("real", None, ("--profile", "real"))


@pytest.mark.parametrize("text", ["50:1loss", "0ms", "0ms:2lost", "fast"])
def test_bad_cells_are_refused(text):
    with pytest.raises(ValueError):
        parse_cell(text)


def test_the_default_matrix_is_the_issues():
    cells = DEFAULT_CELLS.split(",")
    assert len(cells) == 12
    assert {"0ms:none", "50ms:1loss", "200ms:5loss", "200ms:5reorder"} <= set(cells)


def test_the_real_profile_refuses_a_network_without_its_tunnels():
    check_tunnel_length([parse_cell("real")], 3)
    check_tunnel_length([parse_cell("50ms:1loss")], 0)
    with pytest.raises(ValueError, match="--tunnel-length 3"):
        check_tunnel_length([parse_cell("0ms:none"), parse_cell("real")], 0)


def test_the_network_line_names_the_routers_both_proxies_used():
    routers = [{"name": f"r{i}", "kind": "i2pd", "version": "2.58.0"} for i in range(5)] + [
        {"name": "j5", "kind": "java", "version": "2.7.0"}
    ]
    status = {"routers": routers, "proxy_router": 2, "eepsite": {"router": 4}, "tunnel_length": 0}
    assert network_line(status) == (
        "proxy r2 i2pd 2.58.0, eepsite r4 i2pd 2.58.0; 5x i2pd 2.58.0, 1x java 2.7.0; 0-hop tunnels"
    )


def test_ttfb_rounds_put_each_kind_first_equally_often():
    firsts = [sample_kinds(i, "h", "s")[0][0] for i in range(8)]
    assert firsts == ["HTTP", "HTTP", "SOCKS", "SOCKS"] * 2
    assert sample_kinds(2, "h", "s") == [("SOCKS", "s", True), ("HTTP", "h", False)]
