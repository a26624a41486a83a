"""Datagram endpoints: port allocation, dispatch, raw-reply attribution, bounds, close."""

from __future__ import annotations

import asyncio

import pytest

from i2proxy.dialer.base import DialError
from i2proxy.dialer.datagrams import (
    MAX_PAYLOAD,
    DatagramTooLarge,
    EndpointClosed,
    EndpointTable,
)

PEER = "a" * 52 + ".b32.i2p"


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[object, bytes, int, int]] = []

    async def __call__(self, target, data, port, local_port) -> str:
        self.sent.append((target, data, port, local_port))
        return PEER


async def test_send_goes_out_from_the_endpoints_own_local_port():
    table, send = EndpointTable(), Recorder()
    one, two = table.open(send), table.open(send)
    assert one.local_port != two.local_port
    await one.send(PEER, b"x", 53)
    assert send.sent == [(PEER, b"x", 53, one.local_port)]


async def test_replies_reach_the_endpoint_of_their_destination_port_only():
    table, send = EndpointTable(), Recorder()
    one, two = table.open(send), table.open(send)
    table.dispatch(two.local_port, b"reply", PEER, 53, True)
    table.dispatch(12, b"nobody", PEER, 53, True)
    got = await asyncio.wait_for(two.receive(), 1)
    assert (got.payload, got.sender, got.src_port, got.authenticated) == (b"reply", PEER, 53, True)
    assert one.stats.received == 0 and table.no_endpoint == 1


async def test_raw_reply_is_attributed_to_the_peer_last_sent_to_on_that_port_else_dropped():
    table, send = EndpointTable(), Recorder()
    endpoint = table.open(send)
    endpoint.deliver(b"early", None, 53, False)  # nothing sent yet: whose is it?
    assert endpoint.stats.unattributed == 1
    await endpoint.send(PEER, b"q", 53)
    endpoint.deliver(b"raw", None, 53, False)
    endpoint.deliver(b"other port", None, 54, False)
    got = await asyncio.wait_for(endpoint.receive(), 1)
    assert (got.payload, got.sender, got.authenticated) == (b"raw", PEER, False)
    assert endpoint.stats.unattributed == 2


async def test_oversized_payload_is_refused_before_the_backend():
    table, send = EndpointTable(), Recorder()
    endpoint = table.open(send)
    with pytest.raises(DatagramTooLarge):
        await endpoint.send(PEER, b"\0" * (MAX_PAYLOAD + 1))
    assert send.sent == []


async def test_a_full_queue_drops_and_counts():
    table = EndpointTable()
    endpoint = table.open(Recorder())
    for i in range(600):
        endpoint.deliver(bytes([i % 256]), PEER, 1, True)
    assert endpoint.stats.received == 512 and endpoint.stats.queue_full == 88


async def test_close_wakes_a_waiting_receive_frees_the_port_and_refuses_sends():
    table = EndpointTable()
    endpoint = table.open(Recorder(), local_port=4000)
    waiter = asyncio.create_task(endpoint.receive())
    await asyncio.sleep(0)
    endpoint.close()
    with pytest.raises(EndpointClosed):
        await asyncio.wait_for(waiter, 1)
    with pytest.raises(EndpointClosed):
        await endpoint.send(PEER, b"x")
    assert table.get(4000) is None
    assert table.open(Recorder(), local_port=4000).local_port == 4000


def test_a_taken_local_port_is_refused():
    table = EndpointTable()
    table.open(Recorder(), local_port=5000)
    with pytest.raises(DialError):
        table.open(Recorder(), local_port=5000)


async def test_a_reply_without_ports_gets_the_port_we_last_sent_its_sender_to():
    table, send = EndpointTable(), Recorder()
    endpoint = table.open(send)
    await endpoint.send(PEER, b"q", 8008)
    endpoint.deliver(b"a", PEER, None, True)  # i2pd 2.45.1's SAM reports no ports
    endpoint.deliver(b"b", "b" * 52 + ".b32.i2p", None, True)  # a peer we never wrote to
    first, second = endpoint._queue.get_nowait(), endpoint._queue.get_nowait()
    assert (first.src_port, second.src_port) == (8008, 0)
