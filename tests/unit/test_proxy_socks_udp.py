"""SOCKS5 UDP ASSOCIATE: the RFC 1928 §7 datagram header and the relay's admission rules."""

from __future__ import annotations

import asyncio

import pytest

from i2proxy.dialer.datagrams import MAX_PAYLOAD
from i2proxy.proxy.socks_udp import (
    FragmentDropped,
    UdpAssociations,
    UdpHeaderError,
    UdpRequest,
    _Relay,
    build_udp_reply,
    parse_udp_request,
)

B32 = "a" * 52 + ".b32.i2p"


def header(host: bytes, port: int, atyp: int = 3, frag: int = 0) -> bytes:
    addr = bytes([len(host)]) + host if atyp == 3 else host
    return bytes([0, 0, frag, atyp]) + addr + port.to_bytes(2, "big")


def test_domain_request_names_host_port_and_payload():
    request = parse_udp_request(header(B32.encode(), 53) + b"query")
    assert request == UdpRequest(B32, 53, False, b"query")


def test_ipv4_and_ipv6_requests_are_marked_as_ip_targets():
    assert parse_udp_request(header(bytes([10, 0, 0, 1]), 53, 1)).is_ip
    v6 = parse_udp_request(header(bytes(15) + b"\x01", 53, 4) + b"x")
    assert (v6.host, v6.is_ip, v6.payload) == ("::1", True, b"x")


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00\x00\x00", header(b"x.i2p", 1, atyp=9), header(b"", 1), b"\x00\x00\x00\x03\x09ab"],
)
def test_malformed_headers_are_rejected(data):
    with pytest.raises(UdpHeaderError):
        parse_udp_request(data)


def test_fragments_are_dropped():
    with pytest.raises(FragmentDropped):
        parse_udp_request(header(B32.encode(), 53, frag=1) + b"part")


def test_reply_header_carries_the_sender_name_and_port():
    reply = build_udp_reply(B32, 8007, b"pong")
    assert reply == b"\x00\x00\x00\x03\x3c" + B32.encode() + b"\x1f\x47pong"
    assert parse_udp_request(reply) == UdpRequest(B32, 8007, False, b"pong")


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))


async def test_relay_admits_only_the_clients_address_and_first_port():
    queue: asyncio.Queue[UdpRequest] = asyncio.Queue(10)
    relay = _Relay("127.0.0.1", 0, queue)
    relay.connection_made(FakeTransport())  # type: ignore[arg-type]
    good = header(B32.encode(), 53) + b"q"
    relay.datagram_received(good, ("127.0.0.2", 5000))  # another host
    relay.datagram_received(good, ("127.0.0.1", 5000))  # the client: its port is now fixed
    relay.datagram_received(good, ("127.0.0.1", 5001))
    relay.datagram_received(good, ("::ffff:127.0.0.1", 5000))  # same client, mapped form
    assert queue.qsize() == 2 and relay.counters.dropped == 2
    relay.send_to_client(b"reply")
    assert relay.transport.sent == [(b"reply", ("127.0.0.1", 5000))]  # type: ignore[union-attr]


async def test_relay_honours_the_announced_port_and_drops_ip_oversized_and_fragments():
    queue: asyncio.Queue[UdpRequest] = asyncio.Queue(10)
    relay = _Relay("127.0.0.1", 6000, queue)
    relay.connection_made(FakeTransport())  # type: ignore[arg-type]
    relay.datagram_received(header(B32.encode(), 1) + b"x", ("127.0.0.1", 5000))
    relay.datagram_received(header(bytes([1, 1, 1, 1]), 53, 1) + b"x", ("127.0.0.1", 6000))
    relay.datagram_received(header(B32.encode(), 1, frag=2) + b"x", ("127.0.0.1", 6000))
    relay.datagram_received(header(B32.encode(), 1) + bytes(MAX_PAYLOAD + 1), ("127.0.0.1", 6000))
    relay.datagram_received(header(B32.encode(), 1) + bytes(MAX_PAYLOAD), ("127.0.0.1", 6000))
    assert queue.qsize() == 1 and relay.counters.dropped == 4


def test_associations_are_bounded_per_client_address():
    associations = UdpAssociations(per_client=2)
    assert associations.acquire("a") and associations.acquire("a")
    assert not associations.acquire("a")
    assert associations.acquire("b")
    associations.release("a")
    assert associations.acquire("a")
    assert associations.active() == 3
