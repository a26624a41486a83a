"""The status JSON others code against: keys and round trip."""

from __future__ import annotations

import json

import pytest

from testnet.status import (
    EepsiteStatus,
    RouterStatus,
    TestnetStatus,
    UdpEchoStatus,
    split_host_port,
)

KEYS = {
    "name", "state_dir", "netns", "ready_seconds", "tunnel_length", "link_delay_ms", "routers",
    "http_proxy", "socks_proxy", "proxy_router", "eepsite", "udp_echo", "impairment", "profile",
}  # fmt: skip


def example(state_dir: str) -> TestnetStatus:
    return TestnetStatus(
        name="t",
        state_dir=state_dir,
        netns="i2pt-t",
        ready_seconds=12.5,
        tunnel_length=1,
        link_delay_ms=0.0,
        routers=[
            RouterStatus(
                i, f"r{i}", i < 2, f"127.0.0.1:{4000 + i}", f"127.0.0.1:{5000 + i}", 10 + i
            )
            for i in range(5)
        ],
        http_proxy="127.0.0.1:6000",
        socks_proxy="127.0.0.1:6001",
        proxy_router=2,
        eepsite=EepsiteStatus("a" * 52 + ".b32.i2p", "AAAA", "/www", 4, 80),
        udp_echo=UdpEchoStatus(
            "b" * 52 + ".b32.i2p", "BBBB", 2, 8007, "c" * 52 + ".b32.i2p", "CCCC", 8008
        ),
    )


def test_status_json_has_exactly_the_documented_keys():
    data = example("/s").to_dict()
    assert set(data) == KEYS
    assert set(data["routers"][0]) == {
        "index", "name", "floodfill", "i2cp", "sam", "pid", "webconsole",
    }  # fmt: skip
    assert set(data["eepsite"]) == {"b32", "destination", "www_dir", "router", "port"}
    assert set(data["udp_echo"]) == {
        "b32", "destination", "router", "port",
        "repliable_b32", "repliable_destination", "repliable_port",
    }  # fmt: skip


def test_status_round_trips_through_the_state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("I2PROXY_TESTNET_DIR", str(tmp_path))
    (tmp_path / "t").mkdir()
    status = example(str(tmp_path / "t"))
    status.save()
    loaded = TestnetStatus.load("t")
    assert loaded == status
    assert loaded.routers[3].sam_host_port == ("127.0.0.1", 5003)
    assert loaded.routers[0].i2cp_host_port == ("127.0.0.1", 4000)
    assert loaded.http_proxy_host_port == ("127.0.0.1", 6000)
    assert json.loads((tmp_path / "t" / "status.json").read_text())["eepsite"]["port"] == 80


def test_unknown_keys_survive_a_round_trip():
    data = example("/s").to_dict()
    data["added_later"] = {"x": 1}
    assert TestnetStatus.from_dict(data).to_dict() == data


def test_loading_a_missing_network_says_how_to_start_it(tmp_path, monkeypatch):
    monkeypatch.setenv("I2PROXY_TESTNET_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="testnet up --name nope"):
        TestnetStatus.load("nope")


def test_split_host_port():
    assert split_host_port("127.0.0.1:7656") == ("127.0.0.1", 7656)
