"""Config rendering and RouterInfo placement for the private test network (no processes)."""

from __future__ import annotations

import base64
import configparser
import hashlib
from pathlib import Path

import pytest

from testnet.netns import Redirect, render_redirect_rules
from testnet.router import (
    HARMLESS_SUBSCRIPTION,
    NETID,
    RouterSpec,
    destination_from_keys_file,
    i2p_b64encode,
    netdb_relative_path,
    render_eepsite_tunnel,
    render_i2pd_conf,
    render_service_tunnels,
    render_udp_echo_tunnel,
    router_ident_hash,
    router_info_caps,
)


def parse(conf: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read_string("[main]\n" + conf)
    return parser


def spec(index: int, floodfill: bool) -> RouterSpec:
    return RouterSpec(index, floodfill, Path(f"/state/r{index}"))


def test_routers_get_distinct_yggdrasil_addresses_and_ports():
    a, b = spec(0, True), spec(11, False)
    assert (a.ygg_address, b.ygg_address) == ("200::1", "200::c")
    services = ["ntcp2", "i2cp", "sam", "webconsole", "http_proxy", "socks_proxy", "relay"]
    ports = [s.port(name) for s in (a, b) for name in services]
    assert len(set(ports)) == len(ports)
    # i2pd binds the SAM UDP port at sam - 1: it must not hit another service of any router.
    assert all(s.port("sam") - 1 not in ports for s in (a, b))


def test_floodfill_config_publishes_ipv4_and_stays_offline():
    conf = parse(render_i2pd_conf(spec(0, True), tunnel_length=1, proxies=False))
    main = conf["main"]
    assert main["netid"] == str(NETID) != "2"
    assert (main["floodfill"], main["ipv4"], main["host"]) == ("true", "true", "127.0.0.1")
    assert main["ipv6"] == "false"
    assert conf["meshnets"]["yggaddress"] == "200::1"
    assert conf["reseed"]["urls"] == "" and conf["reseed"]["yggurls"] == ""
    assert conf["reseed"]["threshold"] == "0"
    assert conf["ssu2"]["enabled"] == "false" and conf["upnp"]["enabled"] == "false"
    assert conf["nettime"]["enabled"] == "false"
    # i2pd 2.58 drops the floodfills' 127.0.0.1 without it (and then knows no floodfill).
    assert main["reservedrange"] == "false"


def test_every_router_has_i2cp_sam_and_a_harmless_address_book():
    conf = parse(render_i2pd_conf(spec(3, False), tunnel_length=0, proxies=False))
    assert conf["main"]["ipv4"] == "false" and conf["main"]["floodfill"] == "false"
    assert "host" not in conf["main"]
    assert conf["i2cp"]["enabled"] == "true" and conf["i2cp"]["port"] == "21003"
    assert conf["sam"]["enabled"] == "true" and conf["sam"]["port"] == "22003"
    book = conf["addressbook"]
    assert book["enabled"] == "true"
    assert book["defaulturl"] == book["subscriptions"] == HARMLESS_SUBSCRIPTION
    assert conf["httpproxy"]["enabled"] == "false" and conf["socksproxy"]["enabled"] == "false"
    assert conf["exploratory"]["inbound.length"] == "0"


def test_only_a_router_without_transit_declines_other_routers_tunnels():
    assert (
        "notransit"
        not in parse(render_i2pd_conf(spec(3, False), tunnel_length=1, proxies=False))["main"]
    )
    conf = parse(render_i2pd_conf(spec(3, False), tunnel_length=1, proxies=False, transit=False))
    assert conf["main"]["notransit"] == "true"


def test_proxy_router_runs_i2pd_proxies_with_the_tunnel_length():
    conf = parse(render_i2pd_conf(spec(2, False), tunnel_length=2, proxies=True))
    for section, port in (("httpproxy", "25002"), ("socksproxy", "26002")):
        assert conf[section]["enabled"] == "true"
        assert conf[section]["address"] == "127.0.0.1" and conf[section]["port"] == port
        assert conf[section]["inbound.length"] == conf[section]["outbound.length"] == "2"


def test_eepsite_tunnel_is_a_plain_server_tunnel_on_port_80():
    conf = parse(render_eepsite_tunnel(tunnel_length=1, keys_file="e.dat"))["eepsite"]
    # "server", not "http": i2pd's http tunnel rewrites headers, and /headers must show them raw.
    assert conf["type"] == "server"
    assert (conf["host"], conf["port"], conf["inport"], conf["keys"]) == (
        "127.0.0.1", "8080", "80", "e.dat",
    )  # fmt: skip
    # Zero-hop outbound tunnels exist at once, so the first LeaseSet is always published.
    assert (conf["inbound.length"], conf["outbound.length"]) == ("1", "0")


def test_service_tunnels_keep_port_80_plain_and_put_whoami_and_the_outproxy_beside_it():
    sections = parse(
        render_service_tunnels(
            tunnel_length=2, eepsite_keys="e.dat", eepsite2_keys="e2.dat", outproxy_keys="o.dat"
        )
    )
    expected = {
        "eepsite": ("server", "8080", "80", "e.dat"),
        # the same destination; i2pd adds X-I2P-DestB32 on http-type tunnels only
        "eepsite-whoami": ("http", "8080", "81", "e.dat"),
        "eepsite2": ("http", "8081", "80", "e2.dat"),
        "outproxy-http": ("server", "8082", "80", "o.dat"),
        "outproxy-socks": ("server", "8083", "1080", "o.dat"),
    }
    for name, (kind, port, inport, keys) in expected.items():
        conf = sections[name]
        assert (conf["type"], conf["port"], conf["inport"], conf["keys"]) == (
            kind, port, inport, keys,
        ), name  # fmt: skip
        assert (conf["inbound.length"], conf["outbound.length"]) == ("2", "0")
        assert conf["i2p.streaming.answerPings"] == "true"


def test_udp_echo_is_a_zero_hop_udp_server_tunnel_to_the_local_echo_port():
    sections = parse(render_udp_echo_tunnel(keys_file="u.dat", repliable_keys_file="r.dat"))
    for name, port, keys in (("udpecho", "8007", "u.dat"), ("udpecho-repliable", "8008", "r.dat")):
        conf = sections[name]
        assert conf["type"] == "udpserver"
        assert (conf["host"], conf["port"], conf["keys"]) == ("127.0.0.1", port, keys)
        assert (conf["inbound.length"], conf["outbound.length"]) == ("0", "0")


def fake_router_info(cert_payload: bytes = b"\x00\x07\x00\x04", caps: bytes = b"Xf") -> bytes:
    identity = bytes(range(256)) + bytes(128)
    cert = b"\x05" + len(cert_payload).to_bytes(2, "big") + cert_payload
    options = b"\x04caps=" + bytes([len(caps)]) + caps + b";"
    return identity + cert + b"\x00" * 8 + b"\x00" + len(options).to_bytes(2, "big") + options


def test_ident_hash_covers_the_identity_including_its_certificate():
    info = fake_router_info()
    assert router_ident_hash(info) == hashlib.sha256(info[: 387 + 4]).digest()
    assert router_ident_hash(fake_router_info(b"\x00\x07\x00\x05")) != router_ident_hash(info)


def test_router_info_goes_to_netdb_subdirectory_of_its_hash_first_character():
    info = fake_router_info()
    h = base64.b64encode(router_ident_hash(info)).decode().replace("+", "-").replace("/", "~")
    assert netdb_relative_path(info) == Path(f"r{h[0]}") / f"routerInfo-{h}.dat"


def test_i2p_base64_uses_dash_and_tilde():
    assert i2p_b64encode(b"\xfb\xff\xbf") == "-~-~"


def test_truncated_router_info_is_rejected():
    with pytest.raises(ValueError):
        router_ident_hash(b"\x00" * 100)
    with pytest.raises(ValueError):
        router_ident_hash(fake_router_info()[:390])


def test_caps_are_read_from_the_router_info_options():
    assert router_info_caps(fake_router_info(caps=b"XfR")) == "XfR"
    assert router_info_caps(b"\x00" * 400) is None


def test_redirect_rules_skip_the_relays_own_marked_connections():
    rules = render_redirect_rules([Redirect("200::1", 20000, 27000)])
    assert "type nat hook output" in rules
    assert "meta mark != 0x1d2 ip6 daddr 200::1 tcp dport 20000 redirect to :27000" in rules


def test_eepsite_tunnel_answers_streaming_pings_explicitly():
    # i2pd 2.45.1 turns its own default into "1" and then compares with "true"
    conf = parse(render_eepsite_tunnel(tunnel_length=1, keys_file="e.dat"))["eepsite"]
    assert conf["i2p.streaming.answerPings"] == "true"


def test_eepsite_destination_and_b32_come_from_the_keys_file_head():
    destination = fake_router_info()[:391]
    keys_file = destination + b"\x11" * 256 + b"\x22" * 32 + b"\x33" * 64
    full, b32 = destination_from_keys_file(keys_file)
    assert base64.b64decode(full.replace("-", "+").replace("~", "/")) == destination
    expected = base64.b32encode(hashlib.sha256(destination).digest()).decode().lower()
    assert b32 == expected.rstrip("=") + ".b32.i2p" and len(b32) == 52 + 8
