"""The SOCKS4/4a/5 handshake state machine, clause by clause (RFC 1928, RFC 1929, SOCKS4a)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from i2proxy.proxy.socks import (
    MAX_HANDSHAKE_BYTES,
    AddressType,
    ConnectRequested,
    CredentialsReceived,
    HandshakeFailed,
    Reply,
    SocksHandshake,
    SocksProtocolError,
    UdpAssociateRequested,
)

B32 = "a" * 52 + ".b32.i2p"


def socks5_connect_domain(host: str, port: int) -> bytes:
    raw = host.encode()
    return bytes([5, 1, 0, 3, len(raw)]) + raw + struct.pack(">H", port)


def test_socks5_no_auth_connect_domain_yields_request_and_trailing_data():
    hs = SocksHandshake()
    assert hs.receive_data(b"\x05\x01\x00") == []
    assert hs.data_to_send() == b"\x05\x00"
    events = hs.receive_data(socks5_connect_domain(B32, 80) + b"GET / HTTP/1.0\r\n")
    assert events == [ConnectRequested(5, B32, 80, AddressType.DOMAIN)]
    assert hs.trailing_data == b"GET / HTTP/1.0\r\n"
    assert hs.reply_success() == b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00"


def test_socks5_handshake_split_into_single_bytes_still_parses():
    hs = SocksHandshake()
    data = b"\x05\x01\x00" + socks5_connect_domain("zzz.i2p", 443)
    events = []
    for byte in data:
        events += hs.receive_data(bytes([byte]))
    assert events == [ConnectRequested(5, "zzz.i2p", 443, AddressType.DOMAIN)]


def test_socks5_ipv4_and_ipv6_targets_are_reported_with_their_type():
    hs = SocksHandshake()
    hs.receive_data(b"\x05\x01\x00")
    (event,) = hs.receive_data(b"\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50")
    assert event == ConnectRequested(5, "127.0.0.1", 80, AddressType.IPV4)
    assert hs.reply_failure(Reply.ADDRESS_TYPE_NOT_SUPPORTED)[:2] == b"\x05\x08"
    hs = SocksHandshake()
    hs.receive_data(b"\x05\x01\x00")
    (event,) = hs.receive_data(b"\x05\x01\x00\x04" + b"\0" * 15 + b"\x01\x00\x50")
    assert event == ConnectRequested(5, "::1", 80, AddressType.IPV6)


@pytest.mark.parametrize(("command", "name"), [(2, "BIND"), (9, "command")])
def test_socks5_bind_and_unknown_commands_get_command_not_supported(command, name):
    hs = SocksHandshake()
    hs.receive_data(b"\x05\x01\x00")
    hs.data_to_send()
    (event,) = hs.receive_data(bytes([5, command, 0, 3, 7]) + b"zzz.i2p\x00\x50")
    assert isinstance(event, HandshakeFailed)
    assert name in event.reason
    assert hs.data_to_send() == b"\x05\x07\x00\x01\x00\x00\x00\x00\x00\x00"


def test_socks5_udp_associate_reports_the_client_hint_and_replies_with_the_relay_address():
    hs = SocksHandshake()
    hs.receive_data(b"\x05\x01\x00")
    hs.data_to_send()
    # PySocks sends its UDP port with the "host" 0 as a domain name.
    (event,) = hs.receive_data(b"\x05\x03\x00\x03\x010\x9c\x40")
    assert event == UdpAssociateRequested("0", 40000, AddressType.DOMAIN)
    assert hs.reply_success(("127.0.0.1", 1080)) == b"\x05\x00\x00\x01\x7f\x00\x00\x01\x04\x38"
    hs = SocksHandshake()
    hs.receive_data(b"\x05\x01\x00\x05\x03\x00\x04" + bytes(16) + b"\x00\x00")
    assert hs.reply_success(("::1", 2)) == b"\x05\x00\x00\x04" + bytes(15) + b"\x01\x00\x02"


def test_socks5_unknown_address_type_gets_address_type_not_supported():
    hs = SocksHandshake()
    hs.receive_data(b"\x05\x01\x00")
    hs.data_to_send()
    (event,) = hs.receive_data(b"\x05\x01\x00\x09")
    assert isinstance(event, HandshakeFailed)
    assert hs.data_to_send()[:2] == b"\x05\x08"


def test_socks5_client_without_acceptable_method_gets_ff():
    hs = SocksHandshake(require_auth=True)
    (event,) = hs.receive_data(b"\x05\x01\x00")
    assert isinstance(event, HandshakeFailed)
    assert hs.data_to_send() == b"\x05\xff"


def test_rfc1929_good_credentials_continue_to_the_request():
    hs = SocksHandshake(require_auth=True)
    hs.receive_data(b"\x05\x02\x00\x02")
    assert hs.data_to_send() == b"\x05\x02"
    pipelined = b"\x01\x05alice\x06secret" + socks5_connect_domain("zzz.i2p", 80)
    assert hs.receive_data(pipelined) == [CredentialsReceived("alice", "secret")]
    events = hs.accept_credentials(True)
    assert hs.data_to_send() == b"\x01\x00"
    assert events == [ConnectRequested(5, "zzz.i2p", 80, AddressType.DOMAIN)]


def test_rfc1929_wrong_credentials_get_status_1_and_fail():
    hs = SocksHandshake(require_auth=True)
    hs.receive_data(b"\x05\x01\x02")
    hs.data_to_send()
    hs.receive_data(b"\x01\x05alice\x05wrong")
    (event,) = hs.accept_credentials(False)
    assert isinstance(event, HandshakeFailed)
    assert hs.data_to_send() == b"\x01\x01"
    assert hs.failed


def test_socks4a_hostname_request():
    hs = SocksHandshake()
    data = b"\x04\x01\x00\x50\x00\x00\x00\x01user\x00" + B32.encode() + b"\x00"
    (event,) = hs.receive_data(data)
    assert event == ConnectRequested(4, B32, 80, AddressType.DOMAIN, "user")
    assert hs.reply_success() == b"\x00\x5a\x00\x00\x00\x00\x00\x00"


def test_socks4_plain_ip_request_is_reported_as_ipv4_and_rejected_with_91():
    hs = SocksHandshake()
    (event,) = hs.receive_data(b"\x04\x01\x00\x50\x0a\x00\x00\x01\x00")
    assert event.address_type is AddressType.IPV4
    assert hs.reply_failure(Reply.ADDRESS_TYPE_NOT_SUPPORTED) == b"\x00\x5b" + b"\0" * 6


def test_socks4_is_refused_when_authentication_is_required():
    hs = SocksHandshake(require_auth=True)
    (event,) = hs.receive_data(b"\x04\x01\x00\x50\x00\x00\x00\x01\x00zzz.i2p\x00")
    assert isinstance(event, HandshakeFailed)
    assert hs.data_to_send() == b"\x00\x5b" + b"\0" * 6


def test_socks4_bind_is_rejected():
    hs = SocksHandshake()
    (event,) = hs.receive_data(b"\x04\x02\x00\x50\x00\x00\x00\x01\x00zzz.i2p\x00")
    assert isinstance(event, HandshakeFailed)
    assert hs.data_to_send() == b"\x00\x5b" + b"\0" * 6


def test_endless_socks4_user_id_is_cut_off():
    hs = SocksHandshake()
    events = hs.receive_data(b"\x04\x01\x00\x50\x00\x00\x00\x01" + b"u" * 300)
    assert isinstance(events[-1], HandshakeFailed)
    assert hs.data_to_send() == b"\x00\x5b" + b"\0" * 6


def test_not_socks_at_all_closes_without_reply():
    hs = SocksHandshake()
    (event,) = hs.receive_data(b"GET / HTTP/1.1\r\n")
    assert isinstance(event, HandshakeFailed)
    assert hs.data_to_send() == b""


def test_replying_before_a_request_is_a_programming_error():
    with pytest.raises(SocksProtocolError):
        SocksHandshake().reply_success()


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8), st.booleans())
def test_fuzz_any_bytes_give_events_or_a_clean_failure_never_an_exception(chunks, auth):
    hs = SocksHandshake(require_auth=auth)
    for chunk in chunks:
        events = hs.receive_data(chunk)
        hs.data_to_send()
        for event in events:
            if isinstance(event, CredentialsReceived):
                events += hs.accept_credentials(False)
            if isinstance(event, ConnectRequested):
                reply = hs.reply_failure(Reply.NOT_ALLOWED)
                assert len(reply) in (8, 10)
                return
        if hs.failed:
            return
    assert len(hs._buffer) <= MAX_HANDSHAKE_BYTES + 300


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-", min_size=1, max_size=255),
    st.integers(0, 65535),
    st.integers(1, 50),
)
def test_fuzz_valid_socks5_requests_round_trip_in_any_split(host, port, split):
    data = b"\x05\x01\x00" + socks5_connect_domain(host, port)
    hs = SocksHandshake()
    events = []
    for i in range(0, len(data), split):
        events += hs.receive_data(data[i : i + split])
    assert events == [ConnectRequested(5, host, port, AddressType.DOMAIN)]


def test_without_required_auth_a_client_offering_only_user_pass_is_still_served():
    hs = SocksHandshake(require_auth=False)
    hs.receive_data(b"\x05\x01\x02")
    assert hs.data_to_send() == b"\x05\x02"
    assert hs.receive_data(b"\x01\x01u\x01p") == [CredentialsReceived("u", "p")]
    hs.accept_credentials(True)
    assert hs.data_to_send() == b"\x01\x00"
    hs = SocksHandshake(require_auth=False)
    hs.receive_data(b"\x05\x02\x00\x02")
    assert hs.data_to_send() == b"\x05\x00"  # no-auth preferred when offered


def test_socks5_with_prefer_credentials_picks_user_password_when_offered_beside_no_auth():
    hs = SocksHandshake(prefer_credentials=True)
    assert hs.receive_data(b"\x05\x02\x00\x02") == []
    assert hs.data_to_send() == b"\x05\x02"
    (event,) = hs.receive_data(b"\x01\x01u\x01p")
    assert event == CredentialsReceived("u", "p")
    plain = SocksHandshake()
    plain.receive_data(b"\x05\x02\x00\x02")
    assert plain.data_to_send() == b"\x05\x00"
