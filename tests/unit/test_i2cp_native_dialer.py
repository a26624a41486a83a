"""NativeDialer behaviour that needs no router: target parsing, option split, router down, and
when a lookup's "not found" is asked again (the router's HostLookup answers are given)."""

from __future__ import annotations

import time

import pytest

from i2proxy.dialer.base import (
    DestinationOffline,
    Dialer,
    InvalidTarget,
    PeerUnreachable,
    RouterUnavailable,
)
from i2proxy.dialer.native import NativeDialer, split_options
from i2proxy.dialer.young import YoungDestinationRetry
from i2proxy.i2p.keys import PrivateKeys
from i2proxy.streaming.delivery import SYN_LOOKUP_BUDGET


@pytest.fixture(scope="module")
def keys() -> PrivateKeys:
    return PrivateKeys.generate()


def test_is_a_dialer(keys):
    assert isinstance(NativeDialer(keys=keys), Dialer)


def test_streaming_options_are_split_from_session_options():
    session, streaming = split_options(
        {"inbound.length": "1", "i2p.streaming.connectDelay": "0", "i2proxy.streaming.preAck": "1"}
    )
    assert session == {
        "inbound.length": "1",
        "i2cp.leaseSetEncType": "4,0",
        "i2cp.fastReceive": "true",
    }
    assert streaming == {"i2p.streaming.connectDelay": "0", "i2proxy.streaming.preAck": "1"}


def test_java_session_defaults_are_sent_and_the_caller_overrides_them(keys):
    dialer = NativeDialer(keys=keys, options={"i2cp.fastReceive": "false", "outbound.length": "2"})
    assert dialer.client.options == {
        "i2cp.leaseSetEncType": "4,0",
        "i2cp.fastReceive": "false",
        "outbound.length": "2",
    }


async def test_malformed_b32_names_are_invalid_targets(keys):
    dialer = NativeDialer(keys=keys)
    for bad in ("short.b32.i2p", "a" * 53 + ".b32.i2p", "1" * 52 + ".b32.i2p"):
        with pytest.raises(InvalidTarget):
            await dialer.resolve(bad)


async def test_resolve_accepts_destination_and_base64_and_rejects_garbage(keys):
    dialer = NativeDialer(keys=keys)
    other = PrivateKeys.generate().destination
    assert await dialer.resolve(other) is other
    assert await dialer.resolve(other.to_base64()) == other
    for bad in ("example.com", "not base64 at all", "x" * 600, "demo.i2p", 42):
        with pytest.raises(InvalidTarget):
            await dialer.resolve(bad)  # type: ignore[arg-type]


async def test_open_stream_without_router_fails_at_once_with_router_unavailable(keys):
    dialer = NativeDialer("127.0.0.1", 1, keys=keys)
    with pytest.raises(RouterUnavailable):
        await dialer.open_stream(PrivateKeys.generate().destination, 80, b"GET / HTTP/1.0\r\n\r\n")


async def test_start_against_a_closed_port_reports_router_unavailable(keys):
    dialer = NativeDialer("127.0.0.1", 1, keys=keys, start_timeout=1.0)
    with pytest.raises(RouterUnavailable):
        await dialer.start()
    await dialer.close()


def test_both_backends_take_the_destination_of_a_key_file_of_any_format(tmp_path, keys):
    from i2proxy.dialer.select import make_dialer

    for name, data in (("k.dat", keys.to_binary()), ("k.txt", keys.to_sam_base64().encode())):
        (tmp_path / name).write_bytes(data)
        native = make_dialer("i2cp://127.0.0.1:1", keys=tmp_path / name)
        assert native.destination == keys.destination
        sam = make_dialer("sam://127.0.0.1:1", keys=str(tmp_path / name))
        assert sam.client._private_key == keys.to_sam_base64()


def test_data_dir_holds_the_persistent_destination(tmp_path):
    first = NativeDialer.from_data_dir(tmp_path / "data")
    assert (tmp_path / "data" / "client-destination.keys").exists()
    assert NativeDialer.from_data_dir(tmp_path / "data").destination == first.destination


async def test_b33_names_are_resolved_by_the_router_by_name_and_cached(keys):
    """Java resolves a b33 through HostLookup by name; i2pd answers "not found" for every b33."""
    dialer = NativeDialer(keys=keys)
    b33 = "c" * 56 + ".b32.i2p"
    asked: list[dict] = []
    answer = {"value": keys.destination.to_bytes()}

    async def lookup(**kwargs):
        asked.append(kwargs)
        return answer["value"]

    dialer.client.lookup = lookup  # type: ignore[method-assign]
    assert await dialer.resolve(b33.upper()) == keys.destination
    assert await dialer.resolve(b33) == keys.destination
    assert [a["name"] for a in asked] == [b33]  # by name, once: the second came from the cache
    answer["value"] = None
    with pytest.raises(PeerUnreachable, match="i2pd cannot resolve b33"):
        await dialer.resolve("e" * 56 + ".b32.i2p")
    with pytest.raises(InvalidTarget):
        await dialer.resolve("1" * 56 + ".b32.i2p")  # not base32


def _lookups_answering(dialer: NativeDialer, answers: list[bytes | None]) -> list[dict]:
    """Make the router's HostLookup answer ``answers`` in turn (the last one repeats)."""
    asked: list[dict] = []

    async def lookup(**kwargs):
        asked.append(kwargs)
        return answers[min(len(asked), len(answers)) - 1]

    dialer.client.lookup = lookup  # type: ignore[method-assign]
    return asked


#: The native rule with pauses short enough for a unit test (same shape: 3 pauses, a budget).
QUICK = YoungDestinationRetry(
    delays=(0.05, 0.1, 0.2), retry_window=0.4, verdict_time=0.65, min_lookup=0.1
)


async def test_a_young_destination_looks_a_not_found_site_up_again_and_finds_it(keys):
    """The false "offline" of a fresh destination: its first lookup found nothing, a retry does."""
    dialer = NativeDialer(keys=keys, young_retry=QUICK)
    site = PrivateKeys.generate().destination
    asked = _lookups_answering(dialer, [None, None, site.to_bytes()])
    dialer.client.ready_at = time.monotonic() - 3.0  # session ready 3 s ago
    assert await dialer.resolve(site.b32) == site
    assert len(asked) == 3
    assert all(a["hash"] == site.hash for a in asked)
    assert (dialer.young_lookup_retries, dialer.young_lookups_rescued) == (2, 1)


async def test_an_old_destination_calls_a_not_found_site_offline_after_one_lookup(keys):
    dialer = NativeDialer(keys=keys, young_retry=QUICK)
    site = PrivateKeys.generate().destination
    asked = _lookups_answering(dialer, [None, site.to_bytes()])
    dialer.client.ready_at = time.monotonic() - QUICK.young_for - 1.0
    with pytest.raises(DestinationOffline):
        await dialer.resolve(site.b32)
    assert len(asked) == 1


async def test_a_young_destination_calls_a_truly_absent_site_offline_within_the_budget(keys):
    dialer = NativeDialer(keys=keys, young_retry=QUICK)
    site = PrivateKeys.generate().destination
    asked = _lookups_answering(dialer, [None])
    dialer.client.ready_at = time.monotonic()
    started = time.monotonic()
    with pytest.raises(DestinationOffline):
        await dialer.resolve(site.b32)
    # at 0, 0.05, 0.15 and 0.35 s (a slow event loop may push the last past the 0.4 s window)
    assert 3 <= len(asked) <= 4
    assert time.monotonic() - started < 2.0
    # each retry's lookup must end by the verdict time, 0.65 s after the first began
    assert all(a["timeout"] <= QUICK.verdict_time - 0.05 for a in asked[1:])


async def test_the_lookup_after_no_leaseset_follows_the_same_rule(keys):
    """The streaming manager's lookup after MessageStatus 21 (or beside a first SYN) is the
    dialer's: a young destination asks again, and the SYN's verdict waits for it."""
    dialer = NativeDialer(keys=keys, young_retry=QUICK)
    site = PrivateKeys.generate().destination
    asked = _lookups_answering(dialer, [None, site.to_bytes()])
    dialer.client.ready_at = time.monotonic()
    assert await dialer._lookup_again(site) is True
    assert len(asked) == 2
    assert asked[0]["timeout"] <= SYN_LOOKUP_BUDGET
    asked = _lookups_answering(dialer, [None])
    dialer.client.ready_at = None  # no session: nothing young to wait for
    assert await dialer._lookup_again(site) is False
    assert len(asked) == 1


async def test_retries_stay_within_the_callers_timeout(keys):
    rule = YoungDestinationRetry(
        delays=(0.05,), retry_window=None, verdict_time=None, min_lookup=0.05
    )
    dialer = NativeDialer(keys=keys, young_retry=rule)
    site = PrivateKeys.generate().destination
    asked = _lookups_answering(dialer, [None])
    dialer.client.ready_at = time.monotonic()
    started = time.monotonic()
    with pytest.raises(DestinationOffline):
        await dialer._lookup_b32(site.b32, timeout=0.3)
    assert time.monotonic() - started < 0.3
    assert len(asked) >= 2
    # every retry started with room for a lookup (min_lookup) left of the caller's timeout
    assert all(a["timeout"] >= rule.min_lookup - 0.01 for a in asked)


async def test_only_a_fresh_session_waits_for_its_leaseset_before_a_dial(keys):
    """The wait for our first published LeaseSet (an outbound tunnel) counts from the session's
    start: a session older than ``send_ready_wait`` whose self-lookups still fail dials at once."""
    dialer = NativeDialer(keys=keys, send_ready_wait=0.5)
    dialer.client._ready.set()  # a session, its LeaseSet never found by our lookups
    assert not dialer.client.published.is_set()
    dialer.client.ready_at = time.monotonic() - 0.3
    started = time.monotonic()
    await dialer._require_router()
    assert 0.15 <= time.monotonic() - started < 0.45  # the 0.2 s left of the 0.5 s
    dialer.client.ready_at = time.monotonic() - 5.0
    started = time.monotonic()
    await dialer._require_router()
    assert time.monotonic() - started < 0.05
    assert dialer.send_ready_left() == 0.0
    dialer.client.ready_at = None  # no session yet: the whole wait
    assert dialer.send_ready_left() == 0.5
