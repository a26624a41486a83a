"""SAM dialer pieces without a router: targets, error mapping, backoff, router URLs, probes."""

from __future__ import annotations

import base64
import struct

import pytest

from i2proxy.dialer import base
from i2proxy.dialer.sam import dial_error, lease_set_not_found_reply, sam_destination
from i2proxy.dialer.select import (
    I2CP_GET_DATE,
    RouterURL,
    i2cp_probe_request,
    make_dialer,
    parse_i2cp_set_date,
    parse_router_url,
)
from i2proxy.sam import protocol
from i2proxy.sam.client import Backoff, RouterFlavour, SAMUnavailable, guess_flavour

B32 = "a" * 52 + ".b32.i2p"


def i2p_b64(data: bytes) -> str:
    return base64.b64encode(data).decode().replace("+", "-").replace("/", "~")


def test_b32_names_pass_lowercased() -> None:
    assert sam_destination(B32.upper()) == B32


def test_b33_names_pass() -> None:
    assert sam_destination("b" * 56 + ".b32.i2p") == "b" * 56 + ".b32.i2p"


def test_base64_destination_passes() -> None:
    dest = i2p_b64(bytes(384) + b"\x05\x00\x04\x00\x07\x00\x00")
    assert sam_destination(dest) == dest


@pytest.mark.parametrize(
    "target",
    ["", "example.i2p", "a" * 51 + ".b32.i2p", "garbage!", "AAAA", "A" * 600 + " x", "A" * 5000],
)
def test_other_targets_are_invalid_without_asking_the_router(target: str) -> None:
    with pytest.raises(base.InvalidTarget):
        sam_destination(target)


def test_destination_objects_use_their_base64() -> None:
    class FakeDestination:
        def to_base64(self) -> str:
            return "dest-b64"

    assert sam_destination(FakeDestination()) == "dest-b64"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (protocol.CantReachPeer("CANT_REACH_PEER"), base.PeerUnreachable),
        (protocol.PeerNotFound("PEER_NOT_FOUND"), base.PeerUnreachable),
        (protocol.LeaseSetNotFound("LEASESET_NOT_FOUND"), base.PeerUnreachable),
        (protocol.SAMTimeout("TIMEOUT"), base.DialTimeout),
        (TimeoutError(), base.DialTimeout),
        (protocol.InvalidKey("INVALID_KEY"), base.InvalidTarget),
        (protocol.InvalidId("INVALID_ID"), base.RouterUnavailable),
        (protocol.I2PError("I2P_ERROR", "boom"), base.DialError),
        (protocol.DuplicatedId("DUPLICATED_ID"), base.DialError),
        (SAMUnavailable("down"), base.RouterUnavailable),
        (protocol.SAMProtocolError("junk"), base.DialError),
    ],
)
def test_sam_failures_map_to_dial_errors(error: Exception, expected: type) -> None:
    mapped = dial_error(error)
    assert type(mapped) is expected


def test_a_lease_set_lookup_failure_is_unreachable_not_a_bad_destination() -> None:
    """Java I2P 2.7's SAM: STREAM STATUS RESULT=INVALID_KEY MESSAGE="Lease set not found: …"."""
    b32 = "a" * 52 + ".b32.i2p"
    java = protocol.parse_reply(
        f'STREAM STATUS RESULT=INVALID_KEY MESSAGE="Lease set not found: {b32}"\n'
    )
    with pytest.raises(protocol.InvalidKey) as info:
        java.raise_for_result()
    assert type(dial_error(info.value)) is base.PeerUnreachable
    assert type(dial_error(info.value, "B" * 516)) is base.PeerUnreachable
    # A b32 name passed our syntax check: whatever the message, INVALID_KEY means "not found".
    bare = protocol.InvalidKey("INVALID_KEY")
    assert type(dial_error(bare, b32)) is base.PeerUnreachable
    assert type(dial_error(bare, "B" * 516)) is base.InvalidTarget


def test_backoff_doubles_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(initial=0.5, maximum=3.0)
    assert [backoff.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_flavour_guess_from_version() -> None:
    assert guess_flavour((3, 1)) is RouterFlavour.I2PD
    assert guess_flavour((3, 3)) is RouterFlavour.UNKNOWN


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        ("sam://127.0.0.1:7656", RouterURL("sam", "127.0.0.1", 7656)),
        ("sam://127.0.0.1", RouterURL("sam", "127.0.0.1", 7656)),
        ("i2cp://127.0.0.1", RouterURL("i2cp", "127.0.0.1", 7654)),
        ("I2CP://[::1]:17654/", RouterURL("i2cp", "::1", 17654)),
        ("sam://router.lan:7000", RouterURL("sam", "router.lan", 7000)),
    ],
)
def test_router_urls_parse(url: str, parsed: RouterURL) -> None:
    assert parse_router_url(url) == parsed


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:4444", "sam://", "sam://h:99999", "sam://h:0", "sam://h:1/x", "sam://u@h"],
)
def test_bad_router_urls_say_why(url: str) -> None:
    with pytest.raises(ValueError, match="router URL"):
        parse_router_url(url)


def test_router_url_round_trips_through_str() -> None:
    for text in ("sam://127.0.0.1:7656", "i2cp://[::1]:7654"):
        assert str(parse_router_url(text)) == text


def test_make_dialer_with_sam_url_gives_a_sam_dialer() -> None:
    dialer = make_dialer("sam://127.0.0.1:17656", options={"inbound.length": "0"})
    assert isinstance(dialer, base.Dialer)
    assert dialer.backend == "sam"  # type: ignore[attr-defined]
    assert dialer.client.port == 17656  # type: ignore[attr-defined]
    assert dialer.client.options["inbound.length"] == "0"  # type: ignore[attr-defined]
    assert dialer.client.options["i2cp.leaseSetEncType"] == "4,0"  # type: ignore[attr-defined]


def test_make_dialer_without_url_auto_detects() -> None:
    dialer = make_dialer(None)
    assert isinstance(dialer, base.Dialer)
    assert dialer.backend is None  # type: ignore[attr-defined]


def test_i2cp_probe_is_protocol_byte_then_get_date() -> None:
    data = i2cp_probe_request("0.9.62")
    assert data[0] == 0x2A
    length, msg_type = struct.unpack(">IB", data[1:6])
    assert msg_type == I2CP_GET_DATE
    assert data[6:] == b"\x060.9.62" and length == 7


def test_set_date_parses_and_other_types_are_refused() -> None:
    payload = struct.pack(">Q", 1_700_000_000_000) + b"\x060.9.57"
    assert parse_i2cp_set_date(33, payload) == (1_700_000_000_000, "0.9.57")
    with pytest.raises(ValueError):
        parse_i2cp_set_date(30, payload)
    with pytest.raises(ValueError):
        parse_i2cp_set_date(33, b"\x00" * 4)
    with pytest.raises(ValueError):
        parse_i2cp_set_date(33, payload[:-2])


def test_make_dialer_loads_or_creates_a_key_file(tmp_path) -> None:
    from i2proxy.i2p.keyfile import read_key_file

    path = tmp_path / "client.keys"
    first = make_dialer("sam://127.0.0.1:17656", keys=str(path))
    assert path.exists() and (path.stat().st_mode & 0o777) == 0o600
    keys = read_key_file(path)
    assert first.client._private_key == keys.to_sam_base64()  # type: ignore[attr-defined]
    second = make_dialer("sam://127.0.0.1:17656", keys=path)
    assert second.client._private_key == keys.to_sam_base64()  # type: ignore[attr-defined]


def test_make_dialer_refuses_other_key_types() -> None:
    with pytest.raises(TypeError):
        make_dialer("sam://127.0.0.1:17656", keys=42)


def test_the_replies_a_young_session_looks_up_again_are_the_lease_set_not_found_ones() -> None:
    """i2pd's CANT_REACH_PEER and Java's INVALID_KEY "Lease set not found" are retried while
    young (dialer/young.py); a malformed key is not a lookup result."""
    assert lease_set_not_found_reply(protocol.CantReachPeer("CANT_REACH_PEER"), B32)
    java = protocol.InvalidKey("INVALID_KEY", message="Lease set not found: abc")
    assert lease_set_not_found_reply(java, "A" * 516)
    assert lease_set_not_found_reply(protocol.InvalidKey("INVALID_KEY"), B32)
    assert not lease_set_not_found_reply(protocol.InvalidKey("INVALID_KEY"), "A" * 516)
    assert not lease_set_not_found_reply(protocol.SAMTimeout("TIMEOUT"), B32)
