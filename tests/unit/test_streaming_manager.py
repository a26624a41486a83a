"""StreamManager: two managers wired back to back in memory (the message layer is the fake).

Packets cross with a configurable one-way delay through the event loop, so what is tested is
the real asyncio adapter (transport, StreamReader/StreamWriter, timers) around the real core.
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from i2proxy.i2cp.errors import RouterDisconnected
from i2proxy.streaming import manager as manager_module
from i2proxy.streaming.errors import StreamConnectTimeout, StreamLimitReached, StreamRefused
from i2proxy.streaming.manager import StreamManager
from i2proxy.streaming.options import StreamingOptions
from i2proxy.streaming.packet import decode
from tests.unit.streaming_sim import keys


class Wire:
    """Delivers each manager's packets to the other after ``delay`` seconds."""

    def __init__(self, delay: float = 0.01, drop_first_syn_reply: bool = False) -> None:
        self.delay = delay
        self.managers: dict[bytes, StreamManager] = {}
        self.sent: list[tuple[bytes, bytes]] = []
        self.drop_first_syn_reply = drop_first_syn_reply

    def sender(self, me: bytes):
        def send(destination, payload: bytes, src_port: int, dst_port: int) -> None:
            self.sent.append((me, payload))
            packet = decode(payload)
            if self.drop_first_syn_reply and packet.is_syn and packet.send_stream_id:
                self.drop_first_syn_reply = False
                return
            target = self.managers.get(destination.hash)
            if target is None:
                return
            loop = asyncio.get_running_loop()
            loop.call_later(
                self.delay,
                lambda: target.handle_payload(payload, src_port=src_port, dst_port=dst_port),
            )

        return send

    def manager(self, index: int, options: StreamingOptions | None = None) -> StreamManager:
        k = keys(index)
        m = StreamManager(k, self.sender(k.destination.hash), options)
        self.managers[k.destination.hash] = m
        return m


async def echo_upper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    data = await reader.readuntil(b"\n")
    writer.write(data.upper())
    writer.close()


async def test_request_rides_in_syn_and_reply_in_syn_reply():
    wire = Wire(delay=0.2)
    client, server = wire.manager(0), wire.manager(1)
    server.listen(echo_upper, port=80)
    loop = asyncio.get_running_loop()
    started = loop.time()
    reader, writer = await client.open_stream(
        keys(1).destination, 80, b"get / http/1.0\n", timeout=5
    )
    body = await reader.read()
    elapsed = loop.time() - started
    assert body == b"GET / HTTP/1.0\n"
    stats = writer.get_extra_info("stream_stats")
    assert stats.initial_data_in_syn and stats.syn_payload_bytes == 15
    # one round trip (2 x 200 ms) plus scheduling; two round trips would be 800 ms
    assert 0.4 <= elapsed < 0.6, elapsed
    writer.close()


async def test_bulk_both_ways_sha256_intact():
    wire = Wire(delay=0.005)
    client, server = wire.manager(0), wire.manager(1)
    payload = bytes(range(256)) * 4096  # 1 MiB

    async def sink_then_send(reader, writer):
        got = await reader.readexactly(len(payload))
        writer.write(hashlib.sha256(got).digest())
        writer.write(payload)
        await writer.drain()
        writer.close()

    server.listen(sink_then_send)
    reader, writer = await client.open_stream(keys(1).destination, 7, timeout=5)
    writer.write(payload)
    await writer.drain()
    digest = await reader.readexactly(32)
    back = await reader.read()
    assert digest == hashlib.sha256(payload).digest()
    assert hashlib.sha256(back).digest() == hashlib.sha256(payload).digest()
    writer.close()


async def test_no_listener_means_peer_refused():
    wire = Wire()
    client, _server = wire.manager(0), wire.manager(1)
    with pytest.raises(StreamRefused):
        await client.open_stream(keys(1).destination, 80, b"hello", timeout=5)


async def test_silent_peer_means_dial_timeout():
    wire = Wire()
    client = wire.manager(0)  # nobody registered for keys(1): packets vanish
    with pytest.raises(StreamConnectTimeout):
        await client.open_stream(keys(1).destination, 80, b"hello", timeout=0.3)
    assert client.stream_count == 0


async def test_abort_all_fails_every_stream_promptly():
    wire = Wire()
    client, server = wire.manager(0), wire.manager(1)
    gate = asyncio.Event()

    async def hold(reader, writer):
        await gate.wait()

    server.listen(hold)
    reader, _writer = await client.open_stream(keys(1).destination, 1, b"x", timeout=5)
    pending_dial = asyncio.ensure_future(client.open_stream(keys(2).destination, 1, b"y"))
    await asyncio.sleep(0.05)
    client.abort_all(RouterDisconnected("router went away"))
    with pytest.raises(RouterDisconnected):
        await asyncio.wait_for(reader.read(), 1)
    with pytest.raises(RouterDisconnected):
        await asyncio.wait_for(pending_dial, 1)
    gate.set()


async def test_handler_answer_rides_in_the_syn_reply():
    wire = Wire(delay=0.02)
    client, server = wire.manager(0), wire.manager(1)
    server.listen(echo_upper)
    await client.open_stream(keys(1).destination, 0, b"ping\n", timeout=5)
    syn_replies = [decode(p) for who, p in wire.sent if who == keys(1).destination.hash]
    first = syn_replies[0]
    assert first.is_syn and first.payload == b"PING\n"


async def test_lost_syn_reply_with_data_is_recovered_not_lost():
    """Our own server never counts a pre-ACK, so it resends a lost data-bearing SYN reply."""
    wire = Wire(delay=0.01, drop_first_syn_reply=True)
    options = StreamingOptions(initial_rto=0.2, pre_ack_guard=5.0)
    client, server = wire.manager(0, options), wire.manager(1, options)
    server.listen(echo_upper)
    reader, _writer = await client.open_stream(keys(1).destination, 0, b"abc\n", timeout=5)
    assert await asyncio.wait_for(reader.read(), 5) == b"ABC\n"
    assert server.stream_count <= 1


async def test_lazy_open_coalesces_writes_into_the_syn():
    wire = Wire(delay=0.01)
    client, server = wire.manager(0), wire.manager(1)
    server.listen(echo_upper)
    reader, writer = await client.open_stream(keys(1).destination, 0, lazy=True)
    writer.write(b"two ")
    writer.write(b"parts\n")
    assert await asyncio.wait_for(reader.read(), 5) == b"TWO PARTS\n"
    assert writer.get_extra_info("stream_stats").syn_payload_bytes == 10


async def test_ping_measures_round_trip_when_the_peer_answers_pings():
    wire = Wire(delay=0.02)
    client = wire.manager(0)
    wire.manager(1, StreamingOptions(answer_pings=True))
    rtt = await client.ping(keys(1).destination, timeout=2)
    assert 0.04 <= rtt < 0.5


async def test_pings_are_not_answered_by_default():
    """A pong would tell anyone who knows our destination that we are online (i2pd clients
    do not answer either); ``i2p.streaming.answerPings=true`` turns answering on."""
    wire = Wire(delay=0.01)
    client = wire.manager(0)
    wire.manager(1)
    with pytest.raises(TimeoutError):
        await client.ping(keys(1).destination, timeout=0.3)


async def test_control_block_seeds_next_connection_rtt():
    wire = Wire(delay=0.03)
    client, server = wire.manager(0), wire.manager(1)
    server.listen(echo_upper)
    reader, writer = await client.open_stream(keys(1).destination, 0, b"a\n", timeout=5)
    await reader.read()
    writer.close()
    await asyncio.sleep(0.3)
    profile = client._profile(keys(1).destination)
    assert profile.srtt is not None and 0.05 < profile.srtt < 0.2
    assert profile.syn_reply_empty is False  # our server bundles its answer


async def test_router_down_at_dial_time_fails_at_once_with_the_send_error():
    def send(destination, payload, src_port, dst_port):
        raise RouterDisconnected("no I2CP connection")

    client = StreamManager(keys(0), send)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(RouterDisconnected):
        await client.open_stream(keys(1).destination, 80, b"GET /", timeout=30)
    assert loop.time() - started < 0.5
    assert client.stream_count == 0


async def test_handler_exception_aborts_only_that_stream():
    wire = Wire()
    client, server = wire.manager(0), wire.manager(1)

    async def broken(reader, writer):
        raise RuntimeError("handler bug")

    server.listen(broken)
    # it failed before the SYN reply left, so the dial itself sees the RESET
    with pytest.raises(StreamRefused):
        await client.open_stream(keys(1).destination, 0, b"x", timeout=5)
    server.listen(echo_upper)
    reader, _writer = await client.open_stream(keys(1).destination, 0, b"ok\n", timeout=5)
    assert await asyncio.wait_for(reader.read(), 5) == b"OK\n"


async def test_slow_reader_chokes_the_sender_and_loses_nothing():
    wire = Wire(delay=0.005)
    small = StreamingOptions(receive_buffer=64 * 1024)
    client, server = wire.manager(0, small), wire.manager(1, small)
    payload = bytes(range(256)) * 8192  # 2 MiB

    async def flood(reader, writer):
        writer.write(payload)
        await writer.drain()
        writer.close()

    server.listen(flood)
    reader, writer = await client.open_stream(keys(1).destination, 0, b"go", timeout=5)
    await asyncio.sleep(0.5)  # do not read: the StreamReader pauses, we choke the server
    conn = writer.get_extra_info("connection")
    assert not writer.transport.is_reading()
    assert conn._paused
    received = await asyncio.wait_for(reader.read(), 30)
    assert received == payload
    choked = [decode(p) for who, p in wire.sent if who == keys(0).destination.hash]
    assert any(p.choke for p in choked)


class LogRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict]] = []

    def __getattr__(self, level: str):
        return lambda event, **kw: self.events.append((level, event, kw))


async def test_the_stream_limit_is_settable_refuses_with_its_own_error_and_warns_once(
    monkeypatch,
):
    recorder = LogRecorder()
    monkeypatch.setattr(manager_module, "log", recorder)
    wire = Wire()
    options = StreamingOptions(max_streams=3)
    client, server = wire.manager(0, options), wire.manager(1, StreamingOptions(max_streams=2))
    gate = asyncio.Event()

    async def hold(reader, writer):
        await gate.wait()
        writer.close()

    server.listen(hold)
    wire.manager(2).listen(hold)
    held = [await client.open_stream(keys(1).destination, 1, b"x", timeout=5) for _ in range(2)]
    # The server is full: its third incoming SYN gets a RESET, like a port nobody listens on.
    with pytest.raises(StreamRefused):
        await client.open_stream(keys(1).destination, 1, b"x", timeout=5)
    assert server.streams_refused == 1
    held.append(await client.open_stream(keys(2).destination, 1, b"x", timeout=5))
    assert client.stream_count == 3
    loop = asyncio.get_running_loop()
    for _ in range(5):
        started = loop.time()
        with pytest.raises(StreamLimitReached, match="3 I2P streams are open"):
            await client.open_stream(keys(2).destination, 1, b"y", timeout=30)
        assert loop.time() - started < 0.1  # at once, not after a timeout
    assert client.streams_refused == 5
    warnings = [kw for level, event, kw in recorder.events if event == "streaming.limit_reached"]
    # one for the server's refused SYN, one (not five) for the client's refusals
    assert [(w["direction"], w["limit"]) for w in warnings] == [("incoming", 2), ("outgoing", 3)]
    gate.set()
    for _reader, writer in held:
        writer.close()
    for _ in range(100):
        if client.stream_count == 0:
            break
        await asyncio.sleep(0.02)
    _reader, writer = await client.open_stream(keys(1).destination, 1, b"z", timeout=5)
    writer.close()


def test_max_streams_is_a_streaming_option():
    options = StreamingOptions.from_properties({"i2proxy.streaming.maxStreams": "10"})
    assert options.max_streams == 10
    assert StreamingOptions().max_streams == 4096
    with pytest.raises(ValueError):
        StreamingOptions.from_properties({"i2proxy.streaming.maxStreams": "0"})


async def test_the_reader_pauses_and_chokes_only_above_receive_buffer():
    """Unread data below receiveBuffer neither pauses the reader nor chokes the peer."""
    wire = Wire(delay=0.005)
    options = StreamingOptions(receive_buffer=256 * 1024)
    client, server = wire.manager(0, options), wire.manager(1, options)
    sent = asyncio.Event()

    async def send_200k_then_more(reader, writer):
        writer.write(b"a" * 200_000)
        await writer.drain()
        await sent.wait()
        writer.write(b"b" * 300_000)
        await writer.drain()
        writer.close()

    server.listen(send_200k_then_more)
    reader, writer = await client.open_stream(keys(1).destination, 0, b"go", timeout=5)
    conn = writer.get_extra_info("connection")
    for _ in range(200):  # the first 200 kB arrive unread
        if len(reader._buffer) >= 200_000:
            break
        await asyncio.sleep(0.01)
    assert len(reader._buffer) == 200_000
    assert writer.transport.is_reading() and not conn._paused
    sent.set()
    for _ in range(200):  # 500 kB unread: over 256 KiB, the reader pauses and we choke
        if conn._paused:
            break
        await asyncio.sleep(0.01)
    assert conn._paused
    assert await asyncio.wait_for(reader.read(), 30) == b"a" * 200_000 + b"b" * 300_000
