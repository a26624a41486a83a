"""Outproxy core (sans-IO): the URL rules, which outproxy a host gets, the handshakes' codecs."""

from __future__ import annotations

import pytest

from i2proxy.config import ConfigError, load_config
from i2proxy.proxy import pages
from i2proxy.proxy.cli import check_outproxies
from i2proxy.proxy.outproxy import (
    NoOutproxyAnswered,
    Outproxy,
    OutproxyChooser,
    OutproxyKind,
    OutproxyRefused,
    OutproxyTargetFailed,
    Socks5Handshake,
    check_connect_response,
    connect_request,
    convert_request_form,
    is_clearnet_name,
    parse_outproxy,
    request_target,
)

B32 = "a" * 52 + ".b32.i2p"


def test_outproxy_urls_name_i2p_destinations_with_default_ports():
    assert parse_outproxy("http://exit.stormycloud.i2p") == Outproxy(
        OutproxyKind.HTTP, "exit.stormycloud.i2p", 80
    )
    assert parse_outproxy(f"socks5://{B32.upper()}:1081/") == Outproxy(
        OutproxyKind.SOCKS5, B32, 1081
    )
    assert parse_outproxy(f"socks5h://{B32}").port == 1080


@pytest.mark.parametrize(
    "url",
    [
        "http://exit.example.com",  # clearnet: would be reached directly
        "socks5://127.0.0.1:1080",
        "http://localhost:4444",
        "https://exit.i2p",
        "socks4://exit.i2p",
        "http://user:pw@exit.i2p",
        "http://exit.i2p/path",
        "http://exit.i2p:99999",
        "http://bad_name!.i2p",
        "",
    ],
)
def test_anything_but_an_i2p_destination_is_refused(url):
    with pytest.raises(ValueError):
        parse_outproxy(url)


def test_the_setting_comes_from_flags_environment_and_file_and_is_checked(tmp_path):
    path = tmp_path / "i2proxy.toml"
    path.write_text(f'outproxy = ["http://exit.i2p", "socks5://{B32}:1080"]\n')
    assert load_config(config_file=path, env={}).outproxy[1] == f"socks5://{B32}:1080"
    env = {"I2PROXY_OUTPROXY": f"http://exit.i2p, socks5://{B32}"}
    assert load_config(env=env).outproxy == ["http://exit.i2p", f"socks5://{B32}"]
    assert load_config(env={}, overrides={"outproxy": ["http://b.i2p"]}).outproxy == [
        "http://b.i2p"
    ]
    assert load_config(env={}).outproxy == []  # off by default
    with pytest.raises(ConfigError, match="outproxy"):
        check_outproxies(load_config(env={"I2PROXY_OUTPROXY": "http://exit.example.com"}))
    with pytest.raises(ConfigError, match="at most"):
        load_config(env={"I2PROXY_OUTPROXY": ",".join(["http://x.i2p"] * 17)})


def test_clearnet_names_only():
    assert is_clearnet_name("www.example.test") and is_clearnet_name("a-b.example")
    for host in ("10.0.0.1", "localhost", "x.i2p", "a b", "bad!", "-x.com", "ünï.com", ""):
        assert not is_clearnet_name(host), host


A, B, C = (Outproxy(OutproxyKind.HTTP, f"{n}.i2p", 80) for n in "abc")


def test_a_host_sticks_to_the_outproxy_that_served_it():
    chooser = OutproxyChooser([A, B, C])
    assert chooser.order("site.test", 0) == [A, B, C]
    chooser.succeeded("site.test", B)
    assert chooser.order("site.test", 1) == [B, A, C]
    assert chooser.order("other.test", 1) == [A, B, C]


def test_a_failed_outproxy_goes_last_until_it_may_be_retried():
    chooser = OutproxyChooser([A, B, C], retry_after=60)
    chooser.succeeded("site.test", A)
    chooser.failed("site.test", A, now=100)
    assert chooser.order("site.test", 101) == [B, C, A]  # not sticky to a failed one
    chooser.failed("x.test", B, now=110)
    assert chooser.order("x.test", 111) == [C, A, B]  # oldest failure first among the tired
    assert chooser.order("x.test", 161) == [A, C, B]  # A may be retried, B not yet
    chooser.succeeded("x.test", B)
    assert chooser.order("x.test", 162) == [B, A, C]


def test_the_sticky_table_is_bounded():
    chooser = OutproxyChooser([A, B], max_sticky=2)
    for host in ("one.test", "two.test", "three.test"):
        chooser.succeeded(host, B)
    assert chooser.sticky_hosts() == 2
    assert chooser.order("one.test", 0) == [A, B]  # forgotten, least recently used


def test_connect_says_only_the_target():
    assert connect_request("www.example.test", 443) == (
        b"CONNECT www.example.test:443 HTTP/1.1\r\nHost: www.example.test:443\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("head", "error", "code"),
    [
        (b"HTTP/1.1 200 Connection established\r\n\r\n", None, None),
        (b"HTTP/1.0 200 OK\r\nX: y\r\n\r\n", None, None),
        (b"HTTP/1.1 502 Bad Gateway\r\n\r\n", OutproxyTargetFailed, 4),
        (b"HTTP/1.1 504 Gateway Timeout\r\n\r\n", OutproxyTargetFailed, 6),
        (b"HTTP/1.1 403 Forbidden\r\n\r\n", OutproxyRefused, None),
        (b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n", OutproxyRefused, None),
        (b"SSH-2.0-OpenSSH\r\n\r\n", OutproxyRefused, None),
        (b"\r\n\r\n", OutproxyRefused, None),
    ],
)
def test_connect_answers_are_success_target_failure_or_refusal(head, error, code):
    if error is None:
        check_connect_response(head)
        return
    with pytest.raises(error) as raised:
        check_connect_response(head)
    if code is not None:
        assert raised.value.socks_code == code


def test_socks5_handshake_sends_the_name_for_the_outproxy_to_resolve():
    socks = Socks5Handshake("www.example.test", 80)
    assert socks.greeting() == b"\x05\x01\x00"
    request = socks.method_reply(b"\x05\x00")
    assert request == b"\x05\x01\x00\x03\x10www.example.test\x00\x50"
    reply = b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    assert socks.reply_size(reply[:5]) == len(reply)
    socks.connect_reply(reply)
    domain_reply = b"\x05\x00\x00\x03\x04abcd\x01\xbb"
    assert Socks5Handshake.reply_size(domain_reply[:5]) == len(domain_reply)


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (b"\x05\x04", OutproxyTargetFailed),  # host unreachable: the target's fault
        (b"\x05\x05", OutproxyTargetFailed),
        (b"\x05\x02", OutproxyRefused),  # not allowed: the outproxy refuses us
        (b"\x05\x01", OutproxyRefused),
        (b"HT", OutproxyRefused),  # an HTTP server on that port
    ],
)
def test_socks5_failures_are_target_failures_or_refusals(reply, error):
    socks = Socks5Handshake("www.example.test", 80)
    socks.greeting()
    socks.method_reply(b"\x05\x00")
    with pytest.raises(error):
        socks.connect_reply(reply)


def test_socks5_outproxy_demanding_a_password_or_speaking_http_is_a_refusal():
    for answer in (b"\x05\xff", b"\x05\x02", b"HT"):
        socks = Socks5Handshake("www.example.test", 80)
        socks.greeting()
        with pytest.raises(OutproxyRefused):
            socks.method_reply(answer)


def test_requests_are_reformed_for_the_other_outproxy_kind():
    absolute = b"GET http://www.example.test:8080/a?b=1 HTTP/1.1\r\nHost: x\r\n\r\nbody"
    origin = b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\nbody"
    http, socks = OutproxyKind.HTTP, OutproxyKind.SOCKS5
    assert convert_request_form(absolute, http, socks, "www.example.test", 8080) == origin
    assert convert_request_form(origin, socks, http, "www.example.test", 8080) == absolute
    assert convert_request_form(origin, socks, socks, "h", 80) is origin
    assert request_target(http, "www.example.test", 80, "/p") == "http://www.example.test/p"
    assert request_target(socks, "www.example.test", 80, "/p") == "/p"


def test_no_outproxy_answered_remembers_whether_it_was_a_timeout():
    assert NoOutproxyAnswered("x", timed_out=True).timed_out


def test_with_outproxies_the_pac_file_sends_everything_to_the_proxy():
    pac = pages.pac_file("127.0.0.1", 4444, everything=True).decode()
    assert "DIRECT" not in pac and '"PROXY 127.0.0.1:4444"' in pac
    assert "DIRECT" in pages.pac_file("127.0.0.1", 4444).decode()
