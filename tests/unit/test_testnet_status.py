"""The status JSON others code against: keys and round trip."""

from __future__ import annotations

import json

import pytest

from testnet.status import (
    EepsiteStatus,
    JavaEepsiteStatus,
    OutproxyStatus,
    RouterStatus,
    TestnetStatus,
    UdpEchoStatus,
    split_host_port,
)

KEYS = {
    "name", "state_dir", "netns", "ready_seconds", "tunnel_length", "link_delay_ms", "routers",
    "http_proxy", "socks_proxy", "proxy_router", "restartable_router", "eepsite", "udp_echo",
    "impairment", "profile",
    "mix", "java_http_proxy", "java_eepsite", "eepsite2", "outproxy",
}  # fmt: skip
VERSIONS = ["2.58.0", "2.58.0", "2.45.1", "2.45.1", "2.45.1", "2.58.0"]


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
                i,
                f"r{i}",
                i < 2,
                f"127.0.0.1:{4000 + i}",
                f"127.0.0.1:{5000 + i}",
                10 + i,
                webconsole=f"127.0.0.1:{3000 + i}",
                version=version,
            )
            for i, version in enumerate(VERSIONS)
        ]
        + [
            RouterStatus(
                6,
                "j6",
                False,
                "127.0.0.1:4006",
                "127.0.0.1:5006",
                16,
                None,
                "java",
                "2.7.0",
                http_proxy="127.0.0.1:6006",
                eepsite="b" * 52 + ".b32.i2p",
            )
        ],
        http_proxy="127.0.0.1:6000",
        socks_proxy="127.0.0.1:6001",
        proxy_router=2,
        eepsite=EepsiteStatus("a" * 52 + ".b32.i2p", "AAAA", "/www", 4, 80),
        udp_echo=UdpEchoStatus(
            "b" * 52 + ".b32.i2p", "BBBB", 2, 8007, "c" * 52 + ".b32.i2p", "CCCC", 8008
        ),
        mix="mixed",
        java_http_proxy="127.0.0.1:6006",
        java_eepsite=JavaEepsiteStatus("b" * 52 + ".b32.i2p", "BBBB", 6),
        eepsite2=EepsiteStatus("d" * 52 + ".b32.i2p", "DDDD", "/www", 4, 80, "http://d/whoami"),
        outproxy=OutproxyStatus(
            "e" * 52 + ".b32.i2p",
            "EEEE",
            4,
            "http://" + "e" * 52 + ".b32.i2p",
            "socks5://" + "e" * 52 + ".b32.i2p:1080",
        ),
    )


def test_status_json_has_exactly_the_documented_keys():
    data = example("/s").to_dict()
    assert set(data) == KEYS
    assert set(data["routers"][0]) == {
        "index", "name", "floodfill", "i2cp", "sam", "pid", "webconsole", "kind", "version",
        "http_proxy", "eepsite",
    }  # fmt: skip
    assert set(data["eepsite"]) == {"b32", "destination", "www_dir", "router", "port", "whoami"}
    assert set(data["eepsite2"]) == set(data["eepsite"])
    assert set(data["outproxy"]) == {
        "b32", "destination", "router", "http", "socks5", "http_port", "socks5_port", "url",
        "marker", "stats_file",
    }  # fmt: skip
    assert set(data["udp_echo"]) == {
        "b32", "destination", "router", "port",
        "repliable_b32", "repliable_destination", "repliable_port",
    }  # fmt: skip
    assert set(data["java_eepsite"]) == {"b32", "destination", "router", "port"}
    assert [(r["kind"], r["version"]) for r in data["routers"]][-2:] == [
        ("i2pd", "2.58.0"),
        ("java", "2.7.0"),
    ]
    assert data["java_http_proxy"] == "127.0.0.1:6006"


def test_a_status_written_before_router_kinds_existed_still_loads():
    data = example("/s").to_dict()
    for key in ("mix", "java_http_proxy", "java_eepsite", "eepsite2", "outproxy"):
        del data[key]
    del data["eepsite"]["whoami"]
    data["routers"] = [
        {k: v for k, v in r.items() if k not in ("kind", "version", "http_proxy", "eepsite")}
        for r in data["routers"][:5]
    ]
    old = TestnetStatus.from_dict(data)
    assert old.java_eepsite is None and old.java_http_proxy is None and old.java_routers == []
    assert old.eepsite2 is None and old.outproxy is None and old.eepsite.whoami == ""
    assert {(r.kind, r.version) for r in old.routers} == {("i2pd", "2.45.1")}


def test_routers_of_kind_and_version():
    status = example("/s")
    assert [r.index for r in status.routers_of_kind("i2pd", "2.58")] == [0, 1, 5]
    assert [r.index for r in status.routers_of_kind("i2pd", "2.58.0", floodfill=False)] == [5]
    assert [r.index for r in status.routers_of_kind("i2pd", "2.45.1")] == [2, 3, 4]
    assert status.routers_of_kind("i2pd", "2.5") == []  # a version prefix is whole components
    assert [r.index for r in status.java_routers] == [6]
    assert [r.index for r in status.routers_of_kind("java", "2.7")] == [6]
    assert len(status.i2pd_routers) == 6
    assert status.routers[6].is_java and not status.routers[2].is_java
    assert status.routers[6].http_proxy_host_port == ("127.0.0.1", 6006)
    assert status.java_http_proxy_host_port == ("127.0.0.1", 6006)


def test_client_router_is_never_a_floodfill_and_avoids_the_services():
    status = example("/s")
    assert status.client_router("i2pd", "2.45.1").index == 3  # not the proxy (2) or eepsite (4)
    assert status.client_router("i2pd", "2.58").index == 5  # not the floodfills 0 and 1
    assert status.client_router("java").index == 6
    with pytest.raises(LookupError, match=r"no non-floodfill java 3\.0 router"):
        status.client_router("java", "3.0")


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
