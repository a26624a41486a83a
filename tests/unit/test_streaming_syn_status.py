"""The router's delivery report for our SYN decides early failure (``streaming/delivery.py``).

Clauses:
- only the SYN of an outgoing stream is sent with a nonce; every other packet without;
- a hard failure status fails the dial at once (no RESET: the peer never heard of us);
- our own lookup past every cache runs beside the first SYN to a peer not heard from lately
  (one per destination), or starts at "no LeaseSet"; nothing found while the router sent none
  of our SYNs → ``StreamDestinationOffline``; found, or the router sent a SYN (status 2/4/6)
  → the stream keeps waiting for its (retransmitted) SYN to be answered;
- soft statuses (one try failed, no tunnels yet, handed to a tunnel) change nothing;
- a status arriving after the peer answered is ignored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from i2proxy.i2cp.messages import MessageStatusCode
from i2proxy.streaming.connection import PeerProfile
from i2proxy.streaming.delivery import SynVerdict, appears_offline, syn_status_verdict
from i2proxy.streaming.errors import (
    StreamDestinationOffline,
    StreamReplyLost,
    StreamUnreachable,
)
from i2proxy.streaming.manager import StreamManager
from i2proxy.streaming.options import StreamingOptions
from i2proxy.streaming.packet import Flag, Packet, decode, encode
from tests.unit.streaming_sim import keys


class Router:
    """Records what the manager hands over; the test plays the router's MessageStatus."""

    def __init__(self, *, found_on_second_lookup: bool = True) -> None:
        self.plain: list[bytes] = []
        self.tracked: list[tuple[bytes, Callable[[int], None]]] = []
        self.lookups = 0
        self.found = found_on_second_lookup
        #: When set, lookups wait for it (a slow network lookup).
        self.gate: asyncio.Event | None = None

    def send(self, destination, payload: bytes, src: int, dst: int) -> None:
        self.plain.append(payload)

    def send_tracked(self, destination, payload, src, dst, on_status) -> None:
        self.tracked.append((payload, on_status))

    async def lookup_again(self, destination) -> bool:
        self.lookups += 1
        await asyncio.sleep(0)
        if self.gate is not None:
            await self.gate.wait()
        return self.found

    def report(self, code: int) -> None:
        self.tracked[-1][1](code)

    def manager(self, **options) -> StreamManager:
        return StreamManager(
            keys(0),
            self.send,
            StreamingOptions(**options),
            send_tracked=self.send_tracked,
            lookup_again=self.lookup_again,
        )


async def start_dial(manager: StreamManager, timeout: float = 30.0) -> asyncio.Task:
    task = asyncio.create_task(
        manager.open_stream(keys(1).destination, 80, b"GET / HTTP/1.1\r\n\r\n", timeout=timeout)
    )
    await asyncio.sleep(0.01)
    return task


async def test_only_the_syn_carries_a_delivery_report():
    router = Router()
    task = await start_dial(router.manager())
    assert [decode(p).is_syn for p, _ in router.tracked] == [True]
    assert router.plain and not any(decode(p).has(Flag.SYNCHRONIZE) for p in router.plain)
    task.cancel()


@pytest.mark.parametrize("code", [8, 10, 15, 18, 19, 20, 22])
async def test_a_hard_failure_fails_the_dial_at_once_without_a_reset(code):
    router = Router()
    task = await start_dial(router.manager())
    sent_before = len(router.plain)
    router.report(code)
    with pytest.raises(StreamUnreachable, match="cannot deliver") as info:
        await asyncio.wait_for(task, 1)
    assert not isinstance(info.value, StreamDestinationOffline)
    assert len(router.plain) == sent_before  # no RESET to a peer that never heard of us


async def test_no_leaseset_and_none_on_a_second_lookup_is_destination_offline():
    router = Router(found_on_second_lookup=False)
    manager = router.manager()
    task = await start_dial(manager)
    router.report(MessageStatusCode.NO_LEASESET)
    with pytest.raises(StreamDestinationOffline, match="appears to be offline"):
        await asyncio.wait_for(task, 1)
    assert router.lookups == 1
    assert manager.stream_count == 0


async def test_no_leaseset_but_found_on_the_second_lookup_keeps_the_dial_waiting():
    router = Router(found_on_second_lookup=True)
    task = await start_dial(router.manager())
    router.report(MessageStatusCode.NO_LEASESET)
    await asyncio.sleep(0.05)
    assert router.lookups == 1
    assert not task.done()
    task.cancel()


async def test_only_one_second_lookup_per_stream():
    router = Router(found_on_second_lookup=True)
    task = await start_dial(router.manager(initial_rto=0.05, min_rto=0.05))
    router.report(MessageStatusCode.NO_LEASESET)
    await asyncio.sleep(0.2)  # the SYN has been retransmitted by now
    assert len(router.tracked) >= 2
    router.report(MessageStatusCode.NO_LEASESET)
    await asyncio.sleep(0.05)
    assert router.lookups == 1 and not task.done()
    task.cancel()


async def test_a_first_contact_whose_syn_reply_was_lost_after_the_pre_ack_is_reply_lost():
    """The peer answered (its sequence 1 came) but its SYN reply never did, and our pre-ACK had
    counted it: the request reached the peer and the open fails as StreamReplyLost, which the
    HTTP proxy may repeat for a safe request (docs/STREAMING.md)."""
    router = Router()
    manager = router.manager(pre_ack_guard=0.05)
    task = await start_dial(manager)
    ours = decode(router.tracked[0][0]).receive_stream_id
    pre_ack = [decode(p) for p in router.plain if decode(p).send_stream_id == 0]
    assert pre_ack and not pre_ack[0].is_syn
    answer = Packet(
        send_stream_id=ours, receive_stream_id=4242, sequence_num=1, payload=b"HTTP/1.1 200 OK"
    )
    manager.handle_payload(encode(answer))
    with pytest.raises(StreamReplyLost, match="pre-ack-data-lost"):
        await asyncio.wait_for(task, 2)


@pytest.mark.parametrize("code", [1, 3, 4, 5, 16, 99])
async def test_soft_or_success_statuses_change_nothing(code):
    router = Router()
    task = await start_dial(router.manager())
    router.report(code)
    await asyncio.sleep(0.05)
    assert not task.done()
    task.cancel()


async def test_our_lookup_runs_beside_the_first_syn_and_finding_nothing_is_offline():
    """Java searched ~15 s for the SYN's LeaseSet before its 21; our lookup (the router's own
    search, within our budget) answers sooner and decides."""
    router = Router(found_on_second_lookup=False)
    router.gate = asyncio.Event()
    task = await start_dial(router.manager())
    assert router.lookups == 1 and not task.done()  # before any report from the router
    router.gate.set()
    with pytest.raises(StreamDestinationOffline):
        await asyncio.wait_for(task, 1)
    assert router.lookups == 1


async def test_nothing_found_does_not_fail_a_dial_whose_syn_the_router_sent():
    router = Router(found_on_second_lookup=False)
    router.gate = asyncio.Event()
    task = await start_dial(router.manager())
    router.report(MessageStatusCode.GUARANTEED_SUCCESS)  # it had the LeaseSet after all
    router.gate.set()
    await asyncio.sleep(0.05)
    assert not task.done()
    task.cancel()


async def test_a_peer_heard_from_lately_gets_no_lookup_beside_its_syn():
    router = Router(found_on_second_lookup=False)
    manager = router.manager()
    learned = PeerProfile(srtt=0.05, syn_reply_empty=True)
    manager._profile(keys(1).destination).learn(learned, manager._now(), final=True)
    task = await start_dial(manager)
    assert router.lookups == 0
    router.report(MessageStatusCode.NO_LEASESET)
    with pytest.raises(StreamDestinationOffline):
        await asyncio.wait_for(task, 1)
    assert router.lookups == 1  # "no LeaseSet" still starts one


async def test_simultaneous_dials_to_one_destination_share_one_lookup():
    router = Router(found_on_second_lookup=False)
    router.gate = asyncio.Event()
    manager = router.manager()
    tasks = [await start_dial(manager) for _ in range(5)]
    assert router.lookups == 1
    for _, report in list(router.tracked):
        report(MessageStatusCode.NO_LEASESET)
    router.gate.set()
    for task in tasks:
        with pytest.raises(StreamDestinationOffline):
            await asyncio.wait_for(task, 1)
    assert router.lookups == 1 and manager.stream_count == 0


def test_offline_is_nothing_found_and_no_syn_sent():
    assert appears_offline(lookup_found=False, syn_sent_by_router=False)
    assert not appears_offline(lookup_found=True, syn_sent_by_router=False)
    assert not appears_offline(lookup_found=None, syn_sent_by_router=False)
    assert not appears_offline(lookup_found=False, syn_sent_by_router=True)


def test_the_verdict_table_follows_javas_streaming():
    """Java's PacketQueue.messageStatus: hard = local/router/network failure, bad session,
    message, options, overflow, expired, bad local LeaseSet, unsupported encryption, bad
    destination/LeaseSet, expired LeaseSet, meta LeaseSet, loopback; soft = best-effort and
    guaranteed failure, no tunnels; no LeaseSet is soft in Java, a second lookup for us."""
    hard = {7, 8, 9, 10, 11, 12, 13, 14, 15, 17, 18, 19, 20, 22, 23}
    for code in range(0, 30):
        verdict = syn_status_verdict(code)
        if code == 21:
            assert verdict is SynVerdict.LOOK_UP_AGAIN
        elif code in hard:
            assert verdict is SynVerdict.FAIL, code
        else:
            assert verdict is SynVerdict.CARRY_ON, code


async def test_without_tracked_send_every_packet_goes_plain():
    router = Router()
    manager = StreamManager(keys(0), router.send, StreamingOptions())
    task = asyncio.create_task(manager.open_stream(keys(1).destination, 80, b"x", timeout=5))
    await asyncio.sleep(0.01)
    assert router.tracked == [] and decode(router.plain[0]).is_syn
    task.cancel()


async def test_a_status_arriving_after_the_peer_answered_is_ignored():
    server = StreamManager(keys(1), lambda d, p, s, t: client.handle_payload(p), StreamingOptions())

    async def answer(reader, writer):
        writer.write(b"hello")
        writer.close()

    server.listen(answer)
    reports: list[Callable[[int], None]] = []

    def send(destination, payload, src, dst):
        asyncio.get_running_loop().call_soon(server.handle_payload, payload)

    def send_tracked(destination, payload, src, dst, on_status):
        reports.append(on_status)
        send(destination, payload, src, dst)

    async def found(destination) -> bool:
        return True  # the lookup beside the SYN (a fresh peer) finds it

    client = StreamManager(
        keys(0), send, StreamingOptions(), send_tracked=send_tracked, lookup_again=found
    )
    reader, _writer = await client.open_stream(keys(1).destination, 80, b"hi", timeout=5)
    reports[0](MessageStatusCode.NO_LEASESET)
    reports[0](MessageStatusCode.BAD_LEASESET)
    assert await asyncio.wait_for(reader.read(), 5) == b"hello"
