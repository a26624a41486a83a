"""asyncio adapter: many streaming connections over one message transport (I2CP).

Thin on purpose: it routes packets to :class:`~i2proxy.streaming.connection.Connection` cores,
moves bytes between them and standard ``asyncio.StreamReader``/``StreamWriter`` pairs through a
small custom transport, and arms one ``loop.call_at`` timer per connection from the core's
``get_timer()``. All protocol decisions live in the core.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog

from i2proxy.streaming.connection import Connection, PacketRejected, PeerProfile
from i2proxy.streaming.delivery import (
    SynVerdict,
    appears_offline,
    router_sent,
    status_name,
    syn_status_verdict,
)
from i2proxy.streaming.errors import (
    StreamConnectTimeout,
    StreamDestinationOffline,
    StreamLimitReached,
    StreamOpenError,
    StreamRefused,
    StreamReplyLost,
    StreamStats,
    StreamUnreachable,
)
from i2proxy.streaming.events import (
    ConnectionClosed,
    ConnectionEstablished,
    ConnectionReset,
    DataReceived,
    PongReceived,
    ResetReason,
    StreamEnded,
)
from i2proxy.streaming.options import StreamingOptions
from i2proxy.streaming.packet import (
    REPLAY_NACK_COUNT,
    Flag,
    Packet,
    PacketError,
    decode,
    encode,
    peek_flags,
    verify_signature,
)

if TYPE_CHECKING:
    from i2proxy.i2p.destination import Destination
    from i2proxy.i2p.keys import PrivateKeys

log = structlog.get_logger(__name__)

SendFunction = Callable[["Destination", bytes, int, int], None]
#: Like ``SendFunction``; the last argument receives the router's final MessageStatus code.
TrackedSendFunction = Callable[["Destination", bytes, int, int, Callable[[int], None]], None]
#: Look a destination up again past every cache: True when the network has its LeaseSet now.
#: The dialer's answer is final: it already asked again if our destination is young (the
#: native dialer, ``dialer/young.py``), so ``_on_lookup_done`` fails the dial on False.
LookupFunction = Callable[["Destination"], Awaitable[bool]]
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None] | None]

#: Follow-on packets that arrive before their SYN: how many streams, packets, and how long.
MAX_PENDING_STREAMS = 64
MAX_PENDING_PACKETS = 16
PENDING_TIMEOUT = 10.0
#: Peers whose RTT/window/SYN-reply habits we remember (control-block sharing).
MAX_PROFILES = 512
#: At most one "limit reached" warning per this many seconds (with the count refused meanwhile).
LIMIT_LOG_INTERVAL = 60.0


class StreamResetError(ConnectionResetError):
    """An established stream died; ``reason`` says why."""

    def __init__(self, reason: ResetReason, detail: str) -> None:
        super().__init__(f"I2P stream reset ({reason.value}): {detail}")
        self.reason = reason


def _open_error(reason: ResetReason, detail: str) -> StreamOpenError:
    if reason is ResetReason.PEER_RESET:
        return StreamRefused(f"peer refused the stream: {detail}")
    if reason is ResetReason.CONNECT_TIMEOUT:
        return StreamConnectTimeout(f"no answer within the connect timeout: {detail}")
    if reason is ResetReason.PRE_ACK_DATA_LOST:
        return StreamReplyLost(f"stream could not be opened ({reason.value}): {detail}")
    return StreamUnreachable(f"stream could not be opened ({reason.value}): {detail}")


class _Stream:
    """Glue between one core connection and its asyncio reader/writer."""

    def __init__(
        self,
        manager: StreamManager,
        conn: Connection,
        destination: Destination,
        local_port: int,
        remote_port: int,
        *,
        lazy: bool = False,
    ) -> None:
        loop = manager.loop
        self.manager = manager
        self.conn = conn
        self.destination = destination
        self.local_port = local_port
        self.remote_port = remote_port
        self.lazy = lazy
        # StreamReader pauses reading (and so chokes the peer) above twice its limit: tie that
        # to receiveBuffer. A 128 KiB pause point (the old limit) is less than one i2pd window:
        # a short scheduling gap choked the sender or made us drop its packets (see STREAMING.md).
        self.reader = asyncio.StreamReader(
            limit=max(1, manager.options.receive_buffer // 2), loop=loop
        )
        self.protocol = asyncio.StreamReaderProtocol(self.reader, loop=loop)
        self.transport = StreamTransport(self)
        self.protocol.connection_made(self.transport)
        self.writer = asyncio.StreamWriter(self.transport, self.protocol, self.reader, loop)
        self.established: asyncio.Future[None] = loop.create_future()
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at: float | None = None
        self.pump_scheduled = False
        self.writing_paused = False
        self.finished = False
        self.pong: asyncio.Future[float] | None = None
        #: Our own lookup of the destination (shared by every stream to it), started with
        #: the first SYN to a peer we have not heard from lately, or after "no LeaseSet".
        self.lookup: asyncio.Task[bool] | None = None
        #: The router reported one of our SYNs as sent (it had the LeaseSet).
        self.syn_sent_by_router = False

    def stats(self) -> StreamStats:
        s = self.conn.stats
        return StreamStats(
            packets_sent=s.packets_sent,
            packets_received=s.packets_received,
            retransmissions=s.retransmissions,
            rtt=self.conn.rtt.srtt,
            initial_data_in_syn=s.initial_data_in_syn,
            syn_payload_bytes=s.syn_payload_bytes,
        )


class StreamTransport(asyncio.Transport):
    """An ``asyncio.Transport`` over one streaming connection, so StreamReader/Writer work."""

    def __init__(self, stream: _Stream) -> None:
        super().__init__()
        self._stream = stream
        self._closing = False
        self._reading_paused = False

    # -- writing
    def write(self, data: bytes | bytearray | memoryview) -> None:
        stream = self._stream
        if not data:
            return
        if self._closing or stream.conn.is_terminated or stream.conn.send_closed:
            # like asyncio's socket transports: writes after close/connection loss are dropped
            log.debug("streaming.write_after_close", size=len(data))
            return
        first_pending = stream.conn.state.value == "new"
        stream.conn.send(bytes(data), flush=not (stream.lazy and first_pending))
        if (
            not stream.writing_paused
            and stream.conn.unsent_bytes > stream.manager.options.send_buffer
        ):
            stream.writing_paused = True
            stream.protocol.pause_writing()
        stream.manager._schedule_pump(stream)

    def write_eof(self) -> None:
        """Send CLOSE after the buffered data. i2pd then discards its unsent reply: see docs."""
        self._stream.conn.close()
        self._stream.manager._schedule_pump(self._stream)

    def can_write_eof(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        return self._stream.conn.unsent_bytes

    def get_write_buffer_limits(self) -> tuple[int, int]:
        high = self._stream.manager.options.send_buffer
        return high // 4, high

    # -- reading
    def pause_reading(self) -> None:
        if not self._reading_paused:
            self._reading_paused = True
            self._stream.conn.pause_receiving()
            self._stream.manager._schedule_pump(self._stream)

    def resume_reading(self) -> None:
        if self._reading_paused:
            self._reading_paused = False
            self._stream.conn.resume_receiving()
            self._stream.manager._schedule_pump(self._stream)

    def is_reading(self) -> bool:
        return not self._reading_paused

    # -- lifecycle
    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._stream.conn.close()
        self._stream.manager._schedule_pump(self._stream)

    def abort(self) -> None:
        self._closing = True
        self._stream.manager._abort_stream(self._stream)

    def is_closing(self) -> bool:
        return self._closing or self._stream.conn.is_terminated

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        stream = self._stream
        if name == "stream_stats":
            return stream.stats()
        if name in ("peername", "destination"):
            return stream.destination
        if name == "peer_b32":
            return stream.destination.b32
        if name == "ports":
            return stream.local_port, stream.remote_port
        if name == "connection":
            return stream.conn
        return default


class StreamManager:
    """All streams of one local destination.

    ``send(destination, payload, src_port, dst_port)`` hands one streaming packet to the I2CP
    layer (protocol 6; it does the gzip framing). Feed every incoming protocol-6 payload to
    :meth:`handle_payload`. With ``send_tracked`` the SYN of an outgoing stream goes through it
    and the router's delivery report decides early failures (see ``delivery.py``);
    ``lookup_again`` is the second lookup after "no LeaseSet".
    """

    def __init__(
        self,
        keys: PrivateKeys,
        send: SendFunction,
        options: StreamingOptions | None = None,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        send_tracked: TrackedSendFunction | None = None,
        lookup_again: LookupFunction | None = None,
    ) -> None:
        self.keys = keys
        self.options = (options or StreamingOptions()).validate()
        self._send = send
        self._send_tracked = send_tracked
        self._lookup_again = lookup_again
        self._loop = loop
        self._streams: dict[int, _Stream] = {}
        self._incoming_by_remote: dict[int, _Stream] = {}
        self._pending: dict[int, tuple[float, list[Packet]]] = {}
        self._listeners: dict[int | None, Handler] = {}
        self._profiles: OrderedDict[bytes, PeerProfile] = OrderedDict()
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Lookups in flight by destination hash: a burst of dials to one site asks once.
        self._lookups: dict[bytes, asyncio.Task[bool]] = {}
        self.invalid_packets = 0
        self.unroutable_packets = 0
        #: Streams refused (outgoing and incoming) because ``options.max_streams`` were open.
        self.streams_refused = 0
        self._refused_unlogged = 0
        self._limit_logged_at: float | None = None
        #: Accepted SYNs whose NACKs named us (replay protection, spec 0.9.58: i2pd >= 2.47
        #: and Java send it); SYNs naming another destination are dropped as invalid.
        self.replay_protected_syns = 0

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    def _now(self) -> float:
        return self.loop.time()

    def _at_limit(self, direction: str) -> bool:
        """True when ``max_streams`` are open; then count it and warn, at most once a minute."""
        limit = self.options.max_streams
        if len(self._streams) < limit:
            return False
        self.streams_refused += 1
        self._refused_unlogged += 1
        now = self._now()
        if self._limit_logged_at is None or now - self._limit_logged_at >= LIMIT_LOG_INTERVAL:
            log.warning(
                "streaming.limit_reached",
                limit=limit,
                direction=direction,
                refused=self._refused_unlogged,
                setting="max_streams (--max-streams, i2proxy.streaming.maxStreams)",
            )
            self._limit_logged_at = now
            self._refused_unlogged = 0
        return True

    def _new_stream_id(self) -> int:
        while True:
            sid = secrets.randbits(32)
            if sid and sid not in self._streams:
                return sid

    def _profile(self, destination: Destination) -> PeerProfile:
        key = destination.hash
        profile = self._profiles.get(key)
        if profile is None:
            profile = PeerProfile()
            self._profiles[key] = profile
            while len(self._profiles) > MAX_PROFILES:
                self._profiles.popitem(last=False)
        else:
            self._profiles.move_to_end(key)
            profile.expire(self._now())
        return profile

    # ------------------------------------------------------------------ outgoing
    async def open_stream(
        self,
        destination: Destination,
        port: int = 0,
        initial_data: bytes = b"",
        *,
        timeout: float | None = None,
        lazy: bool = False,
        local_port: int = 0,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Open a stream; ``initial_data`` rides in the SYN.

        By default the SYN leaves at once and this returns when the peer answered (SYN reply)
        or raises a :class:`~i2proxy.streaming.errors.StreamOpenError` (or the send function's
        ``ConnectionError``). With ``lazy=True`` it returns at once
        and the SYN waits up to ``connect_delay`` for more writes (Java's connectDelay) or
        until a full packet is buffered; failures then surface on the reader and writer.
        """
        if self._at_limit("outgoing"):
            raise StreamLimitReached(
                f"{self.options.max_streams} I2P streams are open, the limit (max_streams)"
            )
        now = self._now()
        options = self.options
        if timeout is not None:
            options = options.with_overrides(connect_timeout=max(0.001, timeout))
        conn = Connection.outgoing(
            keys=self.keys,
            remote_destination=destination,
            local_stream_id=self._new_stream_id(),
            now=now,
            options=options,
            profile=self._profile(destination),
        )
        if initial_data:
            conn.send(bytes(initial_data), flush=not lazy)
        elif not lazy:
            conn.flush()
        stream = _Stream(self, conn, destination, local_port, port, lazy=lazy)
        self._streams[conn.local_stream_id] = stream
        self._pump(stream)
        if lazy:
            return stream.reader, stream.writer
        try:
            await asyncio.shield(stream.established)
        except asyncio.CancelledError:
            self._abort_stream(stream)
            raise
        return stream.reader, stream.writer

    # ------------------------------------------------------------------ incoming
    def listen(self, handler: Handler, port: int | None = None) -> None:
        """Serve incoming streams on ``port`` (None: any port without its own handler).

        The handler runs as soon as the SYN is accepted; what it writes within the connect
        delay rides in the SYN reply (with CLOSE too if it closes the writer by then).
        """
        self._listeners[port] = handler

    def unlisten(self, port: int | None = None) -> None:
        self._listeners.pop(port, None)

    def _accept(self, syn: Packet, src_port: int, dst_port: int) -> None:
        if syn.receive_stream_id in self._incoming_by_remote:
            existing = self._incoming_by_remote[syn.receive_stream_id]
            existing.conn.receive_packet(syn, self._now())  # retransmitted SYN
            self._pump(existing)
            return
        handler = self._listeners.get(dst_port) or self._listeners.get(None)
        if handler is not None and self._at_limit("incoming"):
            handler = None  # refused below with a RESET, like a port nobody listens on
        try:
            profile = self._profile(syn.from_destination) if syn.from_destination else None
            conn = Connection.incoming(
                syn,
                keys=self.keys,
                local_stream_id=self._new_stream_id(),
                now=self._now(),
                options=self.options,
                profile=profile,
            )
        except PacketRejected as exc:
            self.invalid_packets += 1
            log.info("streaming.syn_rejected", reason=str(exc))
            return
        assert conn.remote_destination is not None
        if len(syn.nacks) == REPLAY_NACK_COUNT:
            self.replay_protected_syns += 1
        stream = _Stream(self, conn, conn.remote_destination, dst_port, src_port)
        self._streams[conn.local_stream_id] = stream
        self._incoming_by_remote[syn.receive_stream_id] = stream
        if handler is None:
            log.info("streaming.refused", port=dst_port, reason="no listener or too many")
            conn.reset(self._now(), "no listener on this port")
            self._pump(stream)
            return
        for saved in self._take_pending(syn.receive_stream_id):
            conn.receive_packet(saved, self._now())
        task = self.loop.create_task(self._run_handler(handler, stream))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._pump(stream)

    async def _run_handler(self, handler: Handler, stream: _Stream) -> None:
        try:
            result = handler(stream.reader, stream.writer)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("streaming.handler_failed")
            log.debug("streaming.handler_failed", peer=stream.destination.b32)
            stream.transport.abort()

    def _take_pending(self, remote_id: int) -> list[Packet]:
        entry = self._pending.pop(remote_id, None)
        return entry[1] if entry else []

    def _hold_pending(self, packet: Packet) -> None:
        now = self._now()
        for rid, (first, _) in list(self._pending.items()):
            if now - first > PENDING_TIMEOUT:
                del self._pending[rid]
        entry = self._pending.get(packet.receive_stream_id)
        if entry is None:
            if len(self._pending) >= MAX_PENDING_STREAMS:
                self.unroutable_packets += 1
                return
            entry = (now, [])
            self._pending[packet.receive_stream_id] = entry
        if len(entry[1]) < MAX_PENDING_PACKETS:
            entry[1].append(packet)
        else:
            self.unroutable_packets += 1

    # ------------------------------------------------------------------ packet input
    def handle_payload(self, payload: bytes, *, src_port: int = 0, dst_port: int = 0) -> None:
        """One incoming streaming packet (I2CP protocol 6, gzip framing already removed)."""
        try:
            packet = decode(payload)
        except PacketError as exc:
            self.invalid_packets += 1
            log.debug("streaming.bad_packet", error=str(exc))
            return
        except Exception:  # a Destination parser bug must not kill the I2CP reader
            self.invalid_packets += 1
            log.exception("streaming.decode_failed")
            return
        if packet.send_stream_id:
            stream = self._streams.get(packet.send_stream_id)
            if stream is not None:
                now = self._now()
                stream.conn.receive_packet(packet, now)
                self._pump(stream, now)
            elif packet.has(Flag.ECHO):
                self._answer_ping(packet, src_port, dst_port)
            else:
                self.unroutable_packets += 1
            return
        if packet.has(Flag.ECHO):  # a pong: routed by the id we put in the ping
            stream = self._streams.get(packet.receive_stream_id)
            if stream is not None:
                stream.conn.receive_packet(packet, self._now())
                self._pump(stream)
            return
        if packet.is_syn:
            self._accept(packet, src_port, dst_port)
            return
        stream = self._incoming_by_remote.get(packet.receive_stream_id)
        if stream is not None:
            stream.conn.receive_packet(packet, self._now())
            self._pump(stream)
        else:
            self._hold_pending(packet)

    def _answer_ping(self, ping: Packet, src_port: int, dst_port: int) -> None:
        if not self.options.answer_pings or ping.from_destination is None:
            return
        if not verify_signature(ping, ping.from_destination):
            self.invalid_packets += 1
            return
        pong = Packet(
            send_stream_id=0,
            receive_stream_id=ping.send_stream_id,
            flags=Flag.ECHO,
            payload=ping.payload[:1024],
        )
        self._transmit(ping.from_destination, encode(pong), dst_port, src_port)

    # ------------------------------------------------------------------ driving the cores
    def _transmit(
        self,
        destination: Destination,
        data: bytes,
        src: int,
        dst: int,
        on_status: Callable[[int], None] | None = None,
    ) -> Exception | None:
        """Hand one packet to the message layer; a failure is returned, never raised."""
        try:
            if on_status is not None and self._send_tracked is not None:
                self._send_tracked(destination, data, src, dst, on_status)
            else:
                self._send(destination, data, src, dst)
        except Exception as exc:  # router down: retransmission or abort_all takes over
            log.debug("streaming.send_failed", error=str(exc))
            return exc
        return None

    def _send_packets(self, stream: _Stream, now: float) -> None:
        for data in stream.conn.packets_to_send(now):
            on_status = None
            if (
                self._send_tracked is not None
                and stream.conn.is_client
                and not stream.established.done()
                and peek_flags(data) & Flag.SYNCHRONIZE
            ):
                on_status = functools.partial(self._on_syn_status, stream)
                if stream.lookup is None and stream.conn.profile_in.updated is None:
                    # Nothing heard from this peer lately: ask whether it is on the network
                    # now, beside the router's own lookup for the SYN, so that "no LeaseSet"
                    # is decided by the time the router reports it (delivery.py).
                    self._look_up(stream)
            error = self._transmit(
                stream.destination, data, stream.local_port, stream.remote_port, on_status
            )
            if isinstance(error, ConnectionError) and not stream.established.done():
                # Cannot even hand the SYN to the router (it is down): fail the dial now
                # instead of waiting for the connect timeout.
                stream.established.set_exception(error)
                stream.established.exception()
                self._abort_stream(stream)
                return

    # ------------------------------------------------------------------ SYN delivery reports
    def _on_syn_status(self, stream: _Stream, code: int) -> None:
        """The router's final MessageStatus for one of our SYNs (``delivery.py``)."""
        if stream.finished or stream.established.done():
            return
        verdict = syn_status_verdict(code)
        log.debug("streaming.syn_status", status=code, verdict=verdict.value)
        if verdict is SynVerdict.FAIL:
            self._fail_dial(
                stream,
                StreamUnreachable(
                    f"the router cannot deliver to this destination: {status_name(code)}"
                ),
            )
        elif verdict is SynVerdict.LOOK_UP_AGAIN and self._lookup_again is not None:
            if stream.lookup is None:
                self._look_up(stream)
        elif router_sent(code):
            stream.syn_sent_by_router = True

    def _look_up(self, stream: _Stream) -> None:
        """Join (or start) our lookup of the stream's destination past every cache."""
        assert self._lookup_again is not None
        key = stream.destination.hash
        task = self._lookups.get(key)
        if task is None:
            task = self.loop.create_task(self._lookup_again(stream.destination))
            self._lookups[key] = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            task.add_done_callback(lambda t, key=key: self._forget_lookup(key, t))
        stream.lookup = task
        task.add_done_callback(functools.partial(self._on_lookup_done, stream))

    def _forget_lookup(self, key: bytes, task: asyncio.Task[bool]) -> None:
        if self._lookups.get(key) is task:
            del self._lookups[key]

    def _on_lookup_done(self, stream: _Stream, task: asyncio.Task[bool]) -> None:
        """Fail the dial as offline when our lookup found no LeaseSet and the router has not
        sent any of our SYNs (``delivery.appears_offline``). When the lookup finds it,
        the router holds the LeaseSet now and the next SYN retransmission reaches the peer;
        if the lookup itself failed (router gone), the connect timeout and ``abort_all`` stay
        in charge."""
        if stream.finished or stream.established.done() or task.cancelled():
            return
        if task.exception() is not None:
            log.debug("streaming.lookup_again_failed", error=str(task.exception()))
            return
        found = task.result()
        if found:
            log.debug("streaming.leaseset_found_on_lookup", peer=stream.destination.b32)
            return
        if appears_offline(lookup_found=found, syn_sent_by_router=stream.syn_sent_by_router):
            self._fail_dial(
                stream,
                StreamDestinationOffline(
                    f"{stream.destination.b32}: no LeaseSet on the network (our lookup "
                    "found none and the router could send none of our SYNs): the destination "
                    "appears to be offline"
                ),
            )

    def _fail_dial(self, stream: _Stream, error: StreamOpenError) -> None:
        """End an unanswered outgoing stream with ``error``; no RESET (the peer never heard)."""
        if stream.finished:
            return
        stream.conn.reset(self._now(), str(error))
        stream.conn.packets_to_send(self._now())  # the RESET is dropped: nobody to tell
        self._finish(stream, ResetReason.UNDELIVERABLE, str(error), error=error)

    def _schedule_pump(self, stream: _Stream) -> None:
        if not stream.pump_scheduled and not stream.finished:
            stream.pump_scheduled = True
            self.loop.call_soon(self._pump, stream)

    def _pump(self, stream: _Stream, now: float | None = None) -> None:
        stream.pump_scheduled = False
        if stream.finished:
            return
        conn = stream.conn
        if now is None:
            now = self._now()
        self._send_packets(stream, now)
        if stream.finished:
            return
        while (event := conn.next_event()) is not None:
            if isinstance(event, DataReceived):
                stream.protocol.data_received(event.data)
            elif isinstance(event, ConnectionEstablished):
                self._remember(stream, final=False)
                if not stream.established.done():
                    stream.established.set_result(None)
            elif isinstance(event, StreamEnded):
                stream.protocol.eof_received()
            elif isinstance(event, ConnectionReset):
                self._finish(stream, event.reason, event.detail)
                return
            elif isinstance(event, ConnectionClosed):
                self._finish(stream, None, "")
                return
            elif (
                isinstance(event, PongReceived)
                and stream.pong is not None
                and not stream.pong.done()
            ):
                stream.pong.set_result(event.rtt)
        self._send_packets(stream, now)  # produced while handling events (e.g. ACKs)
        if stream.finished:
            return
        if stream.writing_paused and conn.unsent_bytes <= self.options.send_buffer // 4:
            stream.writing_paused = False
            stream.protocol.resume_writing()
        self._arm_timer(stream)

    def _arm_timer(self, stream: _Stream) -> None:
        """Make the loop wake the core no later than its next deadline.

        The asyncio timer is re-armed only when the deadline moves *earlier*: on the data path
        the core's deadline moves with nearly every packet (the ACK delay is set and cleared,
        the inactivity deadline follows the last packet heard), and a ``call_at`` plus a
        ``cancel`` per packet was a tenth of the receive path's CPU. A timer left armed for an
        earlier moment wakes up early; ``handle_timer`` then finds nothing due (every deadline
        is checked against ``now``) and the pump arms the timer for the real deadline.
        """
        when = stream.conn.get_timer()
        timer = stream.timer
        if timer is not None:
            if when is not None and stream.timer_at <= when:  # type: ignore[operator]
                return  # fires early, then re-arms
            timer.cancel()
            stream.timer = None
            stream.timer_at = None
        if when is not None:
            stream.timer_at = when
            stream.timer = self.loop.call_at(when, self._on_timer, stream)

    def _on_timer(self, stream: _Stream) -> None:
        stream.timer = None
        stream.timer_at = None
        if stream.finished:
            return
        stream.conn.handle_timer(self._now())
        self._pump(stream)

    def _finish(
        self,
        stream: _Stream,
        reason: ResetReason | None,
        detail: str,
        *,
        error: Exception | None = None,
    ) -> None:
        """Remove a dead or closed stream and tell its reader/writer (``error`` if given)."""
        conn = stream.conn
        log.debug(
            "streaming.stream_done",
            reason=reason.value if reason is not None else "closed",
            packets_sent=conn.stats.packets_sent,
            packets_received=conn.stats.packets_received,
            duplicates=conn.stats.duplicates,
            retransmissions=conn.stats.retransmissions,
            dropped_receive_full=conn.stats.dropped_receive_full,
            chokes=conn.stats.chokes,
            ack_holds=conn.stats.ack_holds,
            i2pd245_sender=conn.stats.i2pd245_sender,
            ack_request_answered=conn.stats.ack_request_answered,
            srtt=conn.rtt.srtt,
            window=conn.congestion.window,
        )
        if stream.finished:
            return
        stream.finished = True
        if stream.timer is not None:
            stream.timer.cancel()
        self._streams.pop(stream.conn.local_stream_id, None)
        if self._incoming_by_remote.get(stream.conn.remote_stream_id) is stream:
            del self._incoming_by_remote[stream.conn.remote_stream_id]
        self._remember(stream)
        exc: Exception | None = None
        if reason is not None and reason is not ResetReason.LOCAL:
            if error is not None:
                exc = error
            elif not stream.established.done():
                exc = _open_error(reason, detail)
            else:
                exc = StreamResetError(reason, detail)
        if not stream.established.done():
            stream.established.set_exception(exc or StreamUnreachable(detail or "closed"))
            stream.established.exception()  # mark retrieved; open_stream re-raises it
        if reason is ResetReason.LOCAL:
            exc = None
        with contextlib.suppress(Exception):
            stream.protocol.connection_lost(exc)

    def _remember(self, stream: _Stream, *, final: bool = True) -> None:
        self._profile(stream.destination).learn(stream.conn.profile(), self._now(), final=final)

    def _abort_stream(self, stream: _Stream) -> None:
        if stream.finished:
            return
        stream.conn.reset(self._now())
        for data in stream.conn.packets_to_send(self._now()):
            self._transmit(stream.destination, data, stream.local_port, stream.remote_port)
        self._finish(stream, ResetReason.LOCAL, "aborted")

    def abort_all(self, exc: BaseException) -> None:
        """The router went away: every stream fails now with ``exc`` (no packets are sent)."""
        for stream in list(self._streams.values()):
            stream.finished = True
            if stream.timer is not None:
                stream.timer.cancel()
            if not stream.established.done():
                stream.established.set_exception(exc)
                stream.established.exception()
            with contextlib.suppress(Exception):
                stream.protocol.connection_lost(exc if isinstance(exc, Exception) else None)
        self._streams.clear()
        self._incoming_by_remote.clear()
        self._pending.clear()

    async def ping(self, destination: Destination, timeout: float = 30.0) -> float:
        """Round-trip time in seconds of a signed ECHO to ``destination`` (TimeoutError)."""
        conn = Connection.outgoing(
            keys=self.keys,
            remote_destination=destination,
            local_stream_id=self._new_stream_id(),
            now=self._now(),
            options=self.options,
        )
        stream = _Stream(self, conn, destination, 0, 0)
        stream.pong = self.loop.create_future()
        self._streams[conn.local_stream_id] = stream
        try:
            conn.ping(self._now())
            for data in conn.packets_to_send(self._now()):
                self._transmit(destination, data, 0, 0)
            return await asyncio.wait_for(stream.pong, timeout)
        finally:
            stream.finished = True
            self._streams.pop(conn.local_stream_id, None)

    async def close(self) -> None:
        """Reset every stream and cancel handler tasks."""
        for stream in list(self._streams.values()):
            self._abort_stream(stream)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
