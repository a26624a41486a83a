"""The I2CP client session as a sans-IO state machine.

Bytes from the router go in through ``receive_data(data, now)``; bytes for the router come out of
``data_to_send()``; what happened comes out of ``next_event()``. ``now`` is the local wall clock
in seconds (``time.time()`` in the adapter): I2CP dates are wall-clock dates, and the session
keeps the router's clock offset from SetDate so every date it signs is in the router's time.

One session per connection (i2pd answers a second CreateSession on the same socket with
"refused" and leaks the first). The LeaseSet request is answered synchronously inside
``receive_data``, well within i2pd's 10 s limit.
"""

from __future__ import annotations

import enum
import itertools
from collections import deque
from collections.abc import Mapping
from typing import Protocol

from i2proxy.i2cp import events as ev
from i2proxy.i2cp import messages as m
from i2proxy.i2cp.errors import I2CPError, I2CPProtocolError
from i2proxy.i2cp.payload import decode_payload, encode_payload

#: How long a SendMessageExpires may wait in the router (Java honours it, i2pd ignores it).
DEFAULT_MESSAGE_EXPIRATION = 60.0
#: Our own deadline for a HostLookup; also sent to the router as its timeout.
DEFAULT_LOOKUP_TIMEOUT = 10.0
_MESSAGE_PAYLOAD = m.MessageType.MESSAGE_PAYLOAD.value
#: Incoming messages announced with MessageStatus(AVAILABLE) whose payload we still await.
MAX_REQUESTED_MESSAGES = 1024
#: Tracked messages awaiting their final MessageStatus; the oldest are forgotten beyond this
#: (a router that never answers must not grow the set without bound).
MAX_PENDING_NONCES = 4096


class SessionIdentity(Protocol):
    """What the session needs from our keys (see ``i2proxy.i2cp.identity``)."""

    @property
    def destination_bytes(self) -> bytes: ...

    def sign(self, data: bytes) -> bytes: ...

    def new_session(self) -> None:
        """Called before each CreateSession (a place to pick fresh per-session keys)."""
        ...

    def lease_set2(
        self, leases: tuple[m.RequestedLease, ...], now_ms: int
    ) -> tuple[bytes, tuple[tuple[int, bytes], ...]]:
        """A signed LeaseSet2 for ``leases`` and the private keys for its public keys."""
        ...


class State(enum.Enum):
    IDLE = "idle"
    HANDSHAKE = "handshake"  # protocol byte and GetDate sent, waiting for SetDate
    CREATING = "creating"  # CreateSession sent, waiting for SessionStatus
    CREATED = "created"  # session exists, waiting for the router's first LeaseSet request
    READY = "ready"  # LeaseSet handed over: the destination can be published and reached
    CLOSED = "closed"


class I2CPSession:
    def __init__(
        self,
        identity: SessionIdentity,
        options: Mapping[str, str] | None = None,
        *,
        version: str = m.CLIENT_VERSION,
        max_body_length: int = m.MAX_BODY_LENGTH,
    ) -> None:
        self.identity = identity
        self.options: dict[str, str] = dict(options or {})
        self.version = version
        self.state = State.IDLE
        self.session_id: int | None = None
        self.router_version: str | None = None
        self.leases: tuple[m.RequestedLease, ...] = ()
        #: Messages from the router we could not decode and skipped.
        self.dropped_messages = 0
        self._clock_offset_ms = 0
        self._decoder = m.FrameDecoder(max_body_length)
        self._out = bytearray()
        self._events: deque[ev.Event] = deque()
        self._request_ids = itertools.count(1)
        self._nonces = itertools.count(1)
        #: request id → local deadline (seconds)
        self._lookups: dict[int, float] = {}
        #: Nonces awaiting a final MessageStatus, oldest first (a dict keeps insertion order).
        self._pending_nonces: dict[int, None] = {}
        #: Message ids asked for with ReceiveMessageBegin (insertion-ordered, bounded).
        self._requested: dict[int, None] = {}
        #: Incoming messages the router announced instead of pushing (no ``i2cp.fastReceive``).
        self.announced_messages = 0
        self._reconfiguring = False
        self._destroying = False

    # ---------------------------------------------------------------- sans-IO surface

    def connect(self, now: float) -> None:
        """Start the handshake: protocol byte, then GetDate with our version."""
        if self.state is not State.IDLE:
            raise I2CPError(f"connect() in state {self.state.value}")
        self.identity.new_session()
        self._out += m.PROTOCOL_BYTE
        self._queue(m.GetDate(self.version))
        self.state = State.HANDSHAKE

    def receive_data(self, data: bytes, now: float) -> None:
        """Feed bytes from the router in any chunking."""
        if self.state is State.CLOSED:
            return
        try:
            frames = self._decoder.feed(data)
        except I2CPProtocolError as exc:
            self._terminate(f"framing broken: {exc}")
            return
        for frame in frames:
            if frame.type == _MESSAGE_PAYLOAD:
                fields = m.MessagePayload.fields(frame.body)
                if fields is not None:  # the data path: no message object, no dispatch
                    self._payload_received(fields[1], fields[2])
                    continue
            try:
                message = frame.decode()
            except I2CPProtocolError as exc:
                self.dropped_messages += 1
                self._events.append(ev.MessageDropped(frame.type, exc))
                continue
            self._handle(message, now)
            if self.state is State.CLOSED:
                return

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def next_event(self) -> ev.Event | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """The next lookup deadline, if any lookup is pending."""
        return min(self._lookups.values(), default=None)

    def handle_timer(self, now: float) -> None:
        for request_id, deadline in list(self._lookups.items()):
            if deadline <= now:
                del self._lookups[request_id]
                self._events.append(ev.LookupCompleted(request_id, None, None))

    def connection_lost(self) -> None:
        """The socket closed: every pending lookup ends unanswered."""
        for request_id in list(self._lookups):
            self._events.append(ev.LookupCompleted(request_id, None, None))
        self._lookups.clear()
        self._pending_nonces.clear()
        self.state = State.CLOSED

    # ---------------------------------------------------------------- requests

    def router_time_ms(self, now: float) -> int:
        return int(now * 1000) + self._clock_offset_ms

    def lookup(
        self,
        now: float,
        *,
        hash: bytes | None = None,
        name: str | None = None,
        timeout: float = DEFAULT_LOOKUP_TIMEOUT,
    ) -> int:
        """Queue a HostLookup (by hash or by name); returns its request id."""
        self._require_open()
        request_id = next(self._request_ids) & 0xFFFFFFFF
        session_id = self.session_id if self.session_id is not None else m.NO_SESSION
        self._queue(m.HostLookup(session_id, request_id, int(timeout * 1000), hash, name))
        self._lookups[request_id] = now + timeout
        return request_id

    def send_payload(
        self,
        destination: bytes,
        data: bytes,
        now: float,
        *,
        protocol: int,
        src_port: int = 0,
        dst_port: int = 0,
        track: bool = False,
        compress: bool = False,
        expiration: float = DEFAULT_MESSAGE_EXPIRATION,
    ) -> int:
        """Frame ``data`` and queue a SendMessageExpires. Returns the nonce (0 untracked).

        Untracked messages use nonce 0, so the router sends no MessageStatus at all: that saves
        a write from the router per packet, which (without TCP_NODELAY on i2pd's side) would
        otherwise meet our delayed ACK.
        """
        frame = encode_payload(
            data, protocol=protocol, src_port=src_port, dst_port=dst_port, compress=compress
        )
        return self.send_message(destination, frame, now, track=track, expiration=expiration)

    def send_message(
        self,
        destination: bytes,
        frame: bytes,
        now: float,
        *,
        track: bool = False,
        expiration: float = DEFAULT_MESSAGE_EXPIRATION,
    ) -> int:
        if self.state is not State.READY and self.state is not State.CREATED:
            raise I2CPError(f"cannot send in state {self.state.value}")
        assert self.session_id is not None
        nonce = 0
        if track:
            nonce = next(self._nonces) & 0xFFFFFFFF or next(self._nonces)
            self._pending_nonces[nonce] = None
            if len(self._pending_nonces) > MAX_PENDING_NONCES:
                del self._pending_nonces[next(iter(self._pending_nonces))]
        expires_ms = int(now * 1000) + self._clock_offset_ms + int(expiration * 1000)
        self._out += m.SendMessageExpires.encode_message(
            self.session_id, destination, frame, nonce, flags=0, expiration_ms=expires_ms
        )
        return nonce

    def republish_lease_set(self, now: float) -> bool:
        """Hand the router a freshly signed LeaseSet2 for the current leases, unasked.

        i2pd tries to publish a LeaseSet when it receives one; if its outbound tunnels are not
        built yet it logs "Destination is not ready" and never retries until its inbound
        tunnels change, leaving us unreachable. Re-sending the LeaseSet is what makes it try
        again. Returns False when there is nothing to republish yet.
        """
        if self.state is not State.READY or self.session_id is None or not self.leases:
            return False
        try:
            lease_set, private_keys = self.identity.lease_set2(
                self.leases, self.router_time_ms(now)
            )
        except (I2CPError, ValueError) as exc:
            self._events.append(ev.LeaseSetFailed(exc))
            return False
        self._queue(m.CreateLeaseSet2(self.session_id, lease_set, private_keys))
        return True

    def request_bandwidth_limits(self) -> None:
        self._require_open()
        self._queue(m.GetBandwidthLimits())

    def reconfigure(self, options: Mapping[str, str], now: float) -> None:
        """Send new options, signed again; a SessionReconfigured event answers."""
        if self.session_id is None or self.state is State.CLOSED:
            raise I2CPError("no session to reconfigure")
        self.options.update(options)
        config = self._session_config(now)
        self._reconfiguring = True
        self._queue(m.ReconfigureSession(self.session_id, config))

    def destroy(self) -> None:
        """Ask the router to end the session (it answers status 0, then closes the socket)."""
        if self.session_id is not None and self.state is not State.CLOSED:
            self._destroying = True
            self._queue(m.DestroySession(self.session_id))

    # ---------------------------------------------------------------- internals

    def _require_open(self) -> None:
        if self.state in (State.IDLE, State.CLOSED):
            raise I2CPError(f"session is {self.state.value}")

    def _queue(self, message: m.Message) -> None:
        self._out += m.encode_message(message)

    def _session_config(self, now: float) -> m.SessionConfig:
        return m.SessionConfig.build(
            self.identity.destination_bytes,
            self.options,
            self.router_time_ms(now),
            self.identity.sign,
        )

    def _terminate(self, reason: str) -> None:
        self.connection_lost()
        self._events.append(ev.ConnectionTerminated(reason))

    def _handle(self, message: m.Message, now: float) -> None:
        handler = _HANDLERS.get(type(message))
        if handler is None:
            self.dropped_messages += 1
            kind = message.type if isinstance(message, m.UnknownMessage) else message.TYPE
            err = I2CPProtocolError(f"unexpected message {type(message).__name__} ({kind})")
            self._events.append(ev.MessageDropped(kind, err))
            return
        handler(self, message, now)

    def _on_set_date(self, message: m.SetDate, now: float) -> None:
        self._clock_offset_ms = message.date_ms - int(now * 1000)
        self._events.append(ev.RouterDateReceived(message.date_ms, message.version))
        if self.state is State.HANDSHAKE:
            self.router_version = message.version
            self._queue(m.CreateSession(self._session_config(now)))
            self.state = State.CREATING

    def _on_session_status(self, message: m.SessionStatus, now: float) -> None:
        status = message.status
        if self.state is State.CREATING:
            if status == m.SessionStatusCode.CREATED:
                self.session_id = message.session_id
                self.state = State.CREATED
                self._events.append(ev.SessionCreated(message.session_id))
            else:
                self._events.append(ev.SessionRejected(status))
                self.connection_lost()
            return
        if message.session_id != self.session_id:
            return  # i2pd reports the invalid id of a refused second session; not ours
        if status == m.SessionStatusCode.DESTROYED:
            self._events.append(ev.SessionDestroyed())
            self.connection_lost()
        elif self._reconfiguring and status in (
            m.SessionStatusCode.UPDATED,
            m.SessionStatusCode.INVALID,
        ):
            self._reconfiguring = False
            self._events.append(ev.SessionReconfigured(status == m.SessionStatusCode.UPDATED))

    def _on_request_lease_set(self, message: m.RequestVariableLeaseSet, now: float) -> None:
        if self.session_id is None or message.session_id != self.session_id:
            return
        try:
            lease_set, private_keys = self.identity.lease_set2(
                message.leases, self.router_time_ms(now)
            )
            self._queue(m.CreateLeaseSet2(self.session_id, lease_set, private_keys))
        except (I2CPError, ValueError) as exc:
            self._events.append(ev.LeaseSetFailed(exc))
            return
        first = self.state is State.CREATED
        self.leases = message.leases
        self.state = State.READY
        self._events.append(ev.LeaseSetCreated(message.leases, first))

    def _on_host_reply(self, message: m.HostReply, now: float) -> None:
        if self._lookups.pop(message.request_id, None) is None:
            return  # answered after our deadline: already reported as a timeout
        self._events.append(
            ev.LookupCompleted(message.request_id, message.destination, message.result_code)
        )

    def _on_message_status(self, message: m.MessageStatus, now: float) -> None:
        if message.status == m.MessageStatusCode.AVAILABLE:
            self._request_message(message)
            return
        if message.nonce not in self._pending_nonces:
            return
        try:
            code = m.MessageStatusCode(message.status)
            final = code not in (m.MessageStatusCode.ACCEPTED, m.MessageStatusCode.AVAILABLE)
        except ValueError:
            final = True
        if final:
            self._pending_nonces.pop(message.nonce, None)
        self._events.append(ev.MessageStatusReceived(message.nonce, message.status, final))

    def _request_message(self, message: m.MessageStatus) -> None:
        """Fetch an announced incoming message, as the spec's slow-receive mode requires.

        Java I2P announces every incoming message this way unless the session sets
        ``i2cp.fastReceive=true`` (which we send by default), and holds it until
        ReceiveMessageBegin; the payload then comes as a MessagePayload, which we confirm with
        ReceiveMessageEnd so the router frees it. i2pd always pushes (fast receive).
        """
        if self.session_id is None or message.session_id != self.session_id:
            return
        self.announced_messages += 1
        self._requested[message.message_id] = None
        if len(self._requested) > MAX_REQUESTED_MESSAGES:
            del self._requested[next(iter(self._requested))]
        self._queue(m.ReceiveMessageBegin(self.session_id, message.message_id))

    def _on_message_payload(self, message: m.MessagePayload, now: float) -> None:
        self._payload_received(message.message_id, message.payload)

    def _payload_received(self, message_id: int, frame: bytes) -> None:
        if message_id in self._requested and self.session_id is not None:
            del self._requested[message_id]
            self._queue(m.ReceiveMessageEnd(self.session_id, message_id))
        try:
            payload = decode_payload(frame)
        except I2CPProtocolError as exc:
            self.dropped_messages += 1
            self._events.append(ev.MessageDropped(m.MessageType.MESSAGE_PAYLOAD, exc))
            return
        self._events.append(ev.PayloadReceived(payload, message_id))

    def _on_bandwidth_limits(self, message: m.BandwidthLimits, now: float) -> None:
        self._events.append(ev.BandwidthLimitsReceived(message.limits))

    def _on_disconnect(self, message: m.Disconnect, now: float) -> None:
        self._terminate(f"router disconnected: {message.reason or 'no reason given'}")


_HANDLERS = {
    m.SetDate: I2CPSession._on_set_date,
    m.SessionStatus: I2CPSession._on_session_status,
    m.RequestVariableLeaseSet: I2CPSession._on_request_lease_set,
    m.HostReply: I2CPSession._on_host_reply,
    m.MessageStatus: I2CPSession._on_message_status,
    m.MessagePayload: I2CPSession._on_message_payload,
    m.BandwidthLimits: I2CPSession._on_bandwidth_limits,
    m.Disconnect: I2CPSession._on_disconnect,
}
