"""Request targets, privacy filtering, address helpers, tokens and proxy auth (no I/O)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from i2proxy.proxy.headers import (
    Origin,
    filter_request_headers,
    filter_response_headers,
    is_supercookie,
    wire_headers,
)
from i2proxy.proxy.http import (
    HelperTokens,
    HttpError,
    basic_credentials,
    credentials_ok,
    parse_helper_value,
    parse_request_target,
    split_address_helper,
)
from i2proxy.proxy.routing import HostKind, Resolver, classify_host

B32 = "a" * 52 + ".b32.i2p"


# -- request targets -----------------------------------------------------------------------------


def test_absolute_form_becomes_origin_form_and_drops_userinfo_and_fragment():
    t = parse_request_target("GET", "http://user:pw@Zzz.I2P./a/b?c=1#frag", None)
    assert (t.scheme, t.host, t.port, t.path, t.absolute) == (
        "http",
        "zzz.i2p",
        80,
        "/a/b?c=1",
        True,
    )


def test_absolute_form_with_port_and_empty_path():
    t = parse_request_target("PROPFIND", "http://zzz.i2p:8080", None)
    assert (t.host, t.port, t.path) == ("zzz.i2p", 8080, "/")
    assert t.url == "http://zzz.i2p:8080/"


def test_origin_form_takes_the_host_header():
    t = parse_request_target("GET", "/x", "site.i2p:81")
    assert (t.host, t.port, t.path, t.absolute) == ("site.i2p", 81, "/x", False)


def test_connect_authority_form_defaults_to_443():
    t = parse_request_target("CONNECT", "site.i2p:8443", None)
    assert (t.host, t.port) == ("site.i2p", 8443)
    assert parse_request_target("CONNECT", "[::1]:443", None).host == "::1"


@pytest.mark.parametrize(
    ("method", "target", "host"),
    [
        ("GET", "/x", None),
        ("GET", "https://zzz.i2p/", None),
        ("GET", "ftp://zzz.i2p/", None),
        ("CONNECT", "zzz.i2p:99999", None),
        ("CONNECT", "zzz.i2p:x", None),
        ("GET", "zzz.i2p", None),
        ("GET", "http://:80/", None),
    ],
)
def test_unusable_targets_are_400(method, target, host):
    with pytest.raises(HttpError) as info:
        parse_request_target(method, target, host)
    assert info.value.status == 400


# -- host classification ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        (B32, HostKind.B32),
        ("ZZZ.i2p", HostKind.NAME),
        ("sub.zzz.i2p.alt", HostKind.NAME),
        ("proxy.i2p", HostKind.PROXY),
        ("127.0.0.1", HostKind.IP),
        ("[::1]", HostKind.IP),
        ("127.1", HostKind.IP),
        ("localhost", HostKind.LOCAL),
        ("example.com", HostKind.CLEARNET),
        ("bad_.b32.i2p", HostKind.INVALID),
        ("-x.i2p", HostKind.INVALID),
        ("", HostKind.INVALID),
    ],
)
def test_hosts_are_classified_before_anything_is_resolved(host, kind):
    assert classify_host(host)[0] is kind


def test_resolver_answers_b32_itself_and_asks_the_book_for_names():
    class Book:
        def lookup(self, name):
            return "x" * 52 + ".b32.i2p" if name == "known.i2p" else None

    r = Resolver(Book())
    assert r.resolve(B32.upper()) == B32
    assert r.resolve("known.i2p") == "x" * 52 + ".b32.i2p"
    assert r.resolve("unknown.i2p") is None
    assert r.resolve("example.com") is None


# -- privacy filtering -----------------------------------------------------------------------------

BROWSER_HEADERS = [
    (b"Host", b"zzz.i2p"),
    (b"User-Agent", b"Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"),
    (b"Accept", b"text/html"),
    (b"accept-language", b"de-CH,de;q=0.9"),
    (b"Accept-Charset", b"utf-8"),
    (b"Accept-Encoding", b"gzip"),
    (b"via", b"1.1 corp-proxy"),
    (b"From", b"me@example.com"),
    (b"Forwarded", b"for=192.168.1.5"),
    (b"X-Forwarded-For", b"192.168.1.5"),
    (b"x-forwarded-host", b"lan"),
    (b"DNT", b"1"),
    (b"Proxy-Authorization", b"Basic eDp5"),
    (b"Proxy-Connection", b"keep-alive"),
    (b"Connection", b"keep-alive, X-Secret"),
    (b"X-Secret", b"hop"),
    (b"Keep-Alive", b"timeout=5"),
    (b"TE", b"trailers"),
    (b"Sec-CH-UA", b'"Chromium";v="120"'),
    (b"sec-ch-ua-platform", b'"Linux"'),
    (b"Sec-Fetch-Site", b"none"),
    (b"Origin", b"http://other.i2p"),
    (b"Referer", b"http://other.i2p/page"),
    (b"Cookie", b"a=b"),
    (b"Content-Type", b"text/plain"),
    (b"Authorization", b"NTLM TlRMTVNTUAABAAAA"),
    (b"X-Requested-With", b"com.example.app"),
]


def test_request_filter_keeps_only_what_a_site_needs():
    out = filter_request_headers(
        BROWSER_HEADERS, origin=Origin("http", "zzz.i2p", 80), b32_host=B32
    )
    assert out[0] == (b"host", B32.encode())
    assert dict(out) == {
        b"host": B32.encode(),
        b"accept": b"text/html",
        b"accept-encoding": b"gzip",
        b"cookie": b"a=b",
        b"content-type": b"text/plain",
        b"origin": b"null",  # cross-site: the site can still tell (CSRF), but not from where
        b"user-agent": b"MYOB/6.66 (AN/ON)",
    }


@pytest.mark.parametrize(
    "name",
    [
        b"X-Forwarded",
        b"Forwarded-For",
        b"X-Host",
        b"X-Remote-Addr",
        b"X-Original-URL",
        b"X-Forwarded-Proto",
        b"Upgrade-Insecure-Requests",
        b"Priority",
        b"X-Anything-New",
        b"Expect",
    ],
)
def test_request_headers_outside_the_allow_list_never_reach_the_site(name):
    out = filter_request_headers(
        [(name, b"192.168.1.5"), (b"Accept", b"*/*")],
        origin=Origin("http", "zzz.i2p", 80),
        b32_host=B32,
    )
    assert [n for n, _ in out] == [b"host", b"accept", b"user-agent"]


def test_headers_go_out_in_firefox_order_and_spelling():
    filtered = filter_request_headers(
        [
            (b"cookie", b"a=b"),
            (b"referer", b"http://zzz.i2p/"),
            (b"x-csrf-token", b"t"),
            (b"accept-encoding", b"gzip"),
            (b"content-length", b"3"),
            (b"accept", b"*/*"),
            (b"origin", b"http://zzz.i2p"),
            (b"content-type", b"text/plain"),
        ],
        origin=Origin("http", "zzz.i2p", 80),
        b32_host=B32,
    )
    assert [n for n, _ in wire_headers(filtered)] == [
        b"Host",
        b"User-Agent",
        b"Accept",
        b"Accept-Encoding",
        b"Content-Type",
        b"Content-Length",
        b"Origin",
        b"Referer",
        b"Cookie",
        b"X-CSRF-Token",
    ]


def test_same_origin_referer_and_origin_are_kept_but_spelled_with_the_b32_name():
    headers = [(b"Referer", b"http://zzz.i2p/a?b=1"), (b"Origin", b"http://ZZZ.i2p")]
    out = dict(filter_request_headers(headers, origin=Origin("http", "zzz.i2p", 80), b32_host=B32))
    assert out[b"referer"] == f"http://{B32}/a?b=1".encode()
    assert out[b"origin"] == f"http://{B32}".encode()


def test_non_default_port_is_in_host_and_user_agent_can_pass_through():
    headers = [(b"user-agent", b"curl/8"), (b"Referer", b"http://zzz.i2p/")]
    out = dict(
        filter_request_headers(
            headers, origin=Origin("http", "zzz.i2p", 8080), b32_host=B32, user_agent=None
        )
    )
    assert out[b"host"] == f"{B32}:8080".encode()
    assert out[b"user-agent"] == b"curl/8"
    assert b"referer" not in out  # port 80 is another origin than 8080


def test_response_filter_drops_supercookies_and_proxy_headers():
    headers = [
        (b"Set-Cookie", b"track=1; Domain=.i2p; Path=/"),
        (b"set-cookie", b"t2=1; domain=b32.i2p"),
        (b"Set-Cookie", b"session=2; Domain=zzz.i2p"),
        (b"Set-Cookie", b"plain=3"),
        (b"Proxy-Authenticate", b"Basic"),
        (b"Proxy-Connection", b"close"),
        (b"Connection", b"close, X-Hop"),
        (b"X-Hop", b"1"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Content-Type", b"text/html"),
    ]
    assert filter_response_headers(headers) == [
        (b"set-cookie", b"session=2; Domain=zzz.i2p"),
        (b"set-cookie", b"plain=3"),
        (b"content-type", b"text/html"),
    ]
    assert is_supercookie(b'x=1; Domain=".I2P."')
    assert is_supercookie(b"x=1; Domain=b32.i2p.alt")
    assert is_supercookie(b"x=1; Domain=.I2P.ALT")
    assert not is_supercookie(b"x=1; Path=/i2p")


# -- address helper --------------------------------------------------------------------------------


def test_helper_parameter_is_removed_and_other_parameters_keep_their_encoding():
    path, helper = split_address_helper("/p?a=%20x&i2paddresshelper=" + B32 + "&b=2")
    assert path == "/p?a=%20x&b=2"
    assert helper == B32
    assert split_address_helper("/p?i2paddresshelper=abc") == ("/p", "abc")
    assert split_address_helper("/p?a=1") == ("/p?a=1", None)


def test_helper_value_b32_is_accepted_and_garbage_is_400():
    assert parse_helper_value(B32.upper()) == B32
    with pytest.raises(HttpError) as info:
        parse_helper_value("not-a-destination")
    assert info.value.status == 400


def test_helper_tokens_bind_host_destination_and_url_expire_and_are_single_use():
    tokens = HelperTokens(secret=b"k" * 32, lifetime=60)
    url = "http://zzz.i2p/a"
    token = tokens.issue("zzz.i2p", B32, url, now=1000)
    assert not tokens.check(token, "zzz.i2p", B32, url, now=1061)
    assert not tokens.check(token, "evil.i2p", B32, url, now=1030)
    assert not tokens.check(token, "zzz.i2p", "b" * 52 + ".b32.i2p", url, now=1030)
    assert not tokens.check(token, "zzz.i2p", B32, "http://evil.com\\@zzz.i2p/", now=1030)
    assert not tokens.check("", "zzz.i2p", B32, url, now=1030)
    assert not HelperTokens(lifetime=60).check(token, "zzz.i2p", B32, url, now=1030)
    assert tokens.check(token, "zzz.i2p", B32, url, now=1030)
    assert not tokens.check(token, "zzz.i2p", B32, url, now=1031)  # used once already


@pytest.mark.parametrize("token", ["¹.abc", "¹²³." + "a" * 40, "1000." + "é" * 40, "1000.x", "."])
def test_helper_token_check_takes_any_text_without_raising(token):
    assert not HelperTokens().check(token, "zzz.i2p", B32, "http://zzz.i2p/", now=1030)


# -- proxy auth ----------------------------------------------------------------------------


def test_basic_credentials_are_decoded_and_checked():
    value = b"Basic " + base64.b64encode(b"alice:se:cret")
    assert basic_credentials(value) == ("alice", "se:cret")
    assert basic_credentials(b"Bearer abc") is None
    assert basic_credentials(b"Basic !!!") is None
    users = {"alice": "se:cret"}
    assert credentials_ok(users, "alice", "se:cret")
    assert not credentials_ok(users, "alice", "nope")
    assert not credentials_ok(users, "bob", "se:cret")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.text(max_size=100), st.sampled_from(["GET", "CONNECT", "OPTIONS"]))
def test_fuzz_request_targets_parse_or_raise_http_error(target, host, method):
    try:
        t = parse_request_target(method, target, host or None)
    except HttpError as exc:
        assert 400 <= exc.status < 600
    else:
        classify_host(t.host)


def test_jump_links_append_the_name_after_a_question_mark_when_needed():
    from i2proxy.proxy.pages import jump_link

    assert jump_link("http://a.i2p/jump/", "x.i2p") == "http://a.i2p/jump/x.i2p"
    assert jump_link("http://a.i2p/j.cgi?a=", "x.i2p") == "http://a.i2p/j.cgi?a=x.i2p"
    assert jump_link("http://a.i2p/search", "x.i2p") == "http://a.i2p/search?x.i2p"


def test_upgrade_request_keeps_only_the_upgrade_pair_of_hop_by_hop_headers():
    headers = [
        (b"Connection", b"keep-alive, Upgrade"),
        (b"Upgrade", b"websocket"),
        (b"Keep-Alive", b"5"),
        (b"Sec-WebSocket-Key", b"abc"),
    ]
    out = filter_request_headers(headers, origin=Origin("http", "zzz.i2p", 80), b32_host=B32)
    assert out[-2:] == [(b"connection", b"upgrade"), (b"upgrade", b"websocket")]
    assert (b"sec-websocket-key", b"abc") in out
    assert b"keep-alive" not in dict(out)
    plain = filter_request_headers(
        [(b"Upgrade", b"h2c")], origin=Origin("http", "zzz.i2p", 80), b32_host=B32
    )
    assert b"upgrade" not in dict(plain)  # Upgrade without Connection: upgrade is not a request
